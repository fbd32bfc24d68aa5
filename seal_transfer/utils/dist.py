"""The one probe of "which process am I" before any process group exists, read from the launcher's environment.

torchrun sets RANK / LOCAL_RANK, SLURM sets SLURM_PROCID / SLURM_LOCALID (a single-task allocation sets
SLURM_PROCID=0 too, so it counts only when SLURM_NTASKS > 1), and Lightning's own launcher sets LOCAL_RANK /
NODE_RANK for the processes it spawns. Stage locks, summaries and devices all ask here, so they agree.
"""

from __future__ import annotations

import os


def launcher_rank() -> int:
    """Global rank set by torchrun / SLURM / Lightning's process launcher (0 when run as a single process)."""
    for key in ("RANK", "SLURM_PROCID"):
        if key in os.environ and (key != "SLURM_PROCID" or int(os.environ.get("SLURM_NTASKS", "1")) > 1):
            return int(os.environ[key])
    return int(os.environ.get("LOCAL_RANK", "0")) + int(os.environ.get("NODE_RANK", "0"))


def local_rank() -> int:
    """This process's index on its machine (which GPU it takes)."""
    return int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0")))


def is_rank_zero() -> bool:
    return launcher_rank() == 0
