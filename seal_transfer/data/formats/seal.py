"""SEAL file formats: SEAL Tubes (JSON + per-frame boxes in .npz) and SEAL Clips (AVA-layout CSV + per-frame boxes).

SEAL is not public; the paper fixes the content and these files fix the form (docs/DESIGN.md "Data formats").

SEAL Tubes, `seal_tubes_{split}.json`::

    {version, atomic_classes: [{id, name, label_type}], activity_classes: [name, ...],
     database: {vid: {subset, duration, fps, nframes, resolution: [h, w],
                      tubes: {tid: {frames: [f0, f1], activities: [{segment: [s, e], label: name}],
                                    atomic_actions: [{segment: [s, e], label: id}]}}}}}

Times are seconds from the file's frame 0; frame `i` shows the interval [i/fps, (i+1)/fps), so a tube with
frames [f0, f1] (inclusive) spans [f0/fps, (f1+1)/fps]. Atomic labels are integer ids of
`seal_atomic_actions.pbtxt`, activity labels are names from the activity list.

Per-frame boxes, `seal_tubes_{split}_boxes.npz` (never pickled): key `"{vid}/{tid}"` -> float32 (n, 5) rows
`frame, x1, y1, x2, y2`, frame = 0-based index into the video file, coordinates normalised to [0, 1] by the
frame width (x) and height (y), rows sorted by frame, gaps allowed (a frame without a row has no box).

SEAL Clips: AVA gt-layout CSV `video_id,center_sec,x1,y1,x2,y2,action_id,person_id` (box at the centre frame,
one row per (person, action)) + `.npz` of the boxes inside each clip, key `"{vid},{center_sec:g},{person_id}"`
-> float32 (n, 5) `frame, x1, y1, x2, y2` (same conventions). Persons present at a keyframe but without any
action assigned to the clip are kept in the .npz too (AVA has no row for them, so the CSV cannot hold them):
`__unlabeled_keys__` (their clip keys) and `__unlabeled_boxes__` (float32 (n, 4) centre-frame boxes), with
their per-frame boxes under their keys like any clip. The rule that produced the clips (a `ClipConfig` as
JSON) is stored under `__clip_config__`.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seal_transfer.data.formats.ava import AvaTable, LabelMap, read_ava_csv, write_ava_csv
from seal_transfer.errors import UserError
from seal_transfer.utils.fileio import atomic_path, write_json

SEAL_TUBES_VERSION = "seal_transfer-tubes-1"
LABEL_TYPES = ("POSE", "PERSON_PERSON", "PERSON_OBJECT")
CLIP_META_KEY = "__clip_config__"
_TIME_TOL = 1e-3  # seconds: JSON times are written with 4 decimals
_BOX_TOL = 1e-4


@dataclass
class Segment:
    """One labelled time interval in seconds; `label` is an atomic id (int) or an activity name (str)."""

    start: float
    end: float
    label: int | str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Tube:
    """One person tubelet: inclusive frame span, labelled segments and per-frame boxes (n, 5)."""

    tube_id: str
    frames: tuple[int, int]
    activities: list[Segment] = field(default_factory=list)
    atomic_actions: list[Segment] = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 5), np.float32))

    def time_span(self, fps: float) -> tuple[float, float]:
        return self.frames[0] / fps, (self.frames[1] + 1) / fps


@dataclass
class SealVideo:
    video_id: str
    subset: str
    duration: float
    fps: float
    nframes: int
    resolution: tuple[int, int]  # (height, width)
    tubes: dict[str, Tube] = field(default_factory=dict)


@dataclass
class SealTubes:
    """A whole SEAL Tubes split: class lists and videos (in file order)."""

    atomic_classes: LabelMap
    activity_classes: list[str]
    videos: dict[str, SealVideo] = field(default_factory=dict)
    version: str = SEAL_TUBES_VERSION
    source: str = ""

    def num_tubes(self) -> int:
        return sum(len(v.tubes) for v in self.videos.values())


@dataclass
class SealClips:
    """SEAL Clips: labelled rows (gt layout), unlabelled present persons, per-clip frame boxes, and the rule used."""

    table: AvaTable
    frame_boxes: dict[str, np.ndarray]
    unlabeled: AvaTable = field(default_factory=AvaTable.empty)
    rule: dict[str, Any] = field(default_factory=dict)


def clip_box_key(video_id: str, center_sec: float, person_id: int) -> str:
    """Key of a clip's per-frame boxes in the clips .npz."""
    return f"{video_id},{float(center_sec):g},{int(person_id)}"


def tube_box_key(video_id: str, tube_id: str) -> str:
    return f"{video_id}/{tube_id}"


# ------------------------------------------------------------------------------------------------ npz


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise UserError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{path}: not a readable .npz of arrays ({exc})") from None


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Compressed .npz (zip entries carry a fixed date), so equal content gives byte-equal files."""
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            np.savez_compressed(handle, **arrays)


def _check_box_array(where: str, arr: np.ndarray, f0: int, f1: int) -> None:
    if arr.ndim != 2 or arr.shape[1] != 5:
        raise UserError(f"{where}: boxes have shape {arr.shape}, expected (n, 5) rows frame,x1,y1,x2,y2")
    if arr.shape[0] == 0:
        raise UserError(f"{where}: no boxes (a tube needs at least one)")
    if not np.isfinite(arr).all():
        raise UserError(f"{where}: boxes contain NaN or inf")
    frames = arr[:, 0]
    if (frames != np.round(frames)).any():
        raise UserError(f"{where}: frame column holds non-integer values")
    bad = np.flatnonzero((frames < f0) | (frames > f1))
    if bad.size:
        raise UserError(f"{where}: box row {int(bad[0])} is at frame {int(frames[bad[0]])}, outside the tube's "
                        f"frames [{f0}, {f1}]")
    if (np.diff(frames) <= 0).any():
        i = int(np.flatnonzero(np.diff(frames) <= 0)[0]) + 1
        raise UserError(f"{where}: box rows must have strictly increasing frames (row {i}: frame {int(frames[i])})")
    coords = arr[:, 1:]
    bad = np.flatnonzero(((coords < -_BOX_TOL) | (coords > 1 + _BOX_TOL)).any(axis=1))
    if bad.size:
        i = int(bad[0])
        raise UserError(f"{where}: box at frame {int(frames[i])} = {coords[i].tolist()} is outside [0, 1] "
                        "(coordinates are normalised)")
    bad = np.flatnonzero((coords[:, 2] < coords[:, 0]) | (coords[:, 3] < coords[:, 1]))
    if bad.size:
        i = int(bad[0])
        raise UserError(f"{where}: box at frame {int(frames[i])} = {coords[i].tolist()} has x2 < x1 or y2 < y1")


# ------------------------------------------------------------------------------------------ SEAL Tubes


def _require(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise UserError(f"{where}: missing key '{key}'")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise UserError(f"{where}.{key}: expected {names}, found {type(value).__name__}")
    return value


def _parse_segments(
    items: Any, where: str, span: tuple[float, float], known: set[int] | set[str], label_kind: type
) -> list[Segment]:
    if not isinstance(items, list):
        raise UserError(f"{where}: expected a list, found {type(items).__name__}")
    out: list[Segment] = []
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        seg = _require(item, "segment", list, here)
        if len(seg) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in seg):
            raise UserError(f"{here}.segment: expected [start, end] seconds, found {seg}")
        start, end = float(seg[0]), float(seg[1])
        if not (math.isfinite(start) and math.isfinite(end)):
            raise UserError(f"{here}.segment: not finite")
        if end <= start:
            raise UserError(f"{here}.segment: end {end:g} <= start {start:g}")
        if start < span[0] - _TIME_TOL or end > span[1] + _TIME_TOL:
            raise UserError(f"{here}.segment: [{start:g}, {end:g}] is outside the tube's time span "
                            f"[{span[0]:g}, {span[1]:g}] s")
        label = _require(item, "label", label_kind if label_kind is str else (int,), here)
        if label not in known:
            what = "atomic action id" if label_kind is int else "activity class"
            raise UserError(f"{here}.label: unknown {what} {label!r}")
        out.append(Segment(start, end, label))
    return out


def _parse_atomic_classes(items: Any, where: str) -> LabelMap:
    if not isinstance(items, list) or not items:
        raise UserError(f"{where}: expected a non-empty list of {{id, name, label_type}}")
    ids: list[int] = []
    names: dict[int, str] = {}
    types: dict[int, str] = {}
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        cid = _require(item, "id", int, here)
        name = _require(item, "name", str, here)
        if cid in names:
            raise UserError(f"{here}.id: id {cid} appears twice")
        ids.append(cid)
        names[cid] = name
        if "label_type" in item:
            ltype = _require(item, "label_type", str, here)
            if ltype not in LABEL_TYPES:
                raise UserError(f"{here}.label_type: '{ltype}' is not one of {', '.join(LABEL_TYPES)}")
            types[cid] = ltype
    return LabelMap(ids, names, types)


def read_seal_tubes(json_path: str | Path, boxes_path: str | Path, labelmap: LabelMap | None = None) -> SealTubes:
    """Read and validate a SEAL Tubes split; errors name the file and the JSON path of the problem.

    `labelmap` (from `seal_atomic_actions.pbtxt`) is checked against the file's own class list when given.
    """
    json_path, boxes_path = Path(json_path), Path(boxes_path)
    name = json_path.name
    if not json_path.exists():
        raise UserError(f"{json_path}: file not found")
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{json_path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{name}: top level must be an object")
    version = _require(doc, "version", str, name)
    atomic = _parse_atomic_classes(_require(doc, "atomic_classes", list, name), f"{name}: atomic_classes")
    atomic.source = str(json_path)
    if labelmap is not None:
        mismatch = [cid for cid in labelmap.ids if atomic.names.get(cid) != labelmap.names[cid]]
        if mismatch or set(atomic.ids) != set(labelmap.ids):
            cid = (mismatch or sorted(set(atomic.ids) ^ set(labelmap.ids)))[0]
            raise UserError(f"{name}: atomic_classes disagree with {labelmap.source or 'the label map'} at id {cid}")
    activities = _require(doc, "activity_classes", list, name)
    if not all(isinstance(a, str) for a in activities):
        raise UserError(f"{name}: activity_classes must be a list of names")
    known_atomic = set(atomic.ids)
    known_activity = set(activities)
    boxes = _load_npz(boxes_path)
    database = _require(doc, "database", dict, name)
    videos: dict[str, SealVideo] = {}
    used_keys: set[str] = set()
    for vid, entry in database.items():
        where = f"{name}: database.{vid}"
        fps = float(_require(entry, "fps", (int, float), where))
        if fps <= 0:
            raise UserError(f"{where}.fps: {fps:g} must be positive")
        nframes = _require(entry, "nframes", int, where)
        duration = float(_require(entry, "duration", (int, float), where))
        resolution = _require(entry, "resolution", list, where)
        if len(resolution) != 2 or not all(isinstance(v, int) and v > 0 for v in resolution):
            raise UserError(f"{where}.resolution: expected [height, width] positive integers, found {resolution}")
        subset = _require(entry, "subset", str, where)
        video = SealVideo(vid, subset, duration, fps, nframes, (resolution[0], resolution[1]))
        for tid, tentry in _require(entry, "tubes", dict, where).items():
            twhere = f"{where}.tubes.{tid}"
            frames = _require(tentry, "frames", list, twhere)
            if len(frames) != 2 or not all(isinstance(f, int) and not isinstance(f, bool) for f in frames):
                raise UserError(f"{twhere}.frames: expected [first, last] integer frames, found {frames}")
            f0, f1 = frames
            if not 0 <= f0 <= f1 < nframes:
                raise UserError(f"{twhere}.frames: [{f0}, {f1}] is not inside the video's frames [0, {nframes - 1}]")
            tube = Tube(str(tid), (f0, f1))
            span = tube.time_span(fps)
            tube.activities = _parse_segments(tentry.get("activities", []), f"{twhere}.activities", span,
                                              known_activity, str)
            tube.atomic_actions = _parse_segments(tentry.get("atomic_actions", []), f"{twhere}.atomic_actions", span,
                                                  known_atomic, int)
            key = tube_box_key(vid, str(tid))
            if key not in boxes:
                raise UserError(f"{boxes_path.name}: no boxes for tube '{key}' ({twhere})")
            arr = boxes[key]
            _check_box_array(f"{boxes_path.name}: {key}", arr, f0, f1)
            tube.boxes = arr.astype(np.float32, copy=False)
            used_keys.add(key)
            video.tubes[str(tid)] = tube
        videos[vid] = video
    extra = sorted(set(boxes) - used_keys)
    if extra:
        raise UserError(f"{boxes_path.name}: boxes for '{extra[0]}' match no tube in {name} ({len(extra)} such keys)")
    return SealTubes(atomic, list(activities), videos, version, source=str(json_path))


def _seconds(value: float) -> float:
    return round(float(value), 4)


def write_seal_tubes(json_path: str | Path, boxes_path: str | Path, tubes: SealTubes) -> None:
    """Write a SEAL Tubes split (JSON + .npz boxes) atomically; validation on read checks what this writes."""
    atomic = [
        {"id": cid, "name": tubes.atomic_classes.names[cid], "label_type": tubes.atomic_classes.types.get(cid, "POSE")}
        for cid in tubes.atomic_classes.ids
    ]
    database: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for vid, video in tubes.videos.items():
        tube_docs: dict[str, Any] = {}
        for tid, tube in video.tubes.items():
            tube_docs[tid] = {
                "frames": [int(tube.frames[0]), int(tube.frames[1])],
                "activities": [{"segment": [_seconds(s.start), _seconds(s.end)], "label": str(s.label)}
                               for s in tube.activities],
                "atomic_actions": [{"segment": [_seconds(s.start), _seconds(s.end)], "label": int(s.label)}
                                   for s in tube.atomic_actions],
            }
            arrays[tube_box_key(vid, tid)] = np.asarray(tube.boxes, dtype=np.float32).reshape(-1, 5)
        database[vid] = {
            "subset": video.subset, "duration": _seconds(video.duration), "fps": float(video.fps),
            "nframes": int(video.nframes), "resolution": [int(video.resolution[0]), int(video.resolution[1])],
            "tubes": tube_docs,
        }
    doc = {"version": tubes.version, "atomic_classes": atomic, "activity_classes": list(tubes.activity_classes),
           "database": database}
    _save_npz(Path(boxes_path), arrays)
    write_json(json_path, doc)


# ------------------------------------------------------------------------------------------ SEAL Clips


UNLABELED_KEYS = "__unlabeled_keys__"
UNLABELED_BOXES = "__unlabeled_boxes__"


def write_seal_clips(csv_path: str | Path, npz_path: str | Path, clips: SealClips) -> None:
    """Write labelled rows (gt layout CSV) and, in the .npz, per-frame boxes, unlabelled persons and the rule."""
    arrays = {key: np.asarray(val, np.float32).reshape(-1, 5) for key, val in clips.frame_boxes.items()}
    arrays[CLIP_META_KEY] = np.array(json.dumps(clips.rule, sort_keys=True))
    u = clips.unlabeled
    keys = [clip_box_key(str(v), float(t), int(p)) for v, t, p in zip(u.video_ids, u.timestamps, u.person_ids)]
    arrays[UNLABELED_KEYS] = np.asarray(keys, dtype=str) if keys else np.zeros(0, dtype="U1")
    arrays[UNLABELED_BOXES] = np.asarray(u.boxes, np.float32).reshape(-1, 4)
    _save_npz(Path(npz_path), arrays)
    write_ava_csv(csv_path, clips.table, kind="gt")


def _unlabeled_table(keys: np.ndarray, boxes: np.ndarray, source: str) -> AvaTable:
    if keys.size == 0:
        return AvaTable.empty(source)
    parts = [str(k).rsplit(",", 2) for k in keys.tolist()]
    return AvaTable.from_columns([p[0] for p in parts], [float(p[1]) for p in parts], boxes,
                                 person_ids=[int(p[2]) for p in parts], source=source)


def read_seal_clips(csv_path: str | Path, npz_path: str | Path) -> SealClips:
    """Read SEAL Clips; every labelled row must have its per-frame boxes in the .npz (keys of `clip_box_key`)."""
    csv_path, npz_path = Path(csv_path), Path(npz_path)
    table = read_ava_csv(csv_path, kind="gt")
    arrays = _load_npz(npz_path)
    rule: dict[str, Any] = {}
    if CLIP_META_KEY in arrays:
        try:
            rule = json.loads(str(arrays.pop(CLIP_META_KEY)))
        except json.JSONDecodeError:
            raise UserError(f"{npz_path}: entry {CLIP_META_KEY} is not JSON") from None
    ukeys = arrays.pop(UNLABELED_KEYS, np.zeros(0, dtype="U1"))
    uboxes = arrays.pop(UNLABELED_BOXES, np.zeros((0, 4), np.float32))
    if uboxes.reshape(-1, 4).shape[0] != ukeys.size:
        raise UserError(f"{npz_path.name}: {UNLABELED_KEYS} and {UNLABELED_BOXES} differ in length")
    for key, arr in arrays.items():
        if arr.ndim != 2 or arr.shape[1] != 5:
            raise UserError(f"{npz_path.name}: '{key}' has shape {arr.shape}, expected (n, 5) rows frame,x1,y1,x2,y2")
        coords = arr[:, 1:]
        if ((coords < -_BOX_TOL) | (coords > 1 + _BOX_TOL)).any() or (coords[:, 2] < coords[:, 0]).any() \
                or (coords[:, 3] < coords[:, 1]).any():
            raise UserError(f"{npz_path.name}: '{key}' has a box outside [0, 1] or with x2 < x1 / y2 < y1")
    for i in range(len(table)):
        key = clip_box_key(str(table.video_ids[i]), float(table.timestamps[i]), int(table.person_ids[i]))
        if key not in arrays:
            raise UserError(f"{csv_path}:{i + 1}: no per-frame boxes for clip '{key}' in {npz_path.name}")
    unlabeled = _unlabeled_table(ukeys, uboxes.reshape(-1, 4), str(npz_path))
    return SealClips(table, arrays, unlabeled, rule)
