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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from seal_transfer.cli import guarded_main
from seal_transfer.errors import UserError
from seal_transfer.rundir import CONFIG

PROG = "python -m seal_transfer.demo"
# Box colours (Okabe-Ito), cycled per box within a keyframe.
COLOURS = ((0, 114, 178), (230, 159, 0), (0, 158, 115), (213, 94, 0), (204, 121, 167), (86, 180, 233),
           (240, 228, 66), (255, 255, 255))
FRAME_BUDGET_BYTES = 3 << 30  # decoded output frames held for the encoder; beyond this ask for --duration


# ------------------------------------------------------------------------------------------------ model


@dataclass
class DemoModel:
    """A detector ready to score boxes, with the names of its output columns."""

    model: torch.nn.Module
    class_ids: list[int]
    class_names: list[str]
    model_cfg: dict[str, Any]
    loss: str = "bce"
    pose_columns: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _checkpoint_description(obj: Any, path: Path) -> tuple[dict[str, Any], list[int], Optional[list[str]], str,
                                                             list[int]]:
    """(model config, class ids, class names or None, loss, pose columns) from our model.pt or a Lightning .ckpt."""
    from seal_transfer.models.checkpoints import stored_description

    if not isinstance(obj, dict):
        raise UserError(f"{path}: not a checkpoint dictionary")
    meta = stored_description(obj)
    if "model" in meta and (meta.get("class_ids") or ("class_ids" in meta and not meta.get("lightning"))):
        names = meta.get("class_names")
        return (dict(meta["model"]), [int(c) for c in meta["class_ids"]], list(names) if names else None,
                str(meta.get("loss", "bce")), [int(c) for c in meta.get("pose_columns", [])])
    if meta.get("lightning") and "class_ids" in meta:
        raise UserError(f"{path}: the Lightning checkpoint records no class ids")
    if meta.get("lightning"):
        raise UserError(f"{path}: a clip classifier checkpoint (task=classification); the demo needs a detector "
                        "(RUN/pretrain, RUN/adapt or RUN/finetune of the detection task)")
    raise UserError(f"{path}: no model description in the checkpoint; pass a model.pt exported by a stage "
                    "(RUN/<stage>/model.pt) or a Lightning checkpoint from RUN/<stage>/checkpoints/")


def load_demo_model(path: str | Path, *, labelmap: Optional[str | Path] = None, allow_pickle: bool = False,
                    device: str = "cpu") -> DemoModel:
    """Build the detector a checkpoint describes and load its weights; names from the checkpoint or `labelmap`."""
    from seal_transfer.data.formats.ava import read_labelmap
    from seal_transfer.models.checkpoints import load_weights, read_checkpoint
    from seal_transfer.models.config import ModelConfig
    from seal_transfer.models.slowfast import build_detector

    path = Path(path)
    obj = read_checkpoint(path, allow_pickle=allow_pickle)
    model_cfg, class_ids, names, loss, pose_columns = _checkpoint_description(obj, path)
    notes: list[str] = []
    if labelmap is not None:
        lm = read_labelmap(labelmap)
        unknown = [c for c in class_ids if c not in lm.names]
        if unknown:
            raise UserError(f"--labelmap {labelmap}: class id(s) {unknown[:5]} of the checkpoint are not in it")
        names = [lm.names[c] for c in class_ids]
    if names is None:
        names = [f"class {c}" for c in class_ids]
        notes.append("the checkpoint stores no class names; pass --labelmap PBTXT to show them")
    try:
        model = build_detector(ModelConfig(**model_cfg), len(class_ids))
    except TypeError as exc:
        raise UserError(f"{path}: model config in the checkpoint is not one this version understands ({exc})") from None
    report = load_weights(model, path, allow_pickle=allow_pickle)
    if not report.head_loaded:
        raise UserError(f"{path}: the detection head did not load ({report.summary()})")
    model.eval().to(device)
    return DemoModel(model, class_ids, [str(n) for n in names], model_cfg, loss, pose_columns, notes)


def _stage_augment(checkpoint: Path) -> dict[str, Any]:
    """`data.augment` of the stage that wrote the checkpoint (RUN/<stage>/config.yaml), so the demo resizes and
    normalises frames as validation did; {} when there is none."""
    import yaml

    for folder in (checkpoint.parent, checkpoint.parent.parent):
        cfg_path = folder / CONFIG
        if cfg_path.is_file():
            try:
                cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError:
                return {}
            augment = (cfg.get("data") or {}).get("augment") if isinstance(cfg, dict) else None
            return dict(augment) if isinstance(augment, dict) else {}
    return {}


# ------------------------------------------------------------------------------------------------ boxes


@dataclass
class BoxPlan:
    """Person boxes of one video: per distinct timestamp (movie seconds), normalised boxes and detector scores."""

    timestamps: np.ndarray  # (T,) sorted
    boxes: list[np.ndarray]  # T x (K, 4)
    scores: list[np.ndarray]  # T x (K,)
    source: str

    def at(self, seconds: float, tolerance: float) -> Optional[int]:
        """Index of the box timestamp nearest `seconds`, if within `tolerance`."""
        if self.timestamps.size == 0:
            return None
        j = int(np.clip(np.searchsorted(self.timestamps, seconds), 1, self.timestamps.size) - 1)
        if j + 1 < self.timestamps.size and abs(self.timestamps[j + 1] - seconds) < abs(self.timestamps[j] - seconds):
            j += 1
        return j if abs(self.timestamps[j] - seconds) <= tolerance + 1e-6 else None


def _read_boxes(path: Path, kind: str) -> Any:
    from seal_transfer.data.formats.ava import read_ava_csv

    if path.suffix == ".pkl":
        raise UserError(f"{path}: pickled proposals are not read by the demo (a pickle can run code); convert them "
                        "to a PySlowFast-style box CSV (docs/real_data.md shows how)")
    return read_ava_csv(path, kind)


def box_plan(table: Any, video_id: str, threshold: float, source: str) -> BoxPlan:
    """Rows of `video_id` with score >= threshold, grouped by timestamp; duplicate boxes (GT: one row per action)
    are merged."""
    rows = table.select(table.video_ids == video_id)
    if len(rows) == 0:
        present = sorted(set(table.video_ids.tolist()))
        shown = ", ".join(present[:5]) + (" …" if len(present) > 5 else "")
        raise UserError(f"{source}: no rows for video id '{video_id}' (ids in the file: {shown or 'none'}); "
                        "pass --video-id")
    rows = rows.select(rows.scores >= threshold)
    stamps = np.unique(rows.timestamps)
    boxes: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for ts in stamps:
        sel = rows.timestamps == ts
        unique, first = np.unique(np.round(rows.boxes[sel].astype(np.float64), 4), axis=0, return_index=True)
        boxes.append(unique.astype(np.float32))
        scores.append(rows.scores[sel][first].astype(np.float32))
    return BoxPlan(stamps.astype(np.float64), boxes, scores, source)


def _auto_annotations(video: Path) -> Optional[Path]:
    folder = video.parent.parent / "annotations"
    return folder if folder.is_dir() else None


def _find_detector_boxes(annotations: Path, video_id: str) -> Optional[Path]:
    """The `*_predicted_boxes.csv` in an AVA-layout annotations folder that lists `video_id`."""
    for path in sorted(annotations.glob("*_predicted_boxes.csv")):
        with open(path, encoding="utf-8") as handle:
            if any(line.startswith(video_id + ",") for line in handle):
                return path
    return None


# ------------------------------------------------------------------------------------------------ drawing


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def draw_detections(frame: np.ndarray, boxes: np.ndarray, labels: Sequence[Sequence[tuple[str, float]]],
                    font: Any, line_width: int = 2) -> np.ndarray:
    """Draw normalised `boxes` and, above each, its (name, score) lines onto a copy of an RGB uint8 frame."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    height, width = frame.shape[:2]
    for i, (box, lines) in enumerate(zip(boxes, labels)):
        colour = COLOURS[i % len(COLOURS)]
        x1, y1, x2, y2 = (float(v) for v in box * np.array([width, height, width, height]))
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=line_width)
        texts = [f"{name} {score:.2f}" for name, score in lines]
        if not texts:
            continue
        line_boxes = [draw.textbbox((0, 0), t, font=font) for t in texts]
        line_h = max(b[3] - b[1] for b in line_boxes) + 2
        block_w = max(b[2] - b[0] for b in line_boxes) + 4
        block_h = line_h * len(texts) + 2
        tx = min(max(x1, 0.0), max(width - block_w, 0))
        ty = y1 - block_h if y1 - block_h >= 0 else min(y1 + line_width, max(height - block_h, 0))
        draw.rectangle([tx, ty, tx + block_w, ty + block_h], fill=colour)
        ink = (0, 0, 0) if sum(colour) > 450 else (255, 255, 255)
        for j, text in enumerate(texts):
            draw.text((tx + 2, ty + 1 + j * line_h - line_boxes[j][1]), text, fill=ink, font=font)
    return np.asarray(image)


def _display_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Output (w, h): short side raised to `short_side` when smaller (0 keeps it), both even (yuv420)."""
    scale = max(1.0, short_side / min(width, height)) if short_side > 0 else 1.0
    return 2 * max(1, round(width * scale / 2)), 2 * max(1, round(height * scale / 2))


def _resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (frames.shape[2], frames.shape[1]) == size:
        return frames
    import torch.nn.functional as F

    tensor = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    out = F.interpolate(tensor, size=(size[1], size[0]), mode="bilinear", align_corners=False)
    return out.clamp_(0, 255).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def write_gif(path: Path, frames: np.ndarray, fps: float, *, max_width: int = 320, max_seconds: float = 8.0,
              gif_fps: float = 8.0) -> Path:
    """A small looping preview: the first `max_seconds`, at most `gif_fps` frames per second, `max_width` wide."""
    from PIL import Image

    from seal_transfer.utils.fileio import atomic_path

    step = max(1, round(fps / gif_fps))
    chosen = frames[: max(1, int(max_seconds * fps)) : step]
    height, width = chosen.shape[1:3]
    scale = min(1.0, max_width / width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    images = [Image.fromarray(f).resize(size, Image.Resampling.BILINEAR) if scale < 1 else Image.fromarray(f)
              for f in chosen]
    # Octree palettes per frame: ~50x faster than the GIF writer's default median cut, and as good for a preview.
    images = [im.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE) for im in images]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(20, round(1000 * step / fps)), loop=0)
    return path


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

    from seal_transfer.data.clip import pack_pathways
    from seal_transfer.data.config import AugmentConfig
    from seal_transfer.data.formats.ava import AvaTable, read_video_meta, write_ava_csv
    from seal_transfer.data.transforms import ClipTransform
    from seal_transfer.data.video import FrameFolderSource, clip_frame_indices, open_video_source
    from seal_transfer.data.video import write_video as encode
    from seal_transfer.engine.detection import detection_scores
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
    annotations = _auto_annotations(video)
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
        plan = box_plan(_read_boxes(Path(args.gt), "gt"), video_id, 0.0, args.gt)
    else:
        box_path = Path(args.boxes) if args.boxes else None
        if box_path is None and annotations is not None:
            box_path = _find_detector_boxes(annotations, video_id)
        if box_path is None:
            raise UserError(f"{video}: no person boxes: pass --boxes CSV (any person detector, PySlowFast layout "
                            "video_id,sec,x1,y1,x2,y2,,score) or --gt CSV")
        plan = box_plan(_read_boxes(box_path, "boxes"), video_id, args.box_threshold, str(box_path))

    # Model.
    checkpoint = Path(args.checkpoint)
    demo = load_demo_model(checkpoint, labelmap=args.labelmap, allow_pickle=args.allow_pickle_checkpoint,
                           device=device)
    spec = clip_spec(_resolved(demo.model_cfg))
    augment = {k: v for k, v in _stage_augment(checkpoint).items() if k in ("eval_short_side", "mean", "std")}
    if args.short_side is not None:
        augment["eval_short_side"] = args.short_side
    transform = ClipTransform(AugmentConfig(**augment), train=False)
    pose = torch.as_tensor(demo.pose_columns, dtype=torch.long)

    # Keyframes over the rendered span.
    first = int(round(args.start * fps))
    last = num_frames if args.duration is None else min(num_frames, int(round((args.start + args.duration) * fps)))
    if first >= last:
        raise UserError(f"--start {args.start}: past the end of the video ({num_frames / fps:.1f} s)")
    out_w, out_h = _display_size(int(width), int(height), args.display_short_side)
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
    font = _font(max(10, round(out_h / 28)))
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
                slow, fast = pack_pathways(clip, spec.alpha)
                rois = torch.cat([torch.zeros(len(box_px), 1), box_px], dim=1).to(device)
                with torch.inference_mode():
                    logits = demo.model([slow[None].to(device), fast[None].to(device)], rois)
                    scores = detection_scores(logits, pose.to(device), demo.loss).cpu().numpy()
                boxes_scored += len(boxes)
                top = np.argsort(-scores, axis=1, kind="stable")[:, : args.top_k]
                for row, cols in zip(scores, top):
                    shown = [(demo.class_names[c], float(row[c])) for c in cols if row[c] >= args.label_threshold]
                    labels.append(shown)
                    if shown:
                        label_counts[shown[0][0]] = label_counts.get(shown[0][0], 0) + 1
                if args.detections:
                    det_rows.append(_detection_rows(video_id, centre, boxes, scores, demo.class_ids))
            frames = _resize(source.read(np.arange(start_frame, end_frame)), (out_w, out_h))
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


def _resolved(model_cfg: dict[str, Any]) -> Any:
    from seal_transfer.models.config import ModelConfig, resolve

    return resolve(ModelConfig(**model_cfg))


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

