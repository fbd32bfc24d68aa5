"""`python -m seal_transfer.demo VIDEO --checkpoint CKPT [--boxes CSV | --gt CSV]`: run a trained detector on a
video and write an annotated mp4 (+ a GIF preview): every person box with its top labels and scores, updated at
every keyframe and held until the next one.

Person boxes come from any person detector written as a PySlowFast-style box CSV
(`video_id,seconds,x1,y1,x2,y2,,score`, coordinates normalised to [0, 1]), from an AVA ground-truth CSV (`--gt`),
or — when neither is given — from `../annotations/*_predicted_boxes.csv` beside the video's folder (the synthetic
world's and a real AVA folder's layout). Box timestamps are movie seconds: a file's frame 0 sits at
`--time-offset` (0 for a plain video, 900 for AVA's cut files; read from `annotations/video_meta.csv` when found).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from seal_transfer.cli import guarded_main
from seal_transfer.data.box_plan import auto_annotations, box_plan, find_detector_boxes, read_boxes
from seal_transfer.engine.inference import load_scorer, resolved_model_config, score_keyframe, stage_augment
from seal_transfer.errors import UserError
from seal_transfer.report.frames import display_size, draw_detections, label_font, resize_frames, write_gif

PROG = "python -m seal_transfer.demo"
# Box colours (Okabe-Ito), cycled per box within a keyframe.
FRAME_BUDGET_BYTES = 3 << 30  # decoded output frames held for the encoder; beyond this ask for --duration


# ------------------------------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Annotate a video with a trained action detector: person boxes + top labels at each keyframe.",
        epilog="Boxes from any person detector: write one CSV row per box, video_id,seconds,x1,y1,x2,y2,,score "
               "(coordinates normalised to [0, 1]); see docs/stages.md ('Demo').",
    )
    parser.add_argument("video", metavar="VIDEO", help="video file (.mp4/.mkv/.webm/...) or a folder of frames")
    parser.add_argument("--checkpoint", required=True, metavar="CKPT",
                        help="RUN/<stage>/model.pt (names included) or a Lightning .ckpt (use --labelmap for names)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--boxes", metavar="CSV", help="person boxes, PySlowFast layout video,sec,x1,y1,x2,y2,,score")
    source.add_argument("--gt", metavar="CSV", help="AVA ground-truth CSV: draw the annotated boxes instead")
    parser.add_argument("--video-id", help="rows of the box CSV to use (default: the video's file name stem)")
    parser.add_argument("--box-threshold", type=float, default=0.8,
                        help="minimum person-detector score (default 0.8, PySlowFast's AVA setting)")
    parser.add_argument("--time-offset", type=float, default=None,
                        help="movie second of the file's frame 0: 0 for plain videos, 900 for AVA cut files "
                             "(default: annotations/video_meta.csv if it lists the video, else 0)")
    parser.add_argument("--fps", type=float, default=None, help="frame rate of a frame folder (default 30)")
    parser.add_argument("--fps-keyframes", type=float, default=1.0, help="detector runs per second (default 1)")
    parser.add_argument("--top-k", type=int, default=3, help="labels shown per box (default 3)")
    parser.add_argument("--label-threshold", type=float, default=0.0, help="hide labels scoring below this")
    parser.add_argument("--labelmap", metavar="PBTXT", help="class names (overrides those in the checkpoint)")
    parser.add_argument("--short-side", type=int, default=None,
                        help="model input short side (default: the stage's data.augment.eval_short_side)")
    parser.add_argument("--display-short-side", type=int, default=360,
                        help="upscale small videos to this short side for legible labels (0: native size)")
    parser.add_argument("--start", type=float, default=0.0, help="first second of the file to render (default 0)")
    parser.add_argument("--duration", type=float, default=None, help="seconds to render (default: to the end)")
    parser.add_argument("--out", metavar="MP4", help="output video (default: demo_<video_id>.mp4)")
    parser.add_argument("--no-gif", action="store_true", help="skip the GIF preview written beside the mp4")
    parser.add_argument("--detections", metavar="CSV", help="also write the scored boxes as AVA detection rows")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--allow-pickle-checkpoint", action="store_true",
                        help="load a checkpoint that needs full pickle (runs code: trusted files only)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    if args.fps_keyframes <= 0:
        raise UserError(f"--fps-keyframes {args.fps_keyframes}: must be > 0")
    if args.top_k < 1:
        raise UserError(f"--top-k {args.top_k}: must be >= 1")
    if not 0.0 <= args.box_threshold <= 1.0:
        raise UserError(f"--box-threshold {args.box_threshold}: must be in [0, 1]")
    if args.fps is not None and args.fps <= 0:
        raise UserError(f"--fps {args.fps}: must be > 0")
    if args.duration is not None and args.duration <= 0:
        raise UserError(f"--duration {args.duration}: must be > 0")
    if args.start < 0:
        raise UserError(f"--start {args.start}: must be >= 0")
    if args.short_side is not None and args.short_side <= 0:
        raise UserError(f"--short-side {args.short_side}: must be > 0")
    if args.out is not None and Path(args.out).suffix.lower() not in (".mp4", ".mkv", ".webm"):
        raise UserError(f"--out {args.out}: use a .mp4, .mkv or .webm file name")


def main(argv: Sequence[str]) -> int:
    from tqdm import tqdm

    from seal_transfer.data.config import AugmentConfig
    from seal_transfer.data.formats.ava import AvaTable, read_video_meta, write_ava_csv
    from seal_transfer.data.transforms import ClipTransform
    from seal_transfer.data.video import FrameFolderSource, clip_frame_indices, open_video_source
    from seal_transfer.data.video import write_video as encode
    from seal_transfer.models.config import clip_spec

    args = build_parser().parse_args(list(argv))
    _check_args(args)
    warnings.filterwarnings("ignore", ".*torch.jit.script.*")
    started = time.time()
    video = Path(args.video)
    if not video.exists():
        raise UserError(f"{video}: video file or frame folder does not exist")
    video_id = args.video_id or (video.name if video.is_dir() else video.stem)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device

    # Frames and timing.
    source = open_video_source(video, video_id=video_id)
    if isinstance(source, FrameFolderSource):
        fps, num_frames = float(args.fps or 30.0), source.num_frames
        if num_frames == 0:
            raise UserError(f"{video}: no frames named like {source.frame_path(0).name}")
        width, height = source.read(np.array([0])).shape[2:0:-1]
    else:
        info = source.info
        fps, num_frames, width, height = info.fps, info.num_frames, info.width, info.height
        if args.fps is not None:
            raise UserError("--fps applies to frame folders only; a video file carries its own frame rate")
    annotations = auto_annotations(video)
    time_offset = args.time_offset
    timing_note = "--time-offset"
    if time_offset is None:
        meta_path = annotations / "video_meta.csv" if annotations else None
        meta = read_video_meta(meta_path) if meta_path is not None and meta_path.is_file() else {}
        if video_id in meta:
            time_offset, timing_note = meta[video_id].time_offset, f"{meta_path}"
        else:
            time_offset, timing_note = 0.0, "default (plain video)"

    # Boxes.
    if args.gt:
        plan = box_plan(read_boxes(Path(args.gt), "gt"), video_id, 0.0, args.gt)
    else:
        box_path = Path(args.boxes) if args.boxes else None
        if box_path is None and annotations is not None:
            box_path = find_detector_boxes(annotations, video_id)
        if box_path is None:
            raise UserError(f"{video}: no person boxes: pass --boxes CSV (any person detector, PySlowFast layout "
                            "video_id,sec,x1,y1,x2,y2,,score) or --gt CSV")
        plan = box_plan(read_boxes(box_path, "boxes"), video_id, args.box_threshold, str(box_path))

    # Model.
    checkpoint = Path(args.checkpoint)
    demo = load_scorer(checkpoint, labelmap=args.labelmap, allow_pickle=args.allow_pickle_checkpoint,
                           device=device)
    spec = clip_spec(resolved_model_config(demo.model_cfg))
    augment = {k: v for k, v in stage_augment(checkpoint).items() if k in ("eval_short_side", "mean", "std")}
    if args.short_side is not None:
        augment["eval_short_side"] = args.short_side
    transform = ClipTransform(AugmentConfig(**augment), train=False)

    # Keyframes over the rendered span.
    first = int(round(args.start * fps))
    last = num_frames if args.duration is None else min(num_frames, int(round((args.start + args.duration) * fps)))
    if first >= last:
        raise UserError(f"--start {args.start}: past the end of the video ({num_frames / fps:.1f} s)")
    out_w, out_h = display_size(int(width), int(height), args.display_short_side)
    if (last - first) * out_w * out_h * 3 > FRAME_BUDGET_BYTES:
        raise UserError(f"{video}: {last - first} frames at {out_w}x{out_h} exceed the demo's memory budget; "
                        "render a part with --start/--duration")
    period = 1.0 / args.fps_keyframes
    key_times = np.arange(first / fps, last / fps, period)
    tolerance = period / 2
    keyframes: list[tuple[int, Optional[int]]] = []  # (first frame shown, box-plan index or None)
    for t in key_times:
        keyframes.append((int(round(t * fps)), plan.at(time_offset + t, tolerance)))
    if not any(j is not None for _, j in keyframes):
        span = f"{plan.timestamps.min():g}-{plan.timestamps.max():g} s" if plan.timestamps.size else "none"
        hint = "AVA cut files need --time-offset 900" if time_offset == 0 else "plain videos need --time-offset 0"
        raise UserError(
            f"{plan.source}: no box timestamp of '{video_id}' falls in the rendered part "
            f"({time_offset + first / fps:g}-{time_offset + last / fps:g} movie seconds with time offset "
            f"{time_offset:g} from {timing_note}); box timestamps: {span}. {hint}"
        )

    # Score, draw, encode.
    font = label_font(max(10, round(out_h / 28)))
    line_width = max(1, round(out_h / 180))
    rendered: list[np.ndarray] = []
    det_rows: list[AvaTable] = []
    label_counts: dict[str, int] = {}
    boxes_scored = 0
    bar = tqdm(total=last - first, desc="demo", unit="frame", disable=args.no_progress, dynamic_ncols=True)
    try:
        for k, (start_frame, j) in enumerate(keyframes):
            end_frame = keyframes[k + 1][0] if k + 1 < len(keyframes) else last
            start_frame = max(start_frame, first)
            if end_frame <= start_frame:
                continue
            boxes = np.zeros((0, 4), np.float32)
            labels: list[list[tuple[str, float]]] = []
            if j is not None and len(plan.boxes[j]):
                boxes = plan.boxes[j]
                centre = float(plan.timestamps[j])
                indices = clip_frame_indices(centre, fps, time_offset, spec.num_frames, spec.sample_rate,
                                             video_frames=num_frames)
                clip, box_px = transform(source.read(indices), boxes)
                scores = score_keyframe(demo, clip, box_px, device)
                boxes_scored += len(boxes)
                top = np.argsort(-scores, axis=1, kind="stable")[:, : args.top_k]
                for row, cols in zip(scores, top):
                    shown = [(demo.class_names[c], float(row[c])) for c in cols if row[c] >= args.label_threshold]
                    labels.append(shown)
                    if shown:
                        label_counts[shown[0][0]] = label_counts.get(shown[0][0], 0) + 1
                if args.detections:
                    det_rows.append(_detection_rows(video_id, centre, boxes, scores, demo.class_ids))
            frames = resize_frames(source.read(np.arange(start_frame, end_frame)), (out_w, out_h))
            for frame in frames:
                rendered.append(draw_detections(frame, boxes, labels, font, line_width) if len(boxes) else frame)
            bar.update(len(frames))
    finally:
        bar.close()
        source.close()

    out = Path(args.out) if args.out else Path(f"demo_{video_id}.mp4")
    stacked = np.stack(rendered)
    codec = encode(out, stacked, fps)
    gif = None if args.no_gif else write_gif(out.with_suffix(".gif"), stacked, fps)
    if args.detections:
        write_ava_csv(args.detections, AvaTable.concat(det_rows), "detections")

    used = sum(j is not None for _, j in keyframes)
    print(f"\n== demo finished in {time.time() - started:.1f} s")
    print(f"   video       {video} ({video_id}, {num_frames} frames at {fps:g} fps, time offset {time_offset:g} "
          f"from {timing_note})")
    print(f"   checkpoint  {checkpoint} ({len(demo.class_ids)} classes, device {device})")
    print(f"   boxes       {plan.source}: {boxes_scored} scored on {used}/{len(keyframes)} keyframes")
    if label_counts:
        common = sorted(label_counts.items(), key=lambda kv: -kv[1])[:3]
        print("   top labels  " + ", ".join(f"{name} ({n} boxes)" for name, n in common))
    print(f"   wrote       {out} ({len(stacked)} frames, {out_w}x{out_h}, {codec})"
          + (f", {gif}" if gif else "") + (f", {args.detections}" if args.detections else ""))
    for note in demo.notes:
        print(f"   note        {note}")
    return 0


def _detection_rows(video_id: str, seconds: float, boxes: np.ndarray, scores: np.ndarray,
                    class_ids: Sequence[int]) -> Any:
    from seal_transfer.data.formats.ava import AvaTable

    n, c = scores.shape
    return AvaTable.from_columns(
        [video_id] * (n * c), np.full(n * c, seconds), np.repeat(boxes, c, axis=0),
        action_ids=np.tile(np.asarray(class_ids, dtype=np.int64), n), scores=scores.reshape(-1),
    )


def cli(argv: Sequence[str] | None = None) -> None:
    sys.exit(guarded_main(main, argv))


if __name__ == "__main__":
    cli()

