"""Distributed pseudo-labelling: every rank scores a disjoint shard, rank 0 merges the shards into the one
`pseudo_labels.csv` a single-process run writes (same rows, same order, same bytes).

Under torchrun or SLURM every process runs the whole stage CLI. Lightning creates the process group only inside
`Trainer.fit`, but labelling happens before each round's training, so `ensure_process_group` creates it here
from the same cluster environment Lightning detects (Lightning later finds it initialised and reuses it).

Sharding is by whole batches, not by keyframes: rank r takes batches r, r+W, r+2W, ... of the single-process
batch sequence, so every batch has exactly the composition it has in a one-process run. Padding, batched
convolutions and RoIAlign then see identical inputs, which is what makes the merged scores bit-identical rather
than merely close (a score on the λ_c edge could otherwise flip a keep/drop decision).
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Subset

from seal_transfer.data.datamodules import KeyframeSplit
from seal_transfer.pseudo.labeler import TwoViewScores, score_two_views
from seal_transfer.utils.dist import local_rank
from seal_transfer.utils.fileio import atomic_path

# Lightning's default process-group timeout; the group created here is the one training reuses.
PROCESS_GROUP_TIMEOUT = datetime.timedelta(minutes=30)


def _cluster_environment() -> Optional[Any]:
    """Lightning's detection of an external launcher (torchrun, SLURM), or None for a single process."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if TorchElasticEnvironment.detect():
        env: Any = TorchElasticEnvironment()
    elif SLURMEnvironment.detect():
        env = SLURMEnvironment()
    else:
        return None
    return env if env.world_size() > 1 else None


def _wants_cuda(accelerator: str) -> bool:
    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def ensure_process_group(accelerator: str = "auto") -> tuple[int, int]:
    """(rank, world size); creates the default process group when a launcher started several processes.

    NCCL when this rank will use a GPU, gloo otherwise (the backend Lightning's DDP would choose).
    """
    if not dist.is_available():
        return 0, 1
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    env = _cluster_environment()
    if env is None:
        return 0, 1
    backend = "gloo"
    if _wants_cuda(accelerator):
        torch.cuda.set_device(env.local_rank())
        backend = "nccl"
    os.environ["MASTER_ADDR"] = env.main_address
    os.environ["MASTER_PORT"] = str(env.main_port)
    dist.init_process_group(
        backend, rank=env.global_rank(), world_size=env.world_size(), timeout=PROCESS_GROUP_TIMEOUT
    )
    return dist.get_rank(), dist.get_world_size()


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def labelling_device(accelerator: str = "auto") -> torch.device:
    """This rank's device for the labelling pass: its own GPU when training would use GPUs, else CPU."""
    if _wants_cuda(accelerator):
        return torch.device("cuda", local_rank() if dist.is_initialized() else torch.cuda.current_device())
    return torch.device("cpu")


def batch_shard(num_items: int, batch_size: int, rank: int, world: int) -> np.ndarray:
    """Item indices of rank's shard: whole batches r, r+W, ... of the single-process batch sequence."""
    if batch_size < 1 or world < 1 or not 0 <= rank < world:
        raise ValueError(f"bad shard: batch_size={batch_size}, rank={rank}, world={world}")
    starts = np.arange(rank * batch_size, num_items, world * batch_size, dtype=np.int64)
    if starts.size == 0:
        return np.zeros(0, np.int64)
    idx = (starts[:, None] + np.arange(batch_size, dtype=np.int64)[None, :]).reshape(-1)
    return idx[idx < num_items]


def save_shard(path: Path, scores: TwoViewScores) -> None:
    with atomic_path(path) as tmp:
        np.savez(tmp, box_ids=scores.box_ids, view1=scores.view1, view2=scores.view2, seconds=scores.seconds)


def load_shard(path: Path) -> TwoViewScores:
    with np.load(path, allow_pickle=False) as data:
        return TwoViewScores(data["box_ids"], data["view1"], data["view2"], float(data["seconds"]))


def merge_shards(shards: list[TwoViewScores]) -> TwoViewScores:
    """One TwoViewScores sorted by box id (the single-process order). Wall time is the slowest rank's."""
    box_ids = np.concatenate([s.box_ids for s in shards])
    order = np.argsort(box_ids, kind="stable")
    if len(np.unique(box_ids)) != len(box_ids):
        raise RuntimeError("pseudo-label shards overlap: a box was scored on two ranks")
    return TwoViewScores(
        box_ids[order],
        np.concatenate([s.view1 for s in shards])[order],
        np.concatenate([s.view2 for s in shards])[order],
        max((s.seconds for s in shards), default=0.0),
    )


def score_two_views_distributed(
    module: Any,
    split: KeyframeSplit,
    *,
    batch_size: int,
    num_workers: int,
    shard_dir: Path,
    device: Optional[torch.device] = None,
    progress: bool = True,
) -> Optional[TwoViewScores]:
    """Two-view scores of the whole split: merged on rank 0, None on the other ranks.

    Each rank writes its shard to `shard_dir` (atomically), all ranks meet at a barrier, rank 0 reads and merges
    the shards and deletes them. In a single process this is `score_two_views` itself.
    """
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    if world == 1:
        return score_two_views(module, split, batch_size=batch_size, num_workers=num_workers, device=device,
                               progress=progress)
    indices = batch_shard(len(split.dataset), batch_size, rank, world)
    shard_split = KeyframeSplit(Subset(split.dataset, indices.tolist()), split.split, split.broken_videos)  # type: ignore[arg-type]
    scores = score_two_views(
        module, shard_split, batch_size=batch_size, num_workers=num_workers, progress=progress and rank == 0,
        device=device
    )
    paths = [shard_dir / f"rank{r:04d}_of{world:04d}.npz" for r in range(world)]
    save_shard(paths[rank], scores)
    barrier()
    if rank != 0:
        return None
    merged = merge_shards([load_shard(p) for p in paths])
    for p in paths:
        p.unlink(missing_ok=True)
    return merged
