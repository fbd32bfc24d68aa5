"""Run directories, the one place their layout is written down: where each stage writes, how stages find each
other's weights, and a lock per stage. A leaf module: it imports nothing of the toolkit but errors and utils.

Layout: RUN/<stage>/{config.yaml, checkpoints/{last,best}.ckpt, model.pt, metrics.json, logs/...,
val_detections.csv + val_groundtruth.csv, val_excluded_timestamps.csv, val_labelmap.pbtxt}; a stage is finished
when its `metrics.json` exists (written last, atomically). Adapt rounds live in RUN/adapt/round_<r>/ with the same
files plus pseudo_labels.csv and stats.json.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

from seal_transfer.errors import UserError
from seal_transfer.utils.dist import launcher_rank
from seal_transfer.utils.locks import LockBusy, process_lock

CONFIG = "config.yaml"  # the resolved config the stage ran with
METRICS = "metrics.json"  # written last: its presence means "finished"
WEIGHTS = "model.pt"  # the plain weights the next stage starts from
CHECKPOINTS = "checkpoints"  # Lightning checkpoints: LAST (resume) and BEST (by the monitored metric)
LAST_CHECKPOINT = "last.ckpt"
BEST_CHECKPOINT = "best.ckpt"
LOGS = "logs"  # TensorBoard events and metrics.csv
VAL_DETECTIONS = "val_detections.csv"  # AVA-format detections on the validation split
# What val_detections.csv was scored against, in the official evaluator's formats (so a stage folder can be
# re-scored, and reported on, from its own files): GT rows, excluded keyframes, evaluated classes.
VAL_GROUNDTRUTH = "val_groundtruth.csv"
VAL_EXCLUSIONS = "val_excluded_timestamps.csv"
VAL_LABELMAP = "val_labelmap.pbtxt"
PSEUDO_LABELS = "pseudo_labels.csv"  # an adapt round's kept boxes and classes
IGNORED_LABELS = "ignored_labels.csv"  # adapt.negatives=confident: kept boxes' classes the loss ignores
ROUND_STATS = "stats.json"  # an adapt round's selection statistics
TEACHER = "teacher.pt"  # adapt.teacher=ema: the EMA of the round's weights, which labels the next round

WEIGHT_CHAIN = {
    # stage -> earlier stages whose weights it starts from, most preferred first
    "pretrain": (),
    "adapt": ("pretrain",),
    "finetune": ("adapt", "pretrain"),
    "tubes": ("pretrain",),
}


def stage_dir(run_dir: str | os.PathLike[str], stage: str) -> Path:
    return Path(run_dir).expanduser() / stage


def adapt_round_dir(adapt_dir: Path, round_index: int) -> Path:
    return adapt_dir / f"round_{round_index}"


def is_finished(directory: Path) -> bool:
    return (directory / METRICS).is_file()


def exported_weights(directory: Path) -> Optional[Path]:
    """The plain weights file a finished stage exports for the next one (`model.pt`)."""
    path = directory / WEIGHTS
    return path if path.is_file() else None


def upstream_weights(run_dir: str | os.PathLike[str], stage: str) -> tuple[Optional[Path], str]:
    """Weights `stage` should start from: the newest finished earlier stage in the chain, or (None, reason)."""
    for earlier in WEIGHT_CHAIN.get(stage, ()):
        directory = stage_dir(run_dir, earlier)
        weights = exported_weights(directory)
        if weights is not None and is_finished(directory):
            return weights, earlier
    tried = ", ".join(str(stage_dir(run_dir, s)) for s in WEIGHT_CHAIN.get(stage, ()))
    return None, f"no finished earlier stage found (looked in {tried or 'nothing'})"


@contextlib.contextmanager
def stage_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on `directory/.lock` so two runs cannot write the same stage at once.

    The lock dies with the process that took it and is not inherited by forked DataLoader workers
    (`utils/locks.py` says why), so a run restarted the moment after a `kill -9` finds it free.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if launcher_rank() != 0:
        yield  # one multi-process run (torchrun/SLURM/DDP): rank 0 holds the lock for all its ranks
        return
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(process_lock(directory / ".lock", note=f"{os.getpid()}\n"))
        except LockBusy:
            raise UserError(
                f"{directory}: another run is writing this stage (lock held on {directory / '.lock'})"
            ) from None
        yield
