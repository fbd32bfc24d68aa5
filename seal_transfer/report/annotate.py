"""Annotate a video with a scorer's labels: at every keyframe, score its person boxes on the model's clip and
draw boxes + top labels on the displayed frames until the next keyframe (what `seal_transfer.demo` renders)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from tqdm import tqdm

from seal_transfer.data.box_plan import BoxPlan
from seal_transfer.data.formats.ava import AvaTable
from seal_transfer.data.video import clip_frame_indices
from seal_transfer.engine.inference import score_keyframe
from seal_transfer.report.frames import draw_detections, label_font, resize_frames


@dataclass
class Annotated:
    """The rendered frames and what was scored on them."""

    frames: list[np.ndarray] = field(default_factory=list)
    detections: list[AvaTable] = field(default_factory=list)  # one table per scored keyframe (with_detections)
    label_counts: dict[str, int] = field(default_factory=dict)  # top label of each box -> boxes
    boxes_scored: int = 0


def detection_rows(video_id: str, seconds: float, boxes: np.ndarray, scores: np.ndarray,
                   class_ids: Sequence[int]) -> AvaTable:
    """Every (box, class) score of one keyframe as AVA detection rows."""
    n = len(boxes)
    return AvaTable.from_box_scores(AvaTable.from_columns([video_id] * n, np.full(n, seconds), boxes), scores,
                                    class_ids)


def annotate(source: Any, keyframes: Sequence[tuple[int, Optional[int]]], plan: BoxPlan, scorer: Any,
             transform: Any, spec: Any, *, video_id: str, fps: float, time_offset: float, num_frames: int,
             first: int, last: int, size: tuple[int, int], device: str, top_k: int, label_threshold: float,
             with_detections: bool, progress: bool = True) -> Annotated:
    """Frames [first, last) of `source` resized to `size`, each keyframe's boxes scored by `scorer` on the clip
    `spec` asks for (through `transform`) and drawn with their top `top_k` labels until the next keyframe."""
    out = Annotated()
    font = label_font(max(10, round(size[1] / 28)))
    line_width = max(1, round(size[1] / 180))
    bar = tqdm(total=last - first, desc="demo", unit="frame", disable=not progress, dynamic_ncols=True)
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
                scores = score_keyframe(scorer, clip, box_px, device)
                out.boxes_scored += len(boxes)
                top = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
                for row, cols in zip(scores, top):
                    shown = [(scorer.class_names[c], float(row[c])) for c in cols if row[c] >= label_threshold]
                    labels.append(shown)
                    if shown:
                        out.label_counts[shown[0][0]] = out.label_counts.get(shown[0][0], 0) + 1
                if with_detections:
                    out.detections.append(detection_rows(video_id, centre, boxes, scores, scorer.class_ids))
            frames = resize_frames(source.read(np.arange(start_frame, end_frame)), size)
            for frame in frames:
                out.frames.append(draw_detections(frame, boxes, labels, font, line_width) if len(boxes) else frame)
            bar.update(len(frames))
    finally:
        bar.close()
    return out
