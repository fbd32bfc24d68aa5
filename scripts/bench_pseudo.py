"""Pseudo-labelling throughput: the batched two-view design (one backbone pass per keyframe per view, all of a
keyframe's boxes through the RoI head together, keyframes batched) vs one forward per person box per view.

Inputs are synthetic clips already on the device (the decode side is bench_data.py's); both designs score the same
boxes with the same model under `inference_mode` (bf16 autocast on CUDA). Reports boxes/s, keyframes/s, the
ratio, and checks that both designs give the same scores.

    python scripts/bench_pseudo.py --device cuda                    # R50 8x8, 224 px
    python scripts/bench_pseudo.py --device cpu --tiny              # CPU smoke run at tiny size
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch
from bench_train import build_module, make_batch, sync  # the sibling script (scripts/ is sys.path[0])

from seal_transfer.models.config import ModelConfig
from seal_transfer.utils.fileio import atomic_write

ROOT = Path(__file__).resolve().parents[1]


@torch.inference_mode()
def batched(module: Any, views: list[dict[str, Any]], bf16: bool) -> tuple[float, list[torch.Tensor]]:
    device = views[0]["labels"].device
    sync(device)
    started = time.perf_counter()
    scores = []
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for view in views:
            inputs, boxes = view["views"][0]
            scores.append(module.scores(inputs, boxes))
    sync(device)
    return time.perf_counter() - started, scores


@torch.inference_mode()
def per_box(module: Any, views: list[dict[str, Any]], bf16: bool) -> tuple[float, list[torch.Tensor]]:
    device = views[0]["labels"].device
    sync(device)
    started = time.perf_counter()
    scores = []
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for view in views:
            inputs, boxes = view["views"][0]
            rows = []
            for k in range(boxes.shape[0]):
                b = int(boxes[k, 0])
                one = boxes[k : k + 1].clone()
                one[:, 0] = 0
                rows.append(module.scores([x[b : b + 1] for x in inputs], one))
            scores.append(torch.cat(rows))
    sync(device)
    return time.perf_counter() - started, scores


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--preset", default="slowfast_r50_8x8")
    ap.add_argument("--tiny", action="store_true", help="tiny preset (CPU smoke run)")
    ap.add_argument("--keyframes", type=int, default=0, help="keyframes per batch; 0 = 32 (cuda) / 4 (cpu)")
    ap.add_argument("--boxes", type=int, default=3, help="person boxes per keyframe (AVA averages about 2.6)")
    ap.add_argument("--classes", type=int, default=172, help="source (SEAL atomic) classes")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-bf16", dest="bf16", action="store_false")
    ap.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (CPU runs only)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)  # spinning idle threads on a shared machine distort CPU ratios
    bf16 = args.bf16 and device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    cfg = ModelConfig(preset="tiny" if args.tiny else args.preset)
    keyframes = args.keyframes or (32 if device.type == "cuda" else 4)
    module = build_module(cfg, args.classes, device, channels_last=device.type == "cuda").eval()
    views = [make_batch(cfg, keyframes, args.boxes, args.classes, device, device.type == "cuda") for _ in range(2)]
    views[1]["views"][0][0][0].mul_(0.9)  # a second "view": different pixels, same boxes
    batched(module, views, bf16)  # warm-up (cudnn autotune, allocator)
    per_box(module, views[:1], bf16)
    t_batched = min(batched(module, views, bf16)[0] for _ in range(args.repeats))
    t_per_box = min(per_box(module, views, bf16)[0] for _ in range(args.repeats))
    ref, alt = batched(module, views, bf16)[1], per_box(module, views, bf16)[1]
    max_diff = max(float((a.float() - b.float()).abs().max()) for a, b in zip(ref, alt))
    boxes = keyframes * args.boxes
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")
    report = {
        "device": name,
        "torch": torch.__version__,
        "preset": cfg.preset,
        "bf16": bf16,
        "keyframes_per_batch": keyframes,
        "boxes_per_keyframe": args.boxes,
        "batched": {"boxes_per_s": boxes / t_batched, "keyframes_per_s": keyframes / t_batched},
        "per_box": {"boxes_per_s": boxes / t_per_box, "keyframes_per_s": keyframes / t_per_box},
        "speedup": t_per_box / t_batched,
        "max_score_difference": max_diff,
        "command": "python scripts/bench_pseudo.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    print(
        f"{name}, {cfg.preset}, {keyframes} keyframes x {args.boxes} boxes, two views, bf16={bf16}\n"
        f"| design | boxes/s | keyframes/s |\n|---|---:|---:|\n"
        f"| batched two-view | {report['batched']['boxes_per_s']:.1f} | {report['batched']['keyframes_per_s']:.1f} |\n"
        f"| one forward per box | {report['per_box']['boxes_per_s']:.1f} | "
        f"{report['per_box']['keyframes_per_s']:.1f} |\n"
        f"speed-up {report['speedup']:.2f}x; max |score difference| {max_diff:.2e}"
    )
    if args.out:
        with atomic_write(args.out) as handle:
            json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
