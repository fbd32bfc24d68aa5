"""ActivityNet-layout JSON for temporal detection: ground truth (`database`) and predictions (`results`).

Accepts the real ActivityNet files (`{"version", "taxonomy", "database": {vid: {subset, annotations}}}`) and the
bare database dict that mmaction2 ships (`{vid: {subset, annotations}}`); predictions as `{"results": {vid: [...]}}`
(the official `version`/`external_data` fields are optional here) or a bare `{vid: [...]}`. Errors name the file
and the JSON path (or line, for syntax errors) of the problem.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seal_transfer.errors import UserError, located
from seal_transfer.utils.fileio import write_json


@dataclass
class TadSegments:
    """Temporal segments as column arrays: GT (score 1) or predictions. `video_ids` may hold tube keys."""

    video_ids: np.ndarray  # (N,) 'U'
    starts: np.ndarray  # (N,) float64 seconds
    ends: np.ndarray  # (N,) float64 seconds
    labels: np.ndarray  # (N,) 'U' class names
    scores: np.ndarray  # (N,) float64
    source: str = ""
    # Reader warnings about the file, one line each (how many segments end before they start or have no length).
    notes: list[str] = field(default_factory=list, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.video_ids.shape[0])

    @classmethod
    def from_columns(
        cls,
        video_ids: Sequence[str] | np.ndarray,
        starts: Sequence[float] | np.ndarray,
        ends: Sequence[float] | np.ndarray,
        labels: Sequence[Any] | np.ndarray,
        scores: Sequence[float] | np.ndarray | None = None,
        source: str = "",
    ) -> TadSegments:
        n = len(video_ids)
        return cls(
            video_ids=np.asarray(video_ids, dtype=str).reshape(n) if n else np.zeros(0, "U1"),
            starts=np.asarray(starts, dtype=np.float64).reshape(n),
            ends=np.asarray(ends, dtype=np.float64).reshape(n),
            labels=np.asarray([str(x) for x in labels], dtype=str).reshape(n) if n else np.zeros(0, "U1"),
            scores=np.ones(n, np.float64) if scores is None else np.asarray(scores, dtype=np.float64).reshape(n),
            source=source,
        )

    def select(self, mask_or_index: np.ndarray) -> TadSegments:
        return TadSegments(self.video_ids[mask_or_index], self.starts[mask_or_index], self.ends[mask_or_index],
                           self.labels[mask_or_index], self.scores[mask_or_index], self.source)

    def with_video_ids(self, video_ids: np.ndarray) -> TadSegments:
        return TadSegments(np.asarray(video_ids, dtype=str), self.starts, self.ends, self.labels, self.scores,
                           self.source)


def _load_json(path: Path) -> Any:
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a JSON file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise located(path, exc.lineno, f"not valid JSON: {exc.msg} (column {exc.colno})") from None


def _segment(path: Path, where: str, item: Any) -> tuple[float, float]:
    if not isinstance(item, dict):
        raise UserError(f"{path}: {where}: expected an object with 'segment' and 'label', found {type(item).__name__}")
    if "segment" not in item:
        raise UserError(f"{path}: {where}: no 'segment'")
    if "label" not in item:
        raise UserError(f"{path}: {where}: no 'label'")
    seg = item["segment"]
    if not isinstance(seg, (list, tuple)) or len(seg) != 2:
        raise UserError(f"{path}: {where}/segment: expected [start, end], found {seg!r}")
    try:
        start, end = float(seg[0]), float(seg[1])
    except (TypeError, ValueError):
        raise UserError(f"{path}: {where}/segment: {seg!r} is not two numbers") from None
    if not (math.isfinite(start) and math.isfinite(end)):
        raise UserError(f"{path}: {where}/segment: {seg!r} is not finite")
    return start, end


class _DegenerateSegments:
    """Counts segments with end < start or end == start while a reader walks a file; `note()` is one line or None.

    The official `eval_detection.py` reads them as they are, and so do we: the intersection is clamped at 0, so
    their tIoU with any segment is 0, except 0 / 0 = NaN where the two lengths sum to 0, which that code counts as
    a match (NaN sorts first and is never below a threshold). docs/evaluation.md has the cases.
    """

    def __init__(self) -> None:
        self.inverted = 0
        self.empty = 0
        self.first: str | None = None

    def add(self, where: str, start: float, end: float) -> None:
        if end < start:
            self.inverted += 1
        elif end == start:
            self.empty += 1
        else:
            return
        if self.first is None:
            self.first = f"{where}/segment [{start!r}, {end!r}]"

    def note(self, path: Path) -> str | None:
        if self.first is None:
            return None

        def count(n: int, what: str) -> str:
            return f"{n} {what}" if n == 1 else f"{n} {what.replace('segment', 'segments')}"

        return (f"{path}: {count(self.inverted, 'segment with end < start')} and "
                f"{count(self.empty, 'segment of zero length')} (first: {self.first}); scored with the official "
                "tIoU arithmetic: intersection 0, so tIoU 0 with any segment, or NaN (a match) where the two "
                "lengths sum to 0")


def _finish(segments: TadSegments, degenerate: _DegenerateSegments, path: Path, warn: bool) -> TadSegments:
    note = degenerate.note(path)
    if note is not None:
        segments.notes.append(note)
        if warn:
            print(f"warning: {note}", file=sys.stderr)
    return segments


def read_activitynet_gt(
    path: str | Path, subset: str | None = "validation", *, warn: bool = True
) -> tuple[TadSegments, list[str]]:
    """GT segments of the videos in `subset` (None: all videos) and the list of those videos, in file order.

    Segments with end <= start are read as the official code reads them, counted in one line of `notes` (printed
    to stderr as `warning: ...` when `warn`)."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object with 'database', found {type(data).__name__}")
    if "database" in data:
        database, prefix = data["database"], "database/"
        if not isinstance(database, dict):
            raise UserError(f"{path}: database: expected an object {{video_id: {{...}}}}")
    elif data and all(isinstance(v, dict) and "annotations" in v for v in data.values()):
        database, prefix = data, ""  # mmaction2's bare layout
    else:
        raise UserError(f"{path}: no 'database' and not a {{video_id: {{subset, annotations}}}} object; "
                        "not an ActivityNet ground-truth file")
    videos: list[str] = []
    vids: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    labels: list[str] = []
    degenerate = _DegenerateSegments()
    for vid, info in database.items():
        where = f"{prefix}{vid}"
        if not isinstance(info, dict):
            raise UserError(f"{path}: {where}: expected an object, found {type(info).__name__}")
        if subset is not None:
            if "subset" not in info:
                raise UserError(f"{path}: {where}: no 'subset' (needed to select subset {subset!r})")
            if info["subset"] != subset:
                continue
        videos.append(vid)
        annotations = info.get("annotations", [])
        if not isinstance(annotations, list):
            raise UserError(f"{path}: {where}/annotations: expected a list")
        for i, ann in enumerate(annotations):
            start, end = _segment(path, f"{where}/annotations[{i}]", ann)
            if not end > start:
                degenerate.add(f"{where}/annotations[{i}]", start, end)
            vids.append(vid)
            starts.append(start)
            ends.append(end)
            labels.append(str(ann["label"]))
    segments = TadSegments.from_columns(vids, starts, ends, labels, source=str(path))
    return _finish(segments, degenerate, path, warn), videos


def _predictions_fast(results: dict[str, Any], source: str) -> TadSegments | None:
    """The columns of a well-formed prediction file without the per-item checks, or None to use the exact reader.

    A valid file (every item an object with a numeric [start, end] with end > start, a label and a numeric,
    non-NaN score) gives the same columns as the item-by-item reader, about five times faster at ActivityNet
    scale; anything else (a missing key, a string or NaN number, a degenerate segment) returns None, and the
    exact reader then names the item or counts the degenerate segments."""
    vids: list[str] = []
    segments: list[Any] = []
    labels: list[Any] = []
    scores: list[Any] = []
    try:
        for vid, items in results.items():
            if not isinstance(items, list) or not all(type(item) is dict for item in items):
                return None
            vids.extend([vid] * len(items))
            segments.extend([item["segment"] for item in items])
            labels.extend([item["label"] for item in items])
            scores.extend([item["score"] for item in items])
        seg = np.array(segments) if segments else np.zeros((0, 2))
        score = np.array(scores) if scores else np.zeros(0)
    except (KeyError, TypeError, ValueError):
        return None
    numeric = seg.dtype.kind in "fi" and score.dtype.kind in "fi"
    if not numeric or seg.ndim != 2 or seg.shape[1] != 2 or score.ndim != 1:
        return None
    seg = seg.astype(np.float64)
    if not np.isfinite(seg).all() or not (seg[:, 1] > seg[:, 0]).all() or np.isnan(score.astype(np.float64)).any():
        return None
    return TadSegments.from_columns(vids, seg[:, 0], seg[:, 1], labels, score, source=source)


def read_activitynet_predictions(path: str | Path, *, warn: bool = True) -> TadSegments:
    """Predictions `{"results": {video_id: [{segment, label, score}]}}` (or the bare `{video_id: [...]}`).

    Segments with end <= start are read and counted as in `read_activitynet_gt`."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object with 'results', found {type(data).__name__}")
    if "results" in data:
        results, prefix = data["results"], "results/"
        if not isinstance(results, dict):
            raise UserError(f"{path}: results: expected an object {{video_id: [predictions]}}")
    elif all(isinstance(v, list) for v in data.values()):
        results, prefix = data, ""
    else:
        raise UserError(f"{path}: no 'results'; not an ActivityNet prediction file")
    fast = _predictions_fast(results, str(path))
    if fast is not None:
        return fast
    vids: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    labels: list[str] = []
    scores: list[float] = []
    degenerate = _DegenerateSegments()
    for vid, items in results.items():
        if not isinstance(items, list):
            raise UserError(f"{path}: {prefix}{vid}: expected a list of predictions, found {type(items).__name__}")
        for i, item in enumerate(items):
            where = f"{prefix}{vid}[{i}]"
            start, end = _segment(path, where, item)
            if not end > start:
                degenerate.add(where, start, end)
            if "score" not in item:
                raise UserError(f"{path}: {where}: no 'score'")
            try:
                score = float(item["score"])
            except (TypeError, ValueError):
                raise UserError(f"{path}: {where}/score: {item['score']!r} is not a number") from None
            if math.isnan(score):
                raise UserError(f"{path}: {where}/score: is NaN")
            vids.append(vid)
            starts.append(start)
            ends.append(end)
            labels.append(str(item["label"]))
            scores.append(score)
    segments = TadSegments.from_columns(vids, starts, ends, labels, scores, source=str(path))
    return _finish(segments, degenerate, path, warn)


def align_video_ids(
    gt: TadSegments, gt_videos: Sequence[str], predictions: TadSegments, prefix: str = "v_"
) -> tuple[TadSegments, list[str], str | None]:
    """Strip `prefix` from GT ids when that, and only that, makes prediction ids meet GT ids.

    mmaction2 names ActivityNet videos `v_<youtube id>` in its GT while result files use the bare id; the official
    evaluator would score every prediction as a false positive. Returns (gt, videos, note-or-None).
    """
    gt_set = set(gt_videos)
    pred_set = set(np.unique(predictions.video_ids).tolist())
    if not pred_set or pred_set & gt_set or not gt_set or not all(v.startswith(prefix) for v in gt_set):
        return gt, list(gt_videos), None
    stripped = {v: v[len(prefix):] for v in gt_set}
    if not pred_set & set(stripped.values()):
        return gt, list(gt_videos), None
    new_ids = np.asarray([stripped[v] for v in gt.video_ids.tolist()], dtype=str) if len(gt) else gt.video_ids
    note = (f"no prediction video id matches a ground-truth id; stripped the '{prefix}' prefix from the "
            f"{len(gt_set)} ground-truth ids to match (mmaction2 layout)")
    return gt.with_video_ids(new_ids), [stripped[v] for v in gt_videos], note


def write_activitynet_predictions(path: str | Path, predictions: TadSegments, version: str = "VERSION 1.3") -> None:
    """Write predictions in the official result layout, atomically."""
    results: dict[str, list[dict[str, Any]]] = {}
    for vid, s, e, label, score in zip(predictions.video_ids.tolist(), predictions.starts.tolist(),
                                       predictions.ends.tolist(), predictions.labels.tolist(),
                                       predictions.scores.tolist()):
        results.setdefault(vid, []).append({"label": label, "score": score, "segment": [s, e]})
    write_json(path, {"version": version, "results": results, "external_data": {}})
