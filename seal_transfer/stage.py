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


def run_stage(cfg: Any, stage: str, work: Callable[[Path], dict[str, Any]], *, finishes: bool = True,
              record: str = METRICS, redo: Optional[Callable[[Path], None]] = None, plots: bool = True) -> int:
    """The stage lifecycle, in its named steps: lock the stage folder; skip it if finished (unless `force`);
    on `force`, `redo` what is to be redone (default: everything the stage wrote, adapt rounds included); record
    the resolved config; `work(out_dir)`; write its metrics, last; draw the stage's plots; print the summary.

    A step that does not finish the stage (`finishes=False`: `tubes.step=extract`, say) writes its metrics to
    `record` instead of metrics.json, so the stage stays unfinished and the next step can follow."""
    out_dir = stage_dir(cfg.run_dir, stage)
    with stage_lock(out_dir):
        if finishes and is_finished(out_dir) and not cfg.force:
            print(f"[{stage}] already finished: {out_dir / 'metrics.json'} (pass force=true to redo)")
            return 0
        if cfg.force:
            (redo or _clear_stage)(out_dir)
        with atomic_write(out_dir / CONFIG) as handle:
            handle.write(to_yaml(cfg))
        metrics = work(out_dir)
        write_json(out_dir / (METRICS if finishes else record), metrics)
        if finishes and plots and is_rank_zero():
            from seal_transfer.report import stage_plots

            stage_plots(out_dir)
    print_summary(stage, out_dir, metrics)
    return 0


def _clear_stage(out_dir: Path) -> None:
    """Redo from scratch: everything the stage wrote goes (adapt rounds included), the lock stays."""
    for entry in out_dir.iterdir():
        if entry.name == ".lock":
            continue
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


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
    if out_dir.is_dir():  # what is there, not what is usually there (the tubes stage writes other files)
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in out_dir.iterdir() if not p.name.startswith("."))
        print(f"   files: {', '.join(names)}")
