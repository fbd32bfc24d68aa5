"""Training-step benchmark: SlowFast + RoI head, our LightningModule under a Lightning Trainer vs a bare PyTorch
loop on the same pytorchvideo model, same batch, same optimiser, with and without `torch.compile`.

Reports training clips/s, peak GPU memory, and model-FLOPs utilisation: FLOPs of one training step (forward +
backward) counted by `torch.utils.flop_counter.FlopCounterMode` (matmul/conv FLOPs = 2 x MACs; RoIAlign, norms and
elementwise ops not counted), divided by step time and by the device's dense peak (`--peak-tflops`, default
looked up from the GPU name: H100/H200 989 TFLOPS bf16 dense, A100 312).

Inputs are synthetic tensors already on the device, so this measures the model and the training loop, not the
data pipeline (see bench_data.py).

    python scripts/bench_train.py --device cuda                     # R50 8x8, 224 px, bf16, batch auto
    python scripts/bench_train.py --device cpu --tiny --steps 3     # CPU smoke run at tiny size
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F

from seal_transfer.engine.config import OptimConfig
from seal_transfer.engine.detection import DetectionModule
from seal_transfer.models.config import ModelConfig, resolve
from seal_transfer.utils.fileio import atomic_write

ROOT = Path(__file__).resolve().parents[1]
PEAK_TFLOPS_BF16 = {"H200": 989.5, "H100": 989.5, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "V100": 125.0}


def make_batch(
    cfg: ModelConfig, batch: int, boxes: int, classes: int, device: torch.device, channels_last: bool
) -> dict[str, Any]:
    r = resolve(cfg)
    size = r.crop_size
    gen = torch.Generator().manual_seed(0)
    slow = torch.randn(batch, 3, r.num_frames, size, size, generator=gen)
    fast = torch.randn(batch, 3, r.num_fast_frames, size, size, generator=gen)
    xy = torch.rand(batch * boxes, 2, generator=gen) * size * 0.5
    wh = torch.rand(batch * boxes, 2, generator=gen) * size * 0.5 + 8
    idx = torch.arange(batch).repeat_interleave(boxes).float()[:, None]
    box = torch.cat([idx, xy, (xy + wh).clamp(max=size)], 1)
    labels = (torch.rand(batch * boxes, classes, generator=gen) < 0.05).float()
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    inputs = [slow.to(device).contiguous(memory_format=fmt), fast.to(device).contiguous(memory_format=fmt)]
    return {
        "views": [(inputs, box.to(device))],
        "labels": labels.to(device),
        "index": torch.arange(batch, device=device),
    }


def build_module(cfg: ModelConfig, classes: int, device: torch.device, channels_last: bool) -> DetectionModule:
    optim = dataclasses.asdict(OptimConfig())
    optim.update(warmup_epochs=0.0)
    module = DetectionModule(dataclasses.asdict(cfg), optim, num_classes=classes)
    module.to(device)
    if channels_last:
        module.to(memory_format=torch.channels_last_3d)
    return module


def count_step_flops(module: DetectionModule, batch: dict[str, Any], bf16: bool) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    inputs, boxes = batch["views"][0]
    counter = FlopCounterMode(display=False)
    with counter, torch.autocast(inputs[0].device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = module.model(inputs, boxes)
        F.binary_cross_entropy_with_logits(logits.float(), batch["labels"]).backward()
    module.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(module: DetectionModule, batch: dict[str, Any], steps: int, warmup: int, bf16: bool) -> float:
    """Plain PyTorch: forward, BCE, backward, SGD step. Returns seconds per step after warm-up."""
    model = module.model
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-7)
    inputs, boxes = batch["views"][0]
    device = inputs[0].device
    started = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            sync(device)
            started = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(inputs, boxes)
        loss = F.binary_cross_entropy_with_logits(logits.float(), batch["labels"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return (time.perf_counter() - started) / steps


class _StepTimer:
    """Lightning callback: wall time of the steps after warm-up."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        self.warmup, self.device = warmup, device
        self.started: Optional[float] = None
        self.ended = 0.0
        self.steps = 0

    def hook(self) -> Any:
        import lightning as L

        timer = self

        class Hook(L.Callback):
            def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
                if batch_idx == timer.warmup:
                    sync(timer.device)
                    timer.started = time.perf_counter()

            def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, idx: int) -> None:
                if timer.started is not None:
                    timer.steps += 1

            def on_train_end(self, trainer: Any, pl_module: Any) -> None:
                sync(timer.device)
                timer.ended = time.perf_counter()

        return Hook()


class _Repeat(torch.utils.data.Dataset):
    def __init__(self, batch: dict[str, Any], n: int) -> None:
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.batch


def lightning_loop(module: DetectionModule, batch: dict[str, Any], steps: int, warmup: int, bf16: bool) -> float:
    """Our LightningModule's training_step under a Trainer (optimiser + scheduler from configure_optimizers)."""
    import lightning as L

    device = batch["labels"].device
    timer = _StepTimer(warmup, device)
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        precision="bf16-mixed" if bf16 else "32-true",
        max_steps=warmup + steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer.hook()],
        log_every_n_steps=10,
    )
    loader = torch.utils.data.DataLoader(_Repeat(batch, warmup + steps), batch_size=None, num_workers=0)
    trainer.fit(module, train_dataloaders=loader)
    return (timer.ended - (timer.started or timer.ended)) / max(timer.steps, 1)


def auto_batch(cfg: ModelConfig, classes: int, boxes: int, device: torch.device, args: argparse.Namespace) -> int:
    """Largest power-of-two batch whose training step fits (doubling until out of memory)."""
    best, size = 0, 4
    while size <= 512:
        try:
            module = build_module(cfg, classes, device, args.channels_last)
            batch = make_batch(cfg, size, boxes, classes, device, args.channels_last)
            bare_loop(module, batch, 1, 1, args.bf16)
            best = size
            size *= 2
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            module = batch = None  # type: ignore[assignment]
            torch.cuda.empty_cache()
    if best == 0:
        raise SystemExit("even batch 4 does not fit on this GPU")
    return best // 2 if args.headroom and best > 4 else best


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--preset", default="slowfast_r50_8x8")
    ap.add_argument("--tiny", action="store_true", help="tiny preset, batch 2 (CPU smoke run)")
    ap.add_argument("--batch", type=int, default=0, help="clips per step; 0 = largest that fits (cuda) / 2 (cpu)")
    ap.add_argument("--headroom", action="store_true", help="with --batch 0: use half the largest fitting batch")
    ap.add_argument("--boxes", type=int, default=3, help="person boxes per clip (AVA averages about 2.6)")
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--no-bf16", dest="bf16", action="store_false")
    ap.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    ap.add_argument("--compile", choices=["both", "on", "off"], default="both")
    ap.add_argument("--peak-tflops", type=float, default=None, help="dense peak used for MFU (default: by GPU name)")
    ap.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (CPU runs only)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)  # spinning idle threads on a shared machine distort CPU ratios
    cfg = ModelConfig(preset="tiny" if args.tiny else args.preset)
    if device.type == "cpu":
        args.bf16 = args.bf16 and not args.tiny  # CPU bf16 autocast is slow and beside the point at tiny size
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    batch_size = args.batch or (auto_batch(cfg, args.classes, args.boxes, device, args) if device.type == "cuda" else 2)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")
    peak = args.peak_tflops
    if peak is None and device.type == "cuda":
        peak = next((v for k, v in PEAK_TFLOPS_BF16.items() if k in name), None)
    rows: list[dict[str, Any]] = []
    compile_modes = {"both": [False, True], "on": [True], "off": [False]}[args.compile]
    for compiled in compile_modes:
        for loop in ("bare", "lightning"):
            torch.manual_seed(0)
            module = build_module(cfg, args.classes, device, args.channels_last)
            batch = make_batch(cfg, batch_size, args.boxes, args.classes, device, args.channels_last)
            flops = count_step_flops(module, batch, args.bf16)
            if compiled:
                module.model = torch.compile(module.model)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            fn = bare_loop if loop == "bare" else lightning_loop
            seconds = fn(module, batch, args.steps, args.warmup, args.bf16)
            achieved = flops / seconds
            rows.append(
                {
                    "loop": loop,
                    "compile": compiled,
                    "batch": batch_size,
                    "clips_per_s": batch_size / seconds,
                    "step_ms": seconds * 1e3,
                    "step_tflop": flops / 1e12,
                    "achieved_tflops": achieved / 1e12,
                    "mfu": achieved / (peak * 1e12) if peak else None,
                    "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            module = batch = None  # type: ignore[assignment]
            if device.type == "cuda":
                torch.cuda.empty_cache()
    for compiled in compile_modes:
        bare = next(r for r in rows if r["loop"] == "bare" and r["compile"] == compiled)
        ours = next(r for r in rows if r["loop"] == "lightning" and r["compile"] == compiled)
        ours["overhead_vs_bare"] = ours["step_ms"] / bare["step_ms"] - 1
    report = {
        "device": name,
        "peak_tflops": peak,
        "torch": torch.__version__,
        "preset": cfg.preset,
        "bf16": args.bf16,
        "channels_last_3d": args.channels_last,
        "boxes_per_clip": args.boxes,
        "command": "python scripts/bench_train.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "rows": rows,
    }
    print(render(report))
    if args.out:
        with atomic_write(args.out) as handle:
            json.dump(report, handle, indent=2)
    return 0


def render(report: dict[str, Any]) -> str:
    lines = [
        f"{report['device']}, torch {report['torch']}, preset {report['preset']}, bf16={report['bf16']}, "
        f"channels_last_3d={report['channels_last_3d']}, peak {report['peak_tflops']} TFLOPS",
        "| loop | compile | batch | clips/s | step ms | GFLOP/step | MFU | peak mem GiB | overhead vs bare |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        mem = f"{r['peak_mem_gib']:.1f}" if r["peak_mem_gib"] is not None else "n/a"
        over = f"{r['overhead_vs_bare']:+.1%}" if "overhead_vs_bare" in r else ""
        lines.append(
            f"| {r['loop']} | {r['compile']} | {r['batch']} | {r['clips_per_s']:.1f} | {r['step_ms']:.1f} | "
            f"{r['step_tflop'] * 1e3:.2f} | {mfu} | {mem} | {over} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
