"""Run directories: where each stage writes, how stages find each other's weights, and a lock per stage.

Layout: RUN/<stage>/{config.yaml, checkpoints/{last,best}.ckpt, model.pt, metrics.json, logs/...}; a stage is
finished when its `metrics.json` exists (written last, atomically). Adapt rounds live in RUN/adapt/round_<r>/.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

from seal_transfer.errors import UserError
from seal_transfer.utils.locks import LockBusy, process_lock

WEIGHT_CHAIN = {
    # stage -> earlier stages whose weights it starts from, most preferred first
    "pretrain": (),
    "adapt": ("pretrain",),
    "finetune": ("adapt", "pretrain"),
    "tubes": ("pretrain",),
}


def stage_dir(run_dir: str | os.PathLike[str], stage: str) -> Path:
    return Path(run_dir).expanduser() / stage


def is_finished(directory: Path) -> bool:
    return (directory / "metrics.json").is_file()


def exported_weights(directory: Path) -> Optional[Path]:
    """The plain weights file a finished stage exports for the next one (`model.pt`)."""
    path = directory / "model.pt"
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
    if _launcher_rank() != 0:
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


def _launcher_rank() -> int:
    """Global rank set by torchrun / SLURM / Lightning's process launcher (0 when run as a single process)."""
    for key in ("RANK", "SLURM_PROCID"):
        if key in os.environ and (key != "SLURM_PROCID" or int(os.environ.get("SLURM_NTASKS", "1")) > 1):
            return int(os.environ[key])
    return int(os.environ.get("LOCAL_RANK", "0")) + int(os.environ.get("NODE_RANK", "0"))
