"""SEAL Tubes -> SEAL Clips (paper 3.2: windows of 2 s every 1 s, every person's boxes and actions per window).

The paper says only "cut videos with stride=1s and windows=2s, then for each person generate bounding boxes in
each frame and actions within each 2-second clip". Everything it leaves open is an explicit `ClipConfig` key:

- clip k covers [k*stride, k*stride + window) seconds; its keyframe (the CSV's `center_sec`) is the centre,
  k*stride + window/2; only clips that lie wholly inside the video are made (a decoder never has to pad);
- a person (tube) takes part in clip k only if the tube has a box at the keyframe frame round(center*fps)
  (that box is the CSV row's box);
- an atomic segment [s, e) is assigned to a clip by `assign_rule`:
  "overlap"  (default) the segment overlaps the window by >= `min_overlap` seconds (and by more than 0);
  "keyframe" the segment covers the keyframe instant, s <= center < e;
  "both"     both of the above; "either" at least one of them;
- `min_overlap` defaults to 0.5 s (a quarter of the window): SEAL's atomic actions last >= 0.6 s and its
  annotated boundaries include up to a second of lead-in/lead-out ("cut" starts one second before the knife is
  held), so a mere touch of the window is annotation slack, while half a second is ~8 SlowFast slow-path frames'
  worth of motion at the paper's 32x2 sampling -- enough for the action to be visible in the clip;
- `box_density` picks which frames inside the window keep a box: "all" = every annotated frame,
  "{r}fps" = the frames nearest to a grid of r per second anchored on the keyframe (so the keyframe's box is
  always kept): "1fps" -> 2 boxes per 2-s clip, "4fps" -> 8 (paper Table 3 compares these two);
- person ids are stable per tube within a video: the tube id itself when every tube id of the video is a
  non-negative integer, else the tube's rank in sorted tube-id order;
- a present person with no assigned action gets no CSV row (AVA has none for such persons either) but is kept in
  `SealClips.unlabeled` with its per-frame boxes, for use as un-labelled context/negatives.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np

from seal_transfer.data.config import ASSIGN_RULES, ClipConfig
from seal_transfer.data.formats.ava import AvaTable, LabelMap
from seal_transfer.data.formats.seal import SealClips, SealTubes, clip_box_key
from seal_transfer.errors import UserError

__all__ = ["ASSIGN_RULES", "ClipConfig", "generate_clips", "label_at_own_instant", "person_ids_for"]

_EPS = 1e-6

def person_ids_for(tube_ids: list[str]) -> dict[str, int]:
    """Stable integer person id per tube of one video (see module docstring)."""
    if tube_ids and all(t.isdigit() for t in tube_ids):
        return {t: int(t) for t in tube_ids}
    return {t: rank for rank, t in enumerate(sorted(tube_ids))}


def _expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For integer ranges [lo_i, hi_i]: (owner index, value) of every member, without a Python loop."""
    counts = np.maximum(hi - lo + 1, 0)
    owner = np.repeat(np.arange(lo.size), counts)
    starts = np.cumsum(counts) - counts
    values = lo[owner] + (np.arange(owner.size) - starts[owner])
    return owner, values.astype(np.int64)


def _lookup(sorted_keys: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of `queries` in `sorted_keys` and whether each was found."""
    pos = np.searchsorted(sorted_keys, queries)
    pos_c = np.minimum(pos, max(sorted_keys.size - 1, 0))
    found = (pos < sorted_keys.size) & (sorted_keys[pos_c] == queries) if sorted_keys.size else np.zeros(
        queries.shape, bool)
    return pos_c, found


def generate_clips(tubes: SealTubes, cfg: ClipConfig | None = None, labelmap: LabelMap | None = None) -> SealClips:
    """Cut every tube into clips and assign its atomic actions to them by `cfg`'s explicit rule.

    `labelmap` (default: the tubes' own class list) must contain every atomic label used.
    """
    cfg = cfg or ClipConfig()
    cfg.validate()
    rate = cfg.density_rate()
    known = np.asarray((labelmap or tubes.atomic_classes).ids, np.int64)

    # Flatten tubes, boxes and segments into column arrays.
    vids: list[str] = []
    t_video: list[int] = []
    t_person: list[int] = []
    t_fps: list[float] = []
    t_end: list[float] = []
    box_parts: list[np.ndarray] = []
    seg_rows: list[tuple[int, float, float, int]] = []
    for v_index, (vid, video) in enumerate(tubes.videos.items()):
        vids.append(vid)
        pids = person_ids_for(list(video.tubes))
        video_end = min(float(video.duration), video.nframes / video.fps)
        for tid, tube in video.tubes.items():
            t_index = len(t_video)
            t_video.append(v_index)
            t_person.append(pids[tid])
            t_fps.append(float(video.fps))
            t_end.append(video_end)
            arr = np.asarray(tube.boxes, np.float32).reshape(-1, 5)
            box_parts.append(np.column_stack([np.full(arr.shape[0], t_index, np.float64), arr.astype(np.float64)]))
            seg_rows.extend((t_index, seg.start, seg.end, int(seg.label)) for seg in tube.atomic_actions)
    n_tubes = len(t_video)
    if n_tubes == 0:
        return SealClips(AvaTable.empty(), {}, AvaTable.empty(), _rule(cfg))
    video_of = np.asarray(t_video, np.int64)
    person_of = np.asarray(t_person, np.int64)
    fps = np.asarray(t_fps, np.float64)
    end = np.asarray(t_end, np.float64)
    boxes = np.concatenate(box_parts)
    # Key space (tube, frame) -> tube * stride_frames + frame; every frame we query lies in [0, stride_frames).
    stride_frames = int(max(boxes[:, 1].max(), max(v.nframes for v in tubes.videos.values()))) + 2
    box_tube = boxes[:, 0].astype(np.int64)
    box_frame = boxes[:, 1].astype(np.int64)
    box_key = box_tube * stride_frames + box_frame  # sorted: tubes in order, frames increasing within a tube
    order = np.argsort(box_key, kind="stable")
    box_key, boxes = box_key[order], boxes[order]

    # Candidate clips per tube: keyframes within the tube's annotated frames, windows inside the video.
    first_frame = np.full(n_tubes, np.inf)
    last_frame = np.full(n_tubes, -np.inf)
    np.minimum.at(first_frame, box_tube, box_frame)
    np.maximum.at(last_frame, box_tube, box_frame)
    half = cfg.window / 2
    k_lo = np.maximum(np.ceil(((first_frame - 0.5) / fps - half) / cfg.stride - _EPS), 0).astype(np.int64)
    k_hi = np.floor(((last_frame + 0.5) / fps - half) / cfg.stride + _EPS).astype(np.int64)
    k_hi = np.minimum(k_hi, np.floor((end - cfg.window) / cfg.stride + _EPS).astype(np.int64))
    c_tube, c_k = _expand(k_lo, k_hi)
    c_center = c_k * cfg.stride + half
    c_kf = np.rint(c_center * fps[c_tube]).astype(np.int64)
    pos, present = _lookup(box_key, c_tube * stride_frames + c_kf)
    c_tube, c_k, c_center, c_kf, c_box = c_tube[present], c_k[present], c_center[present], c_kf[present], pos[present]

    # Segments -> (segment, clip) pairs that the rule accepts.
    seg = np.asarray(seg_rows, np.float64).reshape(-1, 4)
    s_tube, s_start, s_end, s_label = seg[:, 0].astype(np.int64), seg[:, 1], seg[:, 2], seg[:, 3].astype(np.int64)
    unknown = ~np.isin(s_label, known)
    if unknown.any():
        raise UserError(f"{tubes.source or 'SEAL tubes'}: atomic label {int(s_label[unknown][0])} is not in the label "
                        f"map ({int(unknown.sum())} segments)")
    lo = (np.floor((s_start - cfg.window) / cfg.stride + _EPS) + 1).astype(np.int64)
    hi = (np.ceil(s_end / cfg.stride - _EPS) - 1).astype(np.int64)
    owner, k = _expand(np.maximum(lo, 0), hi)
    win_start = k * cfg.stride
    center = win_start + half
    overlap = np.minimum(s_end[owner], win_start + cfg.window) - np.maximum(s_start[owner], win_start)
    by_overlap = overlap >= cfg.min_overlap - _EPS
    by_keyframe = (s_start[owner] <= center + _EPS) & (center < s_end[owner] - _EPS)
    accept = {"overlap": by_overlap, "keyframe": by_keyframe, "both": by_overlap & by_keyframe,
              "either": by_overlap | by_keyframe}[cfg.assign_rule]
    owner, k = owner[accept], k[accept]
    n_k = int(max(c_k.max() if c_k.size else 0, k.max() if k.size else 0)) + 1
    clip_key = c_tube * n_k + c_k  # sorted, unique
    clip_pos, found = _lookup(clip_key, s_tube[owner] * n_k + k) if k.size else (k, np.zeros(0, bool))
    pair_clip, pair_label = clip_pos[found], s_label[owner[found]]
    pairs = np.unique(pair_clip * (int(known.max()) + 1) + pair_label)  # one row per (clip, action)
    row_clip, row_label = pairs // (int(known.max()) + 1), pairs % (int(known.max()) + 1)

    # Rows in (video id, keyframe, person, action) order, whatever the order of videos in the file.
    video_of = np.argsort(np.argsort(np.asarray(vids, dtype=str), kind="stable"), kind="stable")[video_of]
    row_order = np.lexsort((row_label, person_of[c_tube[row_clip]], c_k[row_clip], video_of[c_tube[row_clip]]))
    row_clip, row_label = row_clip[row_order], row_label[row_order]
    vid_array = np.sort(np.asarray(vids, dtype=str), kind="stable")
    centre_boxes = boxes[c_box, 2:6].astype(np.float32)
    table = AvaTable.from_columns(vid_array[video_of[c_tube[row_clip]]], c_center[row_clip], centre_boxes[row_clip],
                                  action_ids=row_label, person_ids=person_of[c_tube[row_clip]], source="generate_clips")
    labelled = np.zeros(c_k.size, bool)
    labelled[row_clip] = True
    keep_clip = np.ones(c_k.size, bool) if cfg.keep_unlabeled else labelled
    unl = np.flatnonzero(~labelled & keep_clip)
    unl = unl[np.lexsort((person_of[c_tube[unl]], c_k[unl], video_of[c_tube[unl]]))]
    unlabeled = AvaTable.from_columns(vid_array[video_of[c_tube[unl]]], c_center[unl], centre_boxes[unl],
                                      person_ids=person_of[c_tube[unl]], source="generate_clips")

    frame_boxes = _clip_frame_boxes(cfg, rate, np.flatnonzero(keep_clip), c_tube, c_k, c_center, fps, box_key, boxes,
                                    stride_frames)
    keys = [clip_box_key(str(vid_array[video_of[t]]), float(c), int(person_of[t]))
            for t, c in zip(c_tube[np.flatnonzero(keep_clip)].tolist(), c_center[np.flatnonzero(keep_clip)].tolist())]
    return SealClips(table, dict(zip(keys, frame_boxes)), unlabeled, _rule(cfg))


def _clip_frame_boxes(
    cfg: ClipConfig, rate: float | None, clips: np.ndarray, c_tube: np.ndarray, c_k: np.ndarray,
    c_center: np.ndarray, fps: np.ndarray, box_key: np.ndarray, boxes: np.ndarray, stride_frames: int,
) -> list[np.ndarray]:
    """Per-frame boxes (frame, x1, y1, x2, y2) inside each clip, thinned to the configured density."""
    tube, center = c_tube[clips], c_center[clips]
    f = fps[tube]
    first = np.ceil(c_k[clips] * cfg.stride * f - _EPS).astype(np.int64)
    last = np.ceil((c_k[clips] * cfg.stride + cfg.window) * f - _EPS).astype(np.int64) - 1
    last = np.minimum(last, stride_frames - 1)  # never reach into the next tube's key range
    if rate is None:
        lo = np.searchsorted(box_key, tube * stride_frames + first, side="left")
        hi = np.searchsorted(box_key, tube * stride_frames + last, side="right")
        rows = boxes[:, 1:6].astype(np.float32)
        return [rows[a:b] for a, b in zip(lo.tolist(), hi.tolist())]
    reach = int(math.ceil(cfg.window / 2 * rate)) + 1
    offsets = np.arange(-reach, reach + 1) / rate
    frames = np.rint((center[:, None] + offsets[None, :]) * f[:, None]).astype(np.int64)
    inside = (frames >= first[:, None]) & (frames <= last[:, None])
    dup = np.zeros_like(inside)
    dup[:, 1:] = frames[:, 1:] == frames[:, :-1]  # a coarse video can map two grid times to one frame
    pos, found = _lookup(box_key, tube[:, None] * stride_frames + frames)
    keep = inside & ~dup & found
    counts = keep.sum(axis=1)
    rows = boxes[pos[keep], 1:6].astype(np.float32)
    return np.split(rows, np.cumsum(counts)[:-1]) if clips.size else []


def density_frames(center: float, fps: float, cfg: ClipConfig) -> tuple[int, int, np.ndarray | None]:
    """(first frame, last frame, frames kept) of the clip whose keyframe is `center` seconds, by `cfg.box_density`.

    The same window and grid `generate_clips` uses; the kept frames are None for "all" (every frame inside).
    """
    half = cfg.window / 2
    first = int(math.ceil((center - half) * fps - _EPS))
    last = int(math.ceil((center + half) * fps - _EPS)) - 1
    rate = cfg.density_rate()
    if rate is None:
        return first, last, None
    reach = int(math.ceil(half * rate)) + 1
    frames = np.rint((center + np.arange(-reach, reach + 1) / rate) * fps).astype(np.int64)
    return first, last, np.unique(frames[(frames >= first) & (frames <= last)])


def thin_clip_boxes(boxes: np.ndarray, center: float, fps: float, cfg: ClipConfig) -> np.ndarray:
    """Rows `frame, x1, y1, x2, y2` of one clip that lie inside its window and on the `box_density` grid.

    For a SEAL Clips file read as given: the file may hold every frame's box or already fewer; this keeps what
    `generate_clips` would keep, out of what the file holds (it cannot add boxes the file lacks).
    """
    first, last, frames = density_frames(center, fps, cfg)
    column = boxes[:, 0]
    keep = (column >= first) & (column <= last)
    if frames is not None:
        keep &= np.isin(column, frames)
    return boxes[keep]


def _rule(cfg: ClipConfig) -> dict:
    return {**asdict(cfg), "keyframe": "k*stride + window/2", "presence": "box at round(keyframe*fps)",
            "covers": "s <= keyframe < e"}


def label_at_own_instant(table: AvaTable, tubes: SealTubes) -> AvaTable:
    """Relabel dense training samples (`expand_dense_boxes`) with the actions active at each sample's own frame.

    With `assign_rule="keyframe"` a clip's labels are the actions covering its keyframe; a dense sample a quarter
    or half second away would otherwise inherit them even when an action starts or stops in between (for 1-3 s
    segments that is a large share of the 4 fps samples). Here each distinct (video, time, person, box) sample
    gets one row per atomic segment of its person's tube with start <= time < end; a sample with none is dropped,
    as an unlabelled person has no row. The keyframe sample itself keeps exactly its clip labels.
    """
    if len(table) == 0:
        return table
    segments: dict[tuple[str, int], list[tuple[float, float, int]]] = {}
    for vid, video in tubes.videos.items():
        pids = person_ids_for(list(video.tubes))
        for tid, tube in video.tubes.items():
            segments[(vid, pids[tid])] = [(s.start, s.end, int(s.label)) for s in tube.atomic_actions]
    rounded = np.round(table.boxes.astype(np.float64), 4)
    seen: set[tuple] = set()
    cols: dict[str, list] = {"vid": [], "ts": [], "box": [], "action": [], "person": []}
    for i in range(len(table)):
        vid, ts, pid = str(table.video_ids[i]), float(table.timestamps[i]), int(table.person_ids[i])
        key = (vid, round(ts, 6), pid, *rounded[i].tolist())
        if key in seen:
            continue
        seen.add(key)
        active = sorted({lab for s, e, lab in segments.get((vid, pid), []) if s <= ts + _EPS and ts < e - _EPS})
        for lab in active:
            cols["vid"].append(vid)
            cols["ts"].append(ts)
            cols["box"].append(table.boxes[i])
            cols["action"].append(lab)
            cols["person"].append(pid)
    if not cols["vid"]:
        return AvaTable.empty(table.source)
    return AvaTable.from_columns(cols["vid"], cols["ts"], np.asarray(cols["box"], np.float32), cols["action"],
                                 cols["person"], source=table.source)
