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

import numpy as np
import torch

from seal_transfer.cli import guarded_main
from seal_transfer.data.box_plan import auto_annotations, box_plan, find_detector_boxes, read_boxes
from seal_transfer.engine.inference import load_scorer, resolved_model_config, stage_augment
from seal_transfer.errors import UserError
from seal_transfer.report.annotate import annotate
from seal_transfer.report.frames import display_size, write_gif

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
    from seal_transfer.data.config import AugmentConfig
    from seal_transfer.data.formats.ava import AvaTable, write_ava_csv
    from seal_transfer.data.transforms import ClipTransform
    from seal_transfer.data.video import open_timed_video
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

    annotations = auto_annotations(video)
    timed = open_timed_video(video, video_id, fps=args.fps, time_offset=args.time_offset, annotations=annotations)
    source, fps, num_frames, time_offset = timed.source, timed.fps, timed.num_frames, timed.time_offset

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

    # Keyframes over the rendered span, then score, draw, encode.
    first = int(round(args.start * fps))
    last = num_frames if args.duration is None else min(num_frames, int(round((args.start + args.duration) * fps)))
    if first >= last:
        raise UserError(f"--start {args.start}: past the end of the video ({num_frames / fps:.1f} s)")
    out_w, out_h = display_size(timed.width, timed.height, args.display_short_side)
    if (last - first) * out_w * out_h * 3 > FRAME_BUDGET_BYTES:
        raise UserError(f"{video}: {last - first} frames at {out_w}x{out_h} exceed the demo's memory budget; "
                        "render a part with --start/--duration")
    keyframes = plan.schedule(video_id, first, last, fps, args.fps_keyframes, time_offset, timed.timing_note)
    try:
        result = annotate(source, keyframes, plan, demo, transform, spec, video_id=video_id, fps=fps,
                          time_offset=time_offset, num_frames=num_frames, first=first, last=last,
                          size=(out_w, out_h), device=device, top_k=args.top_k, label_threshold=args.label_threshold,
                          with_detections=bool(args.detections), progress=not args.no_progress)
    finally:
        source.close()

    out = Path(args.out) if args.out else Path(f"demo_{video_id}.mp4")
    stacked = np.stack(result.frames)
    codec = encode(out, stacked, fps)
    gif = None if args.no_gif else write_gif(out.with_suffix(".gif"), stacked, fps)
    if args.detections:
        write_ava_csv(args.detections, AvaTable.concat(result.detections), "detections")

    used = sum(j is not None for _, j in keyframes)
    print(f"\n== demo finished in {time.time() - started:.1f} s")
    print(f"   video       {video} ({video_id}, {num_frames} frames at {fps:g} fps, time offset {time_offset:g} "
          f"from {timed.timing_note})")
    print(f"   checkpoint  {checkpoint} ({len(demo.class_ids)} classes, device {device})")
    print(f"   boxes       {plan.source}: {result.boxes_scored} scored on {used}/{len(keyframes)} keyframes")
    if result.label_counts:
        common = sorted(result.label_counts.items(), key=lambda kv: -kv[1])[:3]
        print("   top labels  " + ", ".join(f"{name} ({n} boxes)" for name, n in common))
    print(f"   wrote       {out} ({len(stacked)} frames, {out_w}x{out_h}, {codec})"
          + (f", {gif}" if gif else "") + (f", {args.detections}" if args.detections else ""))
    for note in demo.notes:
        print(f"   note        {note}")
    return 0


def cli(argv: Sequence[str] | None = None) -> None:
    sys.exit(guarded_main(main, argv))


if __name__ == "__main__":
    cli()

