"""Fixtures for the synthetic-corpus tests."""

from __future__ import annotations

import numpy as np
import pytest


def _lip_aperture(verts: np.ndarray, template: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """(T,) lip aperture change (m): upper-lip minus lower-lip height near the midline, vs the template."""
    mid = lips[np.abs(template[lips, 0] - template[lips, 0].mean()) < 0.006]
    y = template[mid, 1]
    up, lo = mid[y > np.median(y)], mid[y <= np.median(y)]
    gap = verts[:, up, 1].mean(1) - verts[:, lo, 1].mean(1)
    return gap - (template[up, 1].mean() - template[lo, 1].mean())


@pytest.fixture(scope="session")
def lip_aperture():
    """Factory: lip_aperture(verts (T, V, 3), template (V, 3), lips) -> (T,) change (m) of the
    upper-minus-lower lip height near the midline against the template (independent of
    vocagan.metrics, so the synthetic motion is judged by a separate measure)."""
    return _lip_aperture
