"""Validation during training: the lip vertex error (LVE) of the model on the validation subjects,
beside the zero-motion and mean-motion baselines measured on the same frames.

Predicted normalised coefficients are decoded through the PCA basis to lip offsets and compared with
the true val lip offsets (the un-PCA'd offsets the prepared data keeps for val; the decoded true
coefficients when it does not); per frame the max over lip vertices of the squared L2 error; mean
over all frames pooled across sequences; reported x1e-5 m^2. Val subjects are unseen identities, so
they are animated with a fixed training style: the first training subject (style index VAL_STYLE).
"""

from __future__ import annotations

import numpy as np
import torch

from vocagan.models.layers import LipDecoder
from vocagan.prep.regions import lip_positions

VAL_STYLE = 0  # unseen val subjects are animated with the first training style


def to_device(batch: dict, device) -> dict:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


def validation_batches(prepared, val_ds, collate, batch_size: int) -> list[dict]:
    """Whole val sequences sorted by length (little padding), with the style set to the fixed training
    style and "true_lips" (B,T,L,3) mm: the true lip offsets when the prepared data keeps them
    (`true_offsets["val"]`), else the decoded true coefficients (PCA-projected ground truth)."""
    true = getattr(prepared, "true_offsets", {}).get("val")
    lips = lip_positions(prepared.crop, prepared.regions.lips)
    where = {(q.subject, q.sentence): q for q in prepared.seqs["val"]}
    items = sorted((val_ds[i] for i in range(len(val_ds))), key=lambda it: len(it["motion"]))
    batches = []
    for i in range(0, len(items), max(1, batch_size)):
        chunk = items[i : i + batch_size]
        batch = collate(chunk)
        batch["style"] = torch.full_like(batch["style"], VAL_STYLE)
        if true is not None:
            B, T = batch["mask"].shape
            true_lips = torch.zeros(B, T, len(lips), 3)
            for b, it in enumerate(chunk):
                q = where[(it["subject"], it["sentence"])]
                n = min(q.length, len(it["motion"]))
                true_lips[b, :n] = torch.from_numpy(
                    np.asarray(true[q.start : q.start + n][:, lips] * 1000.0, dtype=np.float32)
                )
            batch["true_lips"] = true_lips
        batches.append(batch)
    return batches


@torch.no_grad()
def validate(model, batches: list[dict], decoder: LipDecoder, device, autocast) -> dict:
    """Validation loss parts and LVE (x1e-5 m^2, frame-pooled) plus the zero-motion (template only)
    and mean-motion (train-mean offsets) baselines' LVE on the same frames."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    sq_err = {"model": 0.0, "zero motion": 0.0, "mean motion": 0.0}
    err_mm, frames, n_seq = 0.0, 0, 0
    for batch in batches:
        batch = to_device(batch, device)
        with autocast():
            # the losses of the model's own step (the one a fine-tuned encoder learns in), audio heard
            parts = model.step_loss({k: v for k, v in batch.items() if k != "true_lips"}, model.hear_step)
            pred = model.predict(batch["audio"], batch["style"], 1, batch["mask"])[0]
        n = int(batch["mask"].shape[0])
        n_seq += n
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
        mask = batch["mask"]
        true_lips = batch.get("true_lips")
        if true_lips is None:
            true_lips = decoder(batch["motion"])  # (B,T,L,3) mm
        for name, lips in (
            ("model", decoder(pred.float())),
            ("zero motion", torch.zeros_like(true_lips)),
            ("mean motion", decoder(torch.zeros_like(batch["motion"]))),
        ):
            per_frame = (lips.double() - true_lips.double()).pow(2).sum(-1).amax(-1)  # (B,T) mm^2
            sq_err[name] += float(per_frame[mask].sum())
            if name == "model":
                err_mm += float(per_frame[mask].sqrt().sum())
        frames += int(mask.sum())
    model.train(was_training)
    out: dict[str, float | dict[str, float]] = {f"val_{k}": v / n_seq for k, v in sums.items()}
    out["val_lve"] = sq_err["model"] / frames * 0.1  # mm^2 -> x1e-5 m^2 (1 mm^2 = 1e-6 m^2)
    out["val_lve_mm"] = err_mm / frames
    out["baselines"] = {k: v / frames * 0.1 for k, v in sq_err.items() if k != "model"}
    return out
