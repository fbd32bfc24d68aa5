"""Data-pipeline benchmark: clips per CPU-second of our keyframe loader vs pytorchvideo's `EncodedVideo.get_clip`
+ a plain transform, on the same clips of the same videos in the same run, and vs the decode-only limit (raw PyAV
decode, no colour conversion, of exactly the frames those clips need, each decoded once).

Clips follow AVA's layout: one keyframe per second, SlowFast 8x8 input (32 fast frames, 2 source frames apart,
so neighbouring keyframes share about half their frames). Our loader runs as `KeyframeDataset` with the training
transform (scale jitter 256-320, crop 224), in keyframe order (validation / pseudo-labelling) and shuffled
(training). Everything runs in this one process so CPU time is measured exactly (`time.process_time`, all
threads): "clips/s per core" = clips / CPU seconds. Each path runs `--repeats` times, the paths interleaved
round-robin so a busy spell on a shared machine hits all of them alike; the table keeps each path's fastest run
(CPU time) and lists every run below it. The process's malloc is set up as in our DataLoader workers
(`seal_transfer.data.workers.keep_freed_memory`) for every path, pytorchvideo's included; `--default-malloc`
leaves glibc's defaults.

    python scripts/bench_data.py                       # 640x360 30 fps, 4 videos x 24 s, GOP 60
    python scripts/bench_data.py --tiny --out /tmp/b.md  # seconds-long smoke run (tests)
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from seal_transfer.data.clip import ClipSpec, pack_pathways
from seal_transfer.data.config import AugmentConfig
from seal_transfer.data.datasets import KeyframeDataset, build_keyframe_index
from seal_transfer.data.formats.ava import AvaTable, VideoTiming
from seal_transfer.data.transforms import ClipTransform
from seal_transfer.data.video import clip_frame_indices, write_video
from seal_transfer.data.workers import keep_freed_memory
from seal_transfer.utils.fileio import atomic_write

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    name: str
    clips: int
    wall_s: float
    cpu_s: float
    runs_cpu_s: tuple[float, ...] = ()

    @property
    def per_core(self) -> float:
        return self.clips / max(self.cpu_s, 1e-9)


def make_videos(folder: Path, n: int, seconds: float, width: int, height: int, fps: int, gop: int) -> list[Path]:
    """Textured moving content (so the encoder produces realistic P/B-frames), cached by parameters."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for v in range(n):
        path = folder / f"bench{v}_{width}x{height}_{fps}fps_{seconds:g}s_gop{gop}.mp4"
        paths.append(path)
        if path.exists():
            continue
        rng = np.random.default_rng(v)
        texture = rng.integers(0, 255, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
        texture = np.kron(texture, np.ones((8, 8, 1), np.uint8))[:height, :width].astype(np.float32)
        frames = np.empty((int(seconds * fps), height, width, 3), np.uint8)
        for t in range(len(frames)):
            shift = np.roll(texture, (t * 2) % width, axis=1)
            wave = 60 * np.sin((xx + 3 * t) / 40.0)[..., None] + 40 * np.cos((yy - 2 * t) / 30.0)[..., None]
            frames[t] = np.clip(0.6 * shift + wave + 60, 0, 255).astype(np.uint8)
        write_video(path, frames, fps, gop_size=gop)
    return paths


def keyframe_table(paths: list[Path], seconds: float, span_s: float) -> AvaTable:
    """One centred person box per whole second that has a full clip span inside the video."""
    first = int(np.ceil(span_s / 2)) + 1
    times = np.arange(first, int(seconds - span_s / 2))
    vids = [p.stem for p in paths for _ in times]
    ts = np.tile(times, len(paths)).astype(np.float64)
    boxes = np.tile(np.array([[0.3, 0.2, 0.7, 0.9]], np.float32), (len(vids), 1))
    return AvaTable.from_columns(vids, ts, boxes, action_ids=np.ones(len(vids), np.int64))


def timed(name: str, clips: int, fn: Callable[[], None]) -> Result:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    result = Result(name, clips, time.perf_counter() - wall, time.process_time() - cpu)
    print(f"{name}: {result.wall_s:.2f} s wall, {result.cpu_s:.2f} s CPU, {result.per_core:.1f} clips/s/core")
    return result


def run_ours(dataset: KeyframeDataset, order: list[int]) -> None:
    for i in order:
        item = dataset[i]
        assert item["views"][0][0][1].shape[1] == dataset.clip.num_frames


def run_pytorchvideo(
    paths: dict[str, Path], clips: list[tuple[str, np.ndarray]], fps: float, crop: int, short: int
) -> None:
    """`EncodedVideo.get_clip(start, end)` (decodes + converts every frame in the window at full size, float32)
    then the usual pytorchvideo-style recipe: uniform temporal subsample, /255, short-side scale, random crop,
    normalise. Written with torch ops because pytorchvideo.transforms does not import on current torchvision."""
    from pytorchvideo.data.encoded_video import EncodedVideo

    videos = {vid: EncodedVideo.from_path(str(p), decode_audio=False, decoder="pyav") for vid, p in paths.items()}
    rng = np.random.default_rng(0)
    mean = torch.tensor([0.45] * 3).view(3, 1, 1, 1)
    std = torch.tensor([0.225] * 3).view(3, 1, 1, 1)
    for vid, indices in clips:
        start, end = indices[0] / fps, (indices[-1] + 1) / fps
        video = videos[vid].get_clip(start, end)["video"]  # (C, T, H, W) float32 0..255
        t = video.shape[1]
        keep = torch.linspace(0, t - 1, len(indices)).long()
        x = video.index_select(1, keep) / 255.0
        c, t, h, w = x.shape
        scale = short / min(h, w)
        x = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear", align_corners=False)
        y0 = int(rng.integers(0, x.shape[-2] - crop + 1))
        x0 = int(rng.integers(0, x.shape[-1] - crop + 1))
        x = (x[..., y0 : y0 + crop, x0 : x0 + crop] - mean) / std
        pack_pathways(x.contiguous(), 4)
    for video in videos.values():
        video.close()


def run_decode_only(paths: dict[str, Path], clips: list[tuple[str, np.ndarray]]) -> int:
    """Decode (no RGB conversion) from the first needed frame's keyframe to the last needed frame, once per video."""
    import av

    decoded = 0
    by_video: dict[str, list[np.ndarray]] = {}
    for vid, idx in clips:
        by_video.setdefault(vid, []).append(idx)
    for vid, parts in by_video.items():
        needed = np.unique(np.concatenate(parts))
        with av.open(str(paths[vid])) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate
            start_pts = stream.start_time or 0
            target = start_pts + int(max(0.0, (needed[0] - 0.5) / rate) / stream.time_base)
            container.seek(target, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                decoded += 1
                if round((frame.pts - start_pts) * stream.time_base * rate) >= needed[-1]:
                    break
    return decoded


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=24)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--gop", type=int, default=60, help="encoder keyframe interval (frames)")
    ap.add_argument("--frames", type=int, default=32, help="fast-pathway frames per clip")
    ap.add_argument("--stride", type=int, default=2, help="source frames between fast frames")
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--min-short", type=int, default=256)
    ap.add_argument("--max-short", type=int, default=320)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (per-core measurement)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per path (interleaved); the fastest is reported")
    ap.add_argument("--default-malloc", action="store_true", help="keep glibc's malloc thresholds (no worker set-up)")
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/seal_bench_data"))
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench_data.md")
    ap.add_argument("--tiny", action="store_true", help="2 short 160x120 videos, 8-frame clips (smoke test)")
    args = ap.parse_args(argv)
    if args.tiny:
        args.videos, args.seconds, args.width, args.height, args.gop = 2, 6, 160, 120, 30
        args.frames, args.stride, args.crop, args.min_short, args.max_short = 8, 2, 64, 72, 88
    torch.set_num_threads(args.threads)
    args.malloc = "glibc defaults" if args.default_malloc else (
        "as in our DataLoader workers" if keep_freed_memory() else "glibc defaults (mallopt unavailable)"
    )

    paths = make_videos(args.work_dir, args.videos, args.seconds, args.width, args.height, args.fps, args.gop)
    span_s = args.frames * args.stride / args.fps
    table = keyframe_table(paths, args.seconds, span_s)
    index = build_keyframe_index(table, None)
    video_paths = {p.stem: p for p in paths}
    timings = {p.stem: VideoTiming(fps=float(args.fps), time_offset=0.0) for p in paths}
    clip = ClipSpec(num_frames=args.frames, sample_rate=args.stride, alpha=4)
    aug = AugmentConfig(min_short_side=args.min_short, max_short_side=args.max_short, crop_size=args.crop)
    clips = [
        (index.video_ids[i], clip_frame_indices(float(index.timestamps[i]), args.fps, 0.0, args.frames, args.stride))
        for i in range(len(index))
    ]
    n = len(clips)

    def dataset(**kw: Any) -> KeyframeDataset:
        return KeyframeDataset(index, video_paths, timings, clip, ClipTransform(aug, train=True), seed=0, **kw)

    sequential = list(range(n))
    shuffled = np.random.default_rng(0).permutation(n).tolist()
    dataset(views=1)[0]  # import / first-open costs outside the timings
    decoded = {"frames": 0}

    def decode_only() -> None:
        decoded["frames"] = run_decode_only(video_paths, clips)

    paths: list[tuple[str, Callable[[], None]]] = [
        ("decode-only limit (PyAV decode of the needed frames, once each, no RGB)", decode_only),
        ("ours, keyframe order (validation / pseudo-labelling)", lambda: run_ours(dataset(), sequential)),
        ("ours, keyframe order, two views (pseudo-labelling)", lambda: run_ours(dataset(views=2), sequential)),
        ("ours, shuffled (training)", lambda: run_ours(dataset(), shuffled)),
        ("ours, keyframe order, no frame cache", lambda: run_ours(dataset(cache_frames=0), sequential)),
        (
            "pytorchvideo EncodedVideo.get_clip + plain transform",
            lambda: run_pytorchvideo(video_paths, clips, args.fps, args.crop, args.min_short),
        ),
    ]
    runs: dict[str, list[Result]] = {name: [] for name, _ in paths}
    for _ in range(max(1, args.repeats)):
        for name, fn in paths:
            runs[name].append(timed(name, n, fn))
    results = [best_of(runs[name]) for name, _ in paths]
    write_report(args, results, decoded["frames"], n)
    print(args.out.read_text())
    return 0


def best_of(runs: list[Result]) -> Result:
    best = min(runs, key=lambda r: r.cpu_s)
    return Result(best.name, best.clips, best.wall_s, best.cpu_s, tuple(r.cpu_s for r in runs))


def write_report(args: argparse.Namespace, results: list[Result], decoded_frames: int, n: int) -> None:
    import av

    limit = results[0]
    pvt = next(r for r in results if r.name.startswith("pytorchvideo"))
    ours = results[1]
    lines = [
        "# Data pipeline benchmark (`scripts/bench_data.py`)",
        "",
        f"Command: `python scripts/bench_data.py {' '.join(sys.argv[1:])}`".rstrip(),
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), "
        f"Python {platform.python_version()}, torch {torch.__version__}, PyAV {av.__version__}.",
        f"Videos: {args.videos} x {args.seconds:g} s, {args.width}x{args.height}, {args.fps} fps, H.264 GOP "
        f"{args.gop}. Clips: {n} keyframes 1 s apart, {args.frames} frames every {args.stride} source frames, "
        f"train transform (short side {args.min_short}-{args.max_short}, crop {args.crop}). "
        f"Decode-only pass decoded {decoded_frames} frames.",
        "",
        "Clips/s per core = clips / CPU seconds of this process (all threads), single process, no workers. "
        f"Each path ran {max(1, args.repeats)} times, paths interleaved; the table shows each path's fastest run "
        f"(CPU time), every run's CPU seconds are listed below it. malloc: {args.malloc}, for every path.",
        "",
        "| path | clips | wall s | CPU s | clips/s per core | vs pytorchvideo | of decode-only limit |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.clips} | {r.wall_s:.2f} | {r.cpu_s:.2f} | {r.per_core:.1f} | "
            f"{r.per_core / pvt.per_core:.2f}x | {r.per_core / limit.per_core:.0%} |"
        )
    lines += ["", "CPU seconds of every run:", ""]
    lines += [f"- {r.name}: {', '.join(f'{c:.2f}' for c in r.runs_cpu_s)}" for r in results]
    lines += [
        "",
        f"Goal (issue): ours >= 5x pytorchvideo and >= 50% of the decode-only limit. Keyframe order: "
        f"{ours.per_core / pvt.per_core:.2f}x pytorchvideo, {ours.per_core / limit.per_core:.0%} of the limit.",
        "",
    ]
    with atomic_write(args.out) as handle:
        handle.write("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
