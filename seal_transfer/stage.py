"""What every stage does around its own work: lock the stage folder, skip if finished, record the resolved
config, find the weights to start from, write metrics.json last, and print a one-screen summary."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from seal_transfer.config.loader import to_yaml
from seal_transfer.errors import UserError
from seal_transfer.rundir import CONFIG, METRICS, is_finished, stage_dir, stage_lock, upstream_weights
from seal_transfer.utils.dist import is_rank_zero
from seal_transfer.utils.fileio import atomic_write, write_json


def resolve_init(cfg: Any, stage: str) -> tuple[Optional[Path], str]:
    """`init=PATH` wins; otherwise the newest finished earlier stage of the run dir; otherwise from scratch."""
    if cfg.init is not None:
        path = Path(cfg.init).expanduser()
        if not path.is_file():
            raise UserError(f"init={cfg.init}: file not found")
        return path, f"init={path}"
    weights, origin = upstream_weights(cfg.run_dir, stage)
    if weights is None:
        return None, f"random initialisation ({origin})"
    return weights, f"{origin} stage ({weights})"


def run_stage(cfg: Any, stage: str, work: Callable[[Path], dict[str, Any]]) -> int:
    """Run `work(out_dir)` once per stage folder; it returns the metrics that are written to metrics.json."""
    out_dir = stage_dir(cfg.run_dir, stage)
    with stage_lock(out_dir):
        if is_finished(out_dir) and not cfg.force:
            print(f"[{stage}] already finished: {out_dir / 'metrics.json'} (pass force=true to redo)")
            return 0
        if cfg.force:
            # Redo from scratch: everything the stage wrote goes (adapt rounds included), the lock stays.
            for entry in out_dir.iterdir():
                if entry.name == ".lock":
                    continue
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        with atomic_write(out_dir / CONFIG) as handle:
            handle.write(to_yaml(cfg))
        metrics = work(out_dir)
        write_json(out_dir / METRICS, metrics)
        if is_rank_zero():
            from seal_transfer.report import stage_plots

            stage_plots(out_dir)
    print_summary(stage, out_dir, metrics)
    return 0


def print_summary(stage: str, out_dir: Path, metrics: dict[str, Any]) -> None:
    keys = [k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    width = max((len(k) for k in keys), default=0)
    print(f"\n== {stage} finished: {out_dir}")
    for k in keys:
        value = metrics[k]
        print(f"   {k.ljust(width)}  {value:.4f}" if isinstance(value, float) else f"   {k.ljust(width)}  {value}")
    broken = metrics.get("broken_videos")
    if isinstance(broken, list):  # names, not a number: say how many and which
        shown = ", ".join(str(b) for b in broken[:5]) + (", ..." if len(broken) > 5 else "")
        print(f"   {'broken_videos'.ljust(width)}  {len(broken)}" + (f" ({shown})" if broken else ""))
    print("   files: config.yaml, metrics.json, model.pt, checkpoints/, logs/ (TensorBoard + metrics.csv), plots/")
