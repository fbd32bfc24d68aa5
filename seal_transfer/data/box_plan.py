"""Person boxes to score, per keyframe, from an AVA-layout CSV (ground truth or a person detector's boxes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from seal_transfer.errors import UserError


@dataclass
class BoxPlan:
    """Person boxes of one video: per distinct timestamp (movie seconds), normalised boxes and detector scores."""

    timestamps: np.ndarray  # (T,) sorted
    boxes: list[np.ndarray]  # T x (K, 4)
    scores: list[np.ndarray]  # T x (K,)
    source: str

    def schedule(self, video_id: str, first: int, last: int, fps: float, keyframes_per_second: float,
                 time_offset: float, timing_note: str) -> list[tuple[int, Optional[int]]]:
        """Keyframes over frames [first, last): (first frame shown, index of the nearest box timestamp within half
        a keyframe period, or None). Refuses, naming the spans, when no box timestamp falls in the rendered part."""
        period = 1.0 / keyframes_per_second
        key_times = np.arange(first / fps, last / fps, period)
        keyframes = [(int(round(t * fps)), self.at(time_offset + t, period / 2)) for t in key_times]
        if not any(j is not None for _, j in keyframes):
            span = f"{self.timestamps.min():g}-{self.timestamps.max():g} s" if self.timestamps.size else "none"
            hint = "AVA cut files need --time-offset 900" if time_offset == 0 else "plain videos need --time-offset 0"
            raise UserError(
                f"{self.source}: no box timestamp of '{video_id}' falls in the rendered part "
                f"({time_offset + first / fps:g}-{time_offset + last / fps:g} movie seconds with time offset "
                f"{time_offset:g} from {timing_note}); box timestamps: {span}. {hint}"
            )
        return keyframes

    def at(self, seconds: float, tolerance: float) -> Optional[int]:
        """Index of the box timestamp nearest `seconds`, if within `tolerance`."""
        if self.timestamps.size == 0:
            return None
        j = int(np.clip(np.searchsorted(self.timestamps, seconds), 1, self.timestamps.size) - 1)
        if j + 1 < self.timestamps.size and abs(self.timestamps[j + 1] - seconds) < abs(self.timestamps[j] - seconds):
            j += 1
        return j if abs(self.timestamps[j] - seconds) <= tolerance + 1e-6 else None


def read_boxes(path: Path, kind: str) -> Any:
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


def auto_annotations(video: Path) -> Optional[Path]:
    folder = video.parent.parent / "annotations"
    return folder if folder.is_dir() else None


def find_detector_boxes(annotations: Path, video_id: str) -> Optional[Path]:
    """The `*_predicted_boxes.csv` in an AVA-layout annotations folder that lists `video_id`."""
    for path in sorted(annotations.glob("*_predicted_boxes.csv")):
        with open(path, encoding="utf-8") as handle:
            if any(line.startswith(video_id + ",") for line in handle):
                return path
    return None
