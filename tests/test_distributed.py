"""Distributed pseudo-labelling: shard arithmetic, shard merge, and a real 2-process (gloo) pretrain + adapt run
whose merged pseudo labels must be byte-identical to a 1-process run from the same weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seal_transfer.pseudo.distributed import batch_shard, load_shard, merge_shards, save_shard
from seal_transfer.pseudo.labeler import TwoViewScores

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("n, batch, world", [(0, 4, 2), (1, 4, 3), (22, 4, 2), (23, 5, 3), (40, 4, 4), (7, 2, 8)])
def test_batch_shards_partition_the_single_process_batches(n: int, batch: int, world: int) -> None:
    shards = [batch_shard(n, batch, r, world) for r in range(world)]
    together = np.sort(np.concatenate(shards))
    assert together.tolist() == list(range(n))  # disjoint and complete
    single_batches = [list(range(s, min(s + batch, n))) for s in range(0, n, batch)]
    for rank, shard in enumerate(shards):
        rank_batches = [shard[s : s + batch].tolist() for s in range(0, len(shard), batch)]
        assert rank_batches == single_batches[rank::world]  # each batch has its single-process composition


def test_batch_shard_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        batch_shard(10, 4, 2, 2)
    with pytest.raises(ValueError):
        batch_shard(10, 0, 0, 1)


def _scores(ids: list[int], seconds: float) -> TwoViewScores:
    ids_arr = np.asarray(ids, dtype=np.int64)
    v1 = np.stack([ids_arr * 0.1, ids_arr * 0.2]).T.astype(np.float32)
    return TwoViewScores(ids_arr, v1, v1[:, ::-1].copy(), seconds)


def test_merge_shards_sorts_by_box_id_and_round_trips(tmp_path: Path) -> None:
    paths = [tmp_path / "r0.npz", tmp_path / "r1.npz"]
    save_shard(paths[0], _scores([4, 5, 0, 1], 2.0))
    save_shard(paths[1], _scores([2, 3, 6], 3.0))
    merged = merge_shards([load_shard(p) for p in paths])
    whole = _scores(list(range(7)), 1.0)
    assert merged.box_ids.tolist() == list(range(7))
    np.testing.assert_array_equal(merged.view1, whole.view1)
    np.testing.assert_array_equal(merged.view2, whole.view2)
    assert merged.seconds == 3.0  # the slowest rank's wall time
    with pytest.raises(RuntimeError, match="overlap"):
        merge_shards([_scores([1, 2], 1.0), _scores([2], 1.0)])


def _run(args: list[str], *, procs: int) -> None:
    # torchrun gives each process one intra-op thread; CPU kernels round differently with other thread counts,
    # so the 1-process reference runs with the same setting (bit-identity needs identical arithmetic).
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    if procs > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}", *args]
    else:
        cmd = [sys.executable, *args]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"


@pytest.mark.e2e
def test_two_process_pseudo_labels_equal_single_process(tmp_path: Path, tiny_world: Path) -> None:
    common = [
        "--config", "configs/smoke.yaml", f"data.cache_dir={tiny_world.parent}", "data.num_workers=0",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "trainer.accelerator=cpu",
    ]
    ddp = ["trainer.devices=2", "trainer.strategy=ddp"]
    pretrain = [*common, *ddp, "trainer.limit_train_batches=2", f"run_dir={tmp_path / 'pre'}"]
    _run(["-m", "seal_transfer.pretrain", *pretrain], procs=2)
    weights = tmp_path / "pre" / "pretrain" / "model.pt"
    pretrain_metrics = json.loads((tmp_path / "pre" / "pretrain" / "metrics.json").read_text())
    assert weights.is_file() and pretrain_metrics["val_keyframes"] > 0

    adapt = [*common, f"init={weights}", "adapt.rounds=1", "adapt.epochs_per_round=1", "trainer.limit_train_batches=2"]
    _run(["-m", "seal_transfer.adapt", *adapt, *ddp, f"run_dir={tmp_path / 'two'}"], procs=2)
    _run(["-m", "seal_transfer.adapt", *adapt, "trainer.devices=1", f"run_dir={tmp_path / 'one'}"], procs=1)

    two = tmp_path / "two" / "adapt" / "round_1"
    one = tmp_path / "one" / "adapt" / "round_1"
    two_csv, one_csv = (two / "pseudo_labels.csv").read_bytes(), (one / "pseudo_labels.csv").read_bytes()
    assert one_csv, "the 1-process run kept no pseudo label: the comparison would be vacuous"
    assert two_csv == one_csv
    two_stats, one_stats = json.loads((two / "stats.json").read_text()), json.loads((one / "stats.json").read_text())
    assert (two_stats["world_size"], one_stats["world_size"]) == (2, 1)
    assert two_stats["samples_seen"] == one_stats["samples_seen"] and two_stats["kept"] == one_stats["kept"]
    assert not (two / "label_shards").exists()
    assert (two / "model.pt").is_file() and (tmp_path / "two" / "adapt" / "metrics.json").is_file()
