"""What a training run folder holds, and when it can be reused instead of training again.

A finished run (last.pt says the loop finished) whose recorded config equals the requested one, up
to REUSE_MAY_DIFFER (settings that cannot change the result), and that was trained on the same
prepared data is reused: the main job (`pipeline`) and `compare` rely on this, so a second run with
unchanged inputs does not train again.
"""

from __future__ import annotations

import json
from pathlib import Path

from vocagan.checkpoint import from_storable, read_checkpoint
from vocagan.config import Config, config_differences
from vocagan.errors import VocaganError
from vocagan.train import LoopState, TrainResult
from vocagan.utils import log
from vocagan.validation import VAL_STYLE

# settings that cannot change a finished run's result
REUSE_MAY_DIFFER = {"train.device", "train.num_workers", "train.checkpoint_every", "prep.cache_dir"}


def finished_run(out_dir: Path, cfg: Config, data_fingerprint: str | None = None) -> TrainResult | None:
    """The result of the finished run in `out_dir` when it was trained with `cfg` (up to REUSE_MAY_DIFFER,
    settings that cannot change the result) on the same prepared data (`data_fingerprint`, the
    prepared cache key); None when there is no such run (a log line says why an existing one is not)."""
    last, best = out_dir / "last.pt", out_dir / "best.pt"
    if not (last.is_file() and best.is_file()):
        return None
    try:
        saved = read_checkpoint(last)
        extra = from_storable(saved.get("extra", {}))
        loop = LoopState(**extra["loop"])
        meta = json.loads(from_storable(saved["stats"])["meta"])
        differ = config_differences(json.loads(saved["config"]), cfg, REUSE_MAY_DIFFER)
    except (VocaganError, KeyError, TypeError, ValueError) as e:
        log(f"[train] {out_dir} holds a run that cannot be reused ({e}); training again")
        return None
    if not loop.finished:
        log(f"[train] {out_dir} holds an unfinished run; training again (vocagan train --resume continues it)")
        return None
    if differ:
        log(f"[train] {out_dir} holds a run with another config ({', '.join(differ[:5])}); training again")
        return None
    if data_fingerprint is not None and meta.get("data_fingerprint") != data_fingerprint:
        log(f"[train] {out_dir} holds a run trained on other data (the prepared data changed); training again")
        return None
    styles = list(meta.get("styles", []))
    has_val = any("val_lve" in r for r in loop.rows)
    log(f"[train] reusing the finished run in {out_dir} (same config and data)")
    return TrainResult(
        out_dir=out_dir,
        model_name=cfg.model_name,
        best_checkpoint=best,
        last_checkpoint=last,
        best_epoch=loop.best_epoch,
        best_val_lve=loop.best_lve if has_val else None,
        epochs_run=loop.next_epoch,
        stopped_early=loop.next_epoch < cfg.train.epochs,
        seconds=float(sum(r.get("time_s", 0.0) for r in loop.rows)),
        val_style=styles[VAL_STYLE] if len(styles) > VAL_STYLE else "",
        baselines=loop.baselines,
        rows=loop.rows,
        reused=True,
    )
