"""Is the testbed's pretraining compute-bound? The `pretrain` CLI against a bare PyTorch loop, side by side.

Both train the same detector (the testbed config's model) with the same optimiser and batch size:
- bare loop: forward + backward + step over batches built once, up front, by the stage's own dataset and collate
  (so the shapes, boxes per keyframe and labels are the real ones) and then reused: no decoding, no augmentation,
  no Lightning, no DataLoader;
- the CLI: `python -m seal_transfer.pretrain` as a user runs it, in a subprocess; its training samples/s
  (data loading included, validation excluded) is what the stage writes to metrics.json (`train_samples_per_s`).

Rows: the testbed config as committed, and the same with the frames decoded on the fly by DataLoader workers
(`data.preload=false data.num_workers=2`, the loader every stage used before the testbed config). Each row
runs `--epochs` epochs; the bare loop runs as many steps as one CLI epoch, twice, and the faster pass counts.
Writes `results/bench_testbed.md`.

    python scripts/bench_testbed.py                    # world `small` seed 0, 1 epoch per CLI row
    python scripts/bench_testbed.py --epochs 2 --set model.stem_width=16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from seal_transfer.config import Config
from seal_transfer.config.loader import load_config, with_overrides
from seal_transfer.data.datamodules import make_keyframe_split
from seal_transfer.data.datasets import collate_keyframes
from seal_transfer.data.domains import load_source_split
from seal_transfer.engine.detection import DetectionModule
from seal_transfer.engine.schedule import build_optimizer
from seal_transfer.engine.supervised import pose_columns
from seal_transfer.models.config import clip_spec
from seal_transfer.utils.fileio import atomic_write

ROOT = Path(__file__).resolve().parents[1]


def bare_loop(cfg: Any, steps: int) -> dict[str, float]:
    """Samples/s of forward + backward + optimiser step on pre-built batches of the real training set."""
    split = load_source_split(cfg, "train", dense=True)
    no_preload = with_overrides(cfg, {"data.preload": False})
    train = make_keyframe_split(no_preload, split, clip=clip_spec(cfg.model), train=True,
                                what="bench (building batches)")
    bs = int(cfg.data.batch_size)
    n_batches = min(steps, max(len(train.dataset) // bs, 1))
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(train.dataset), generator=gen).tolist()
    batches = [collate_keyframes([train.dataset[i] for i in order[b * bs:(b + 1) * bs]]) for b in range(n_batches)]
    module = DetectionModule(asdict(cfg.model), asdict(cfg.optim), len(split.labelmap),
                             pose_columns(split.labelmap, cfg.optim.pose_label_type), split.labelmap.ids)
    module.train()
    optimizer = build_optimizer(module.named_parameters(), module.optim_cfg)
    from seal_transfer.engine.detection import detection_loss

    best = 0.0
    for _ in range(2):
        started = time.perf_counter()
        samples = 0
        for step in range(steps):
            batch = batches[step % n_batches]
            inputs, boxes = batch["views"][0]
            loss = detection_loss(module(inputs, boxes).float(), batch["labels"].float(), module.pose_columns,
                                  module.optim_cfg.loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            samples += len(batch["index"])
        best = max(best, samples / (time.perf_counter() - started))
    return {"samples_per_s": best, "steps": steps, "train_keyframes": len(train.dataset)}


def cli_run(config: str, overrides: list[str], epochs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench_testbed_") as tmp:
        cmd = [sys.executable, "-m", "seal_transfer.pretrain", "--config", config, f"run_dir={tmp}",
               f"trainer.max_epochs={epochs}", "trainer.enable_progress_bar=false", *overrides]
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"pretrain failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        metrics = json.loads((Path(tmp) / "pretrain" / "metrics.json").read_text())
    shown = " ".join(c if c != sys.executable else "python" for c in cmd[:3] + cmd[3:5] + cmd[6:])
    return {"samples_per_s": float(metrics["train_samples_per_s"]), "wall_s": wall, "command": shown,
            "train_loop_s": float(metrics["train_loop_seconds"]), "mAP": float(metrics.get("mAP", float("nan")))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/testbed.yaml")
    ap.add_argument("--epochs", type=int, default=1, help="CLI epochs per row")
    ap.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for every run")
    ap.add_argument("--out", default="results/bench_testbed.md")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    cfg = load_config(Config, [ROOT / args.config], args.set)
    rows = [("testbed config (frames preloaded, no workers)", []),
            ("on-the-fly decoding, 2 DataLoader workers (the loader before the testbed)",
             ["data.preload=false", "data.num_workers=2"])]
    load_before = os.getloadavg()[0]
    results = []
    for name, extra in rows:
        cli = cli_run(args.config, [*args.set, *extra], args.epochs)
        steps_per_epoch = cli["samples_per_s"] * cli["train_loop_s"] / args.epochs / int(cfg.data.batch_size)
        bare = bare_loop(cfg, steps=max(1, round(steps_per_epoch)))
        results.append((name, cli, bare))
        print(f"{name}: CLI {cli['samples_per_s']:.1f} samples/s, bare loop {bare['samples_per_s']:.1f} "
              f"({cli['samples_per_s'] / bare['samples_per_s']:.0%})", flush=True)
    load_after = os.getloadavg()[0]
    lines = [
        "# Testbed pretraining: the `pretrain` CLI against a bare PyTorch loop",
        "",
        "Written by `python scripts/bench_testbed.py` "
        f"({' '.join(sys.argv[1:]) or 'defaults'}). Same model, optimiser and batch size; the bare loop reuses "
        "batches the stage's own dataset built up front (no decoding, augmentation, DataLoader or Lightning). "
        "CLI samples/s are training samples per second of the training loop's wall time, data loading included and "
        "validation excluded (`train_samples_per_s` in the stage's metrics.json). Goal: CLI ≥ 80 % of the bare loop.",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), torch "
        f"{torch.__version__}; load average {load_before:.1f} before, {load_after:.1f} after (other jobs on the "
        "machine slow both sides alike only if they run throughout).",
        "",
        "| loader | CLI samples/s | bare loop samples/s | CLI / bare | CLI wall (s) | command |",
        "|---|---|---|---|---|---|",
    ]
    for name, cli, bare in results:
        lines.append(f"| {name} | {cli['samples_per_s']:.1f} | {bare['samples_per_s']:.1f} | "
                     f"{cli['samples_per_s'] / bare['samples_per_s']:.0%} | {cli['wall_s']:.0f} | `{cli['command']}` |")
    lines.append("")
    with atomic_write(ROOT / args.out) as handle:
        handle.write("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
