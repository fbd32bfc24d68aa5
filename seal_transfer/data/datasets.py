"""Keyframe datasets: one item = one keyframe of one video with every person box on it.

A keyframe (not a box) is the unit so the backbone runs once per keyframe and all its boxes go through the
RoI head together — for training, validation and the adaptation stage's two-view pseudo-labelling alike.
SEAL Clips and AVA share the layout (AVA CSV rows), so one dataset class serves both domains.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from seal_transfer.data.clip import ClipSpec, pack_pathways
from seal_transfer.data.formats.ava import AvaTable, LabelMap, VideoTiming
from seal_transfer.data.transforms import ClipTransform
from seal_transfer.data.video import VideoError, clip_frame_indices, open_video_source
from seal_transfer.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")


@dataclass
class KeyframeIndex:
    """Keyframes with their boxes, built once from an AvaTable (rows → distinct boxes with multi-hot labels)."""

    video_ids: list[str]  # per keyframe
    timestamps: np.ndarray  # (F,) seconds
    box_start: np.ndarray  # (F+1,) offsets into the box arrays
    boxes: np.ndarray  # (B, 4) normalised
    labels: np.ndarray  # (B, C) float32 multi-hot (zeros where unlabeled)
    person_ids: np.ndarray  # (B,)
    box_scores: np.ndarray  # (B,) detector score (1 for GT)
    # (B, C) float32, 0 where the loss must ignore a class of a box (a pseudo label's uncertain classes under
    # adapt.negatives=confident), 1 elsewhere; None: every entry counts (ground truth, the paper's rounds).
    label_mask: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.video_ids)

    def boxes_of(self, i: int) -> slice:
        return slice(int(self.box_start[i]), int(self.box_start[i + 1]))

    @property
    def num_boxes(self) -> int:
        return int(self.boxes.shape[0])

    def select(self, keep: np.ndarray) -> KeyframeIndex:
        """The keyframes where `keep` (bool, one per keyframe) is true, with their boxes, in the same order."""
        keep = np.asarray(keep, dtype=bool)
        counts = np.diff(self.box_start)
        box_keep = np.repeat(keep, counts)
        return KeyframeIndex(
            video_ids=[v for v, k in zip(self.video_ids, keep.tolist()) if k],
            timestamps=self.timestamps[keep],
            box_start=np.concatenate([[0], np.cumsum(counts[keep])]).astype(np.int64),
            boxes=self.boxes[box_keep],
            labels=self.labels[box_keep],
            person_ids=self.person_ids[box_keep],
            box_scores=self.box_scores[box_keep],
            label_mask=None if self.label_mask is None else self.label_mask[box_keep],
        )


def build_keyframe_index(
    table: AvaTable,
    labelmap: Optional[LabelMap],
    *,
    keep: Optional[Callable[[str, float], bool]] = None,
    ignored: Optional[AvaTable] = None,
) -> KeyframeIndex:
    """Group rows into keyframes and distinct boxes; actions outside `labelmap` are dropped (counted by caller).

    Rows with identical (video, time, box, person) are one box carrying several labels — AVA's one-row-per-
    (person, action) layout. `labelmap=None` builds an unlabeled index (detector boxes). `ignored`: rows in the
    same layout naming (box, class) pairs the loss must not count, neither as positive nor as negative; each must
    name a box of `table` and a class that box is not labelled with (they are made from the same labelling step,
    so a miss is a bug, raised as ValueError).
    """
    num_classes = len(labelmap) if labelmap is not None else 0
    column = labelmap.index_of() if labelmap is not None else {}
    if len(table) == 0:
        return KeyframeIndex(
            [],
            np.zeros(0),
            np.zeros(1, np.int64),
            np.zeros((0, 4), np.float32),
            np.zeros((0, num_classes), np.float32),
            np.zeros(0, np.int64),
            np.zeros(0, np.float32),
        )
    rounded = np.round(table.boxes.astype(np.float64), 4)
    # Sort rows by (video, time, person, box) so each keyframe's boxes are contiguous and ordered stably.
    order = np.lexsort(
        (
            rounded[:, 3],
            rounded[:, 2],
            rounded[:, 1],
            rounded[:, 0],
            table.person_ids,
            table.timestamps,
            table.video_ids,
        )
    )
    vids = table.video_ids[order]
    ts = table.timestamps[order]
    bx = rounded[order]
    pid = table.person_ids[order]
    new_box = np.ones(len(order), dtype=bool)
    new_box[1:] = (vids[1:] != vids[:-1]) | (ts[1:] != ts[:-1]) | (pid[1:] != pid[:-1]) | np.any(bx[1:] != bx[:-1], 1)
    box_id = np.cumsum(new_box) - 1
    first = np.flatnonzero(new_box)
    labels = np.zeros((len(first), num_classes), np.float32)
    if num_classes:
        cols = np.array([column.get(int(a), -1) for a in table.action_ids[order]], dtype=np.int64)
        ok = cols >= 0
        labels[box_id[ok], cols[ok]] = 1.0
    scores = np.zeros(len(first), np.float32)
    np.maximum.at(scores, box_id, table.scores[order])
    box_vids = vids[first]
    box_ts = ts[first]
    new_kf = np.ones(len(first), dtype=bool)
    new_kf[1:] = (box_vids[1:] != box_vids[:-1]) | (box_ts[1:] != box_ts[:-1])
    kf_first = np.flatnonzero(new_kf)
    keep_kf = np.ones(len(kf_first), dtype=bool)
    if keep is not None:
        keep_kf = np.array([keep(str(box_vids[i]), float(box_ts[i])) for i in kf_first], dtype=bool)
    starts = np.append(kf_first, len(first))
    sel_boxes: list[np.ndarray] = []
    offsets = [0]
    for k in np.flatnonzero(keep_kf):
        idx = np.arange(starts[k], starts[k + 1])
        sel_boxes.append(idx)
        offsets.append(offsets[-1] + len(idx))
    box_sel = np.concatenate(sel_boxes) if sel_boxes else np.zeros(0, np.int64)
    mask = None if ignored is None else _label_mask(ignored, vids[first], ts[first], pid[first], bx[first], labels,
                                                    column)
    return KeyframeIndex(
        video_ids=[str(box_vids[kf_first[k]]) for k in np.flatnonzero(keep_kf)],
        timestamps=box_ts[kf_first[keep_kf]].astype(np.float64),
        box_start=np.asarray(offsets, dtype=np.int64),
        boxes=table.boxes[order][first][box_sel].astype(np.float32),
        labels=labels[box_sel],
        person_ids=pid[first][box_sel].astype(np.int64),
        box_scores=scores[box_sel],
        label_mask=None if mask is None else mask[box_sel],
    )


def _label_mask(ignored: AvaTable, vids: np.ndarray, ts: np.ndarray, pid: np.ndarray, boxes: np.ndarray,
                labels: np.ndarray, column: dict[int, int]) -> np.ndarray:
    """(B, C) ones with a 0 for every ignored (box, class) row (see `build_keyframe_index`)."""
    where = {(str(v), float(t), int(p), tuple(b)): i
             for i, (v, t, p, b) in enumerate(zip(vids.tolist(), ts.tolist(), pid.tolist(), boxes.tolist()))}
    mask = np.ones_like(labels)
    rounded = np.round(ignored.boxes.astype(np.float64), 4)
    for r in range(len(ignored)):
        key = (str(ignored.video_ids[r]), float(ignored.timestamps[r]), int(ignored.person_ids[r]),
               tuple(rounded[r].tolist()))
        box, col = where.get(key), column.get(int(ignored.action_ids[r]))
        if box is None or col is None or labels[box, col]:
            raise ValueError(f"ignored label row {r} ({key[0]} at {key[1]}, class {int(ignored.action_ids[r])}) "
                             "names no box of the table, a class outside the label map, or a labelled class")
        mask[box, col] = 0.0
    return mask


def find_video(video_dir: Path, video_id: str, *, frame_folders: bool = False) -> Path:
    """Resolve `{video_dir}/{video_id}.<ext>` without letting an id from an annotation file escape the folder.

    `frame_folders`: `video_dir` holds one frame folder per video (data.target.frame_dir), so the answer is
    `{video_dir}/{video_id}` whether or not it exists (a missing one is reported as a missing folder).
    """
    if not video_id or "/" in video_id or "\\" in video_id or video_id in (".", "..") or "\0" in video_id:
        raise UserError(
            f"video id '{video_id}' is not a plain name (annotation files may not point outside {video_dir})"
        )
    if frame_folders:
        return video_dir / video_id
    for suffix in VIDEO_SUFFIXES:
        candidate = video_dir / f"{video_id}{suffix}"
        if candidate.exists():
            return candidate
    frame_folder = video_dir / video_id
    if frame_folder.is_dir():
        return frame_folder
    return video_dir / f"{video_id}.mp4"  # the decoder reports it missing, naming this path


class KeyframeDataset(Dataset):
    """Yields one keyframe: decoded clip → (slow, fast), its boxes in pixels, multi-hot labels, bookkeeping.

    `views=2` decodes once and returns two independent random transforms of the same keyframe (the adaptation
    stage's consistency check). Randomness is a pure function of (seed, epoch, index, view), so a resumed run
    sees the same augmentations as an uninterrupted one.
    """

    # Frames are converted to RGB at full size unless the video's short side exceeds this multiple of the largest
    # short side the transform can produce. FFmpeg's unscaled YUV->RGB conversion is 4-5x cheaper than a scaled
    # one (0.5 ms vs 2-2.5 ms per 360p-720p frame here) and the transform's uint8 resize of the crop window costs
    # about the same either way; only beyond this ratio do the bigger frames (cache memory, resize input) outweigh
    # that. 2.5 keeps 720p sources (AVA's usual size) at full size for training views (short side <= 320).
    FULL_SIZE_RATIO = 2.5

    def __init__(
        self,
        index: KeyframeIndex,
        video_paths: dict[str, Path],
        timings: dict[str, VideoTiming],
        clip: ClipSpec,
        transform: ClipTransform,
        *,
        seed: int = 0,
        views: int = 1,
        decode_short_side: Optional[int] = None,
        cache_frames: Optional[int] = None,
        decoder_threads: Optional[int] = None,
        video_frames: Optional[dict[str, int]] = None,
    ) -> None:
        self.index = index
        self.video_paths = video_paths
        self.timings = timings
        self.clip = clip
        self.transform = transform
        self.seed = seed
        self.views = views
        self.epoch = 0
        # None: full size up to FULL_SIZE_RATIO x the transform's largest output short side, else decode straight
        # to that short side (never upscaling); see _decode_short_side.
        self.decode_short_side = decode_short_side
        # None: FFmpeg's choice in the main process, 1 thread per decoder inside DataLoader workers (the workers are
        # the parallelism; decoder threads on top only oversubscribe the cores and add CPU time).
        self.decoder_threads = decoder_threads
        # Decoded frames kept per worker (default: two clips): neighbouring keyframes of one video share about half
        # their frames, so sequential passes (validation, pseudo-labelling) decode each frame once.
        self.cache_frames = 2 * clip.num_frames if cache_frames is None else int(cache_frames)
        # Frames each video can deliver (from `check_keyframes`): clip indices clamp to this end instead of asking
        # the decoder for frames past it. Without an entry, the source decides what lies past its end.
        self.video_frames = dict(video_frames or {})
        self._sources: dict[str, Any] = {}
        self._frames: OrderedDict[tuple[str, Optional[int], int], np.ndarray] = OrderedDict()
        self._preloaded = False

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_sources"] = {}  # open decoders stay in the process that opened them
        if not self._preloaded:
            state["_frames"] = OrderedDict()  # a preloaded store travels (fork shares it without a copy)
        return state

    def preload(self, max_bytes: int, progress: bool = True) -> Optional[int]:
        """Decode every frame the keyframes need once and keep them all (no eviction): for a small dataset,
        training then never decodes again and each epoch costs only augmentation and compute.

        Each video is read in one sequential pass over the union of its keyframes' frames (one seek, instead of
        one per keyframe), and each frame is stored once however many keyframes share it, at the size the dataset
        decodes anyway. Stops and returns None (cache left as a normal bounded cache) when the frames would pass
        `max_bytes`; otherwise returns the bytes held. Call it before DataLoader workers start: forked workers
        share the decoded frames with the main process instead of decoding them again.
        """
        from tqdm import tqdm

        needed: dict[str, set[int]] = {}
        for i in range(len(self)):
            vid = self.index.video_ids[i]
            needed.setdefault(vid, set()).update(self._frame_indices(i).tolist())
        held = 0
        self.cache_frames = 1 << 62  # no eviction while filling
        bar = tqdm(total=len(needed), desc="preload frames", unit="video", disable=not progress, dynamic_ncols=True)
        try:
            for vid, wanted in needed.items():
                source = self._source(vid)
                short_side = self._decode_short_side(source)
                order = sorted(wanted)
                frames = source.read_frames(np.asarray(order), short_side=short_side)
                held += sum(f.nbytes for f in frames)
                if held > max_bytes:
                    self._frames.clear()
                    self.cache_frames = 2 * self.clip.num_frames
                    return None
                for f, frame in zip(order, frames):
                    self._frames[(vid, short_side, f)] = frame
                source.close()  # decoders are not needed any more; forked workers must not share their state
                bar.update(1)
        finally:
            bar.close()
        self._preloaded = True
        return held

    def _source(self, video_id: str) -> Any:
        src = self._sources.get(video_id)
        if src is None:
            threads = self.decoder_threads
            if threads is None and get_worker_info() is not None:
                threads = 1
            src = open_video_source(self.video_paths[video_id], threads=threads)
            self._sources[video_id] = src
        return src

    def decode(self, i: int) -> np.ndarray:
        """The clip of keyframe `i` as one uint8 (T, H, W, 3) array."""
        return np.stack(self.decode_frames(i))

    def _frame_indices(self, i: int) -> np.ndarray:
        vid = self.index.video_ids[i]
        timing = self.timings[vid]
        return clip_frame_indices(
            float(self.index.timestamps[i]), timing.fps, timing.time_offset, self.clip.num_frames,
            self.clip.sample_rate, video_frames=self.video_frames.get(vid),
        )

    def decode_frames(self, i: int) -> list[np.ndarray]:
        """The clip of keyframe `i` as T uint8 (H, W, 3) arrays, shared with the frame cache: read-only."""
        vid = self.index.video_ids[i]
        indices = self._frame_indices(i)
        source = self._source(vid)
        short_side = self._decode_short_side(source)
        if self.cache_frames <= 0:
            return source.read_frames(indices, short_side=short_side)
        cache = self._frames
        unique = np.unique(indices).tolist()
        missing = [f for f in unique if (vid, short_side, f) not in cache]
        if missing:
            for f, frame in zip(missing, source.read_frames(np.asarray(missing), short_side=short_side)):
                cache[(vid, short_side, f)] = frame
        for f in unique:
            cache.move_to_end((vid, short_side, f))
        out = [cache[(vid, short_side, f)] for f in indices.tolist()]
        while len(cache) > max(self.cache_frames, len(unique)):
            cache.popitem(last=False)
        return out

    def _decode_short_side(self, source: Any) -> Optional[int]:
        """Short side to decode at: None (full size) unless the video is over FULL_SIZE_RATIO x what is needed."""
        if self.decode_short_side is not None:
            return self.decode_short_side
        info = getattr(source, "info", None)  # video files only; frame folders decode jpgs at their own size
        cfg = self.transform.cfg
        wanted = cfg.max_short_side if self.transform.train else cfg.eval_short_side
        if info is None or min(info.width, info.height) <= self.FULL_SIZE_RATIO * wanted:
            return None
        return int(wanted)

    def __getitem__(self, i: int) -> dict[str, Any]:
        frames = self.decode_frames(i)
        sl = self.index.boxes_of(i)
        boxes = self.index.boxes[sl]
        out_views = []
        for view in range(self.views):
            rng = np.random.default_rng([self.seed, self.epoch, i, view])
            clip, pix_boxes = self.transform(frames, boxes, rng)
            out_views.append((pack_pathways(clip, self.clip.alpha), pix_boxes))
        return {
            "views": out_views,
            "labels": torch.from_numpy(self.index.labels[sl]),
            "box_scores": torch.from_numpy(self.index.box_scores[sl]),  # GT 1; pseudo labels: their score
            "index": i,
            "box_ids": torch.arange(sl.start, sl.stop, dtype=torch.long),
            **({} if self.index.label_mask is None else {"label_mask": torch.from_numpy(self.index.label_mask[sl])}),
        }


def _pad_stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack (C,T,H,W) clips, zero-padding bottom/right when eval resizing left different sizes (boxes unaffected)."""
    h = max(t.shape[-2] for t in tensors)
    w = max(t.shape[-1] for t in tensors)
    if all(t.shape[-2] == h and t.shape[-1] == w for t in tensors):
        return torch.stack(list(tensors))
    return torch.stack([torch.nn.functional.pad(t, (0, w - t.shape[-1], 0, h - t.shape[-2])) for t in tensors])


def collate_keyframes(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch keyframes into pytorchvideo's RoI-model input: `[slow, fast]` and boxes (K,5) [batch_idx,x1,y1,x2,y2]."""
    num_views = len(items[0]["views"])
    views = []
    for v in range(num_views):
        slow = _pad_stack([it["views"][v][0][0] for it in items])
        fast = _pad_stack([it["views"][v][0][1] for it in items])
        boxes = torch.cat(
            [
                torch.cat(
                    [torch.full((len(it["views"][v][1]), 1), float(b)), torch.as_tensor(it["views"][v][1])], dim=1
                )
                for b, it in enumerate(items)
            ]
        ).float()
        views.append(([slow, fast], boxes))
    return {
        "views": views,
        "labels": torch.cat([it["labels"] for it in items]),
        "box_scores": torch.cat([it["box_scores"] for it in items]),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
        "box_ids": torch.cat([it["box_ids"] for it in items]),
        "boxes_per_item": torch.tensor([len(it["box_ids"]) for it in items], dtype=torch.long),
        **({"label_mask": torch.cat([it["label_mask"] for it in items])} if "label_mask" in items[0] else {}),
    }


def check_videos(
    video_paths: dict[str, Path], max_broken_fraction: float, what: str, min_frames: int = 0
) -> tuple[dict[str, Path], list[str]]:
    """Open each video once up front; drop broken ones, and refuse to go on if too many are broken.

    Checking before training (rather than failing inside a DataLoader worker) gives an exact count and a clear
    summary, and a gutted dataset never silently trains.
    """
    from seal_transfer.data.video import probe_video

    good: dict[str, Path] = {}
    broken: list[str] = []
    for vid, path in video_paths.items():
        try:
            if Path(path).is_dir():
                if not any(Path(path).iterdir()):
                    raise VideoError(f"{path}: frame folder is empty")
            elif not Path(path).exists() and Path(path).suffix.lower() not in VIDEO_SUFFIXES:
                raise VideoError(f"{path}: frame folder does not exist")  # find_video(frame_folders=True)
            else:
                frames = probe_video(path).num_frames
                if frames < min_frames:  # every clip would be the same few frames repeated: not training data
                    raise VideoError(f"{path}: has {frames} frames, fewer than one {min_frames}-frame clip window")
            good[vid] = path
        except VideoError as exc:
            broken.append(str(exc))
    if video_paths and len(broken) / len(video_paths) > max_broken_fraction:
        raise UserError(
            f"{what}: {len(broken)} of {len(video_paths)} videos are unreadable (limit "
            f"data.max_broken_fraction={max_broken_fraction}); first: {broken[0]}"
        )
    return good, broken


@dataclass
class KeyframeCheck:
    """Which keyframes of an index can be decoded as asked, from one probe per video (see `check_keyframes`)."""

    keep: np.ndarray  # (F,) bool: the keyframe's clip can be decoded
    skipped: list[str]  # one line per keyframe that was dropped although its video is usable, in index order
    broken: dict[str, str]  # video id -> problem, for videos the probe found unusable as a whole
    video_frames: dict[str, int]  # frames each usable video can deliver: clip indices clamp to this end


def check_keyframes(
    index: KeyframeIndex,
    video_paths: dict[str, Path],
    timings: dict[str, VideoTiming],
    clip: ClipSpec,
    *,
    promised_frames: Optional[dict[str, int]] = None,
    promised_by: str = "the annotation",
    check_range: bool = False,
    annotations: str = "",
) -> KeyframeCheck:
    """Decide for each keyframe whether its clip can be decoded, before any training, at the cost of one cheap
    probe per video (`video.check_frames`).

    Frames around a keyframe that lies inside the video are clamped at the video's edges (PySlowFast does the
    same). A keyframe is skipped, with a one-line reason, when its own frame is outside the video (a timestamp
    past the end or before the start), when `check_range` is set and its timestamp lies outside its timing's
    keyframe range (video_meta.csv), when its clip needs frames past the end of a truncated video, or when its
    clip needs a frame missing from a frame folder. Keyframes of videos absent from `video_paths` (found broken
    earlier) are not kept and get no reason here.
    """
    from seal_transfer.data.formats.ava import format_timestamp
    from seal_transfer.data.video import FrameFolderSource, check_frames

    keep = np.zeros(len(index), dtype=bool)
    reasons: dict[int, str] = {}
    broken: dict[str, str] = {}
    video_frames: dict[str, int] = {}
    if len(index) == 0:
        return KeyframeCheck(keep, [], broken, video_frames)
    videos, position = np.unique(np.asarray(index.video_ids), return_inverse=True)
    offsets = clip.sample_rate * np.arange(clip.num_frames, dtype=np.int64) - (clip.num_frames * clip.sample_rate) // 2
    source_note = f" (timestamps from {annotations})" if annotations else ""
    for v, vid in enumerate(videos.tolist()):
        rows = np.flatnonzero(position == v)
        path = video_paths.get(vid)
        if path is None:
            continue
        timing = timings[vid]
        stamps = index.timestamps[rows]
        centre = np.rint((stamps - timing.time_offset) * timing.fps).astype(np.int64)
        windows = centre[:, None] + offsets[None, :]
        promised = None if promised_frames is None else promised_frames.get(vid)
        source = open_video_source(path)
        try:
            check = check_frames(source, int(max(windows.max(), 0)), timing.fps, promised, promised_by)
        except VideoError as exc:
            broken[vid] = str(exc)
            continue
        finally:
            source.close()
        count = check.num_frames
        video_frames[vid] = count
        end_note = (
            f"past the last decodable frame {count - 1}: the video is truncated ({check.promised_by} promises "
            f"{check.promised_frames} frames)"
            if check.truncated
            else f"outside the video (frames 0..{count - 1}, seconds {timing.time_offset:g}.."
            f"{timing.time_offset + count / timing.fps:g})"
        )
        clamped = np.clip(windows, 0, count - 1)
        # Vectorised per video (AVA: ~900 keyframes each); messages are built for the skipped ones only.
        out_of_range = np.zeros(len(rows), dtype=bool)
        if check_range:
            out_of_range = (stamps < timing.first_keyframe - 1e-6) | (stamps > timing.last_keyframe + 1e-6)
        needs_cut = np.zeros(len(rows), dtype=bool)
        if check.truncated:
            needs_cut = np.minimum(windows.max(axis=1), check.promised_frames - 1) >= count
        gaps = np.isin(clamped, check.missing) if check.missing.size else np.zeros(clamped.shape, dtype=bool)
        bad = out_of_range | (centre < 0) | (centre >= count) | needs_cut | gaps.any(axis=1)
        keep[rows[~bad]] = True
        for r in np.flatnonzero(bad).tolist():
            stamp = format_timestamp(float(stamps[r]))
            if out_of_range[r]:
                reason = (
                    f"keyframe {stamp} is outside the keyframe range {timing.first_keyframe:g}.."
                    f"{timing.last_keyframe:g} of its timing (video_meta.csv or data.target.first_keyframe/"
                    f"last_keyframe){source_note}"
                )
            elif centre[r] < 0:
                reason = (
                    f"keyframe {stamp} is frame {int(centre[r])}, before the video's first frame (frame 0 is second "
                    f"{timing.time_offset:g}){source_note}"
                )
            elif centre[r] >= count:
                reason = f"keyframe {stamp} is frame {int(centre[r])}, {end_note}{source_note}"
            elif needs_cut[r]:
                reason = f"keyframe {stamp} needs frame {int(windows[r][windows[r] >= count][0])}, {end_note}"
            else:
                frame = int(clamped[r][gaps[r]][0])
                name = source.frame_path(frame).name if isinstance(source, FrameFolderSource) else f"frame {frame}"
                reason = f"keyframe {stamp} needs frame {frame}, but {name} is missing (a gap)"
            reasons[int(rows[r])] = f"{path}: {reason}"
    return KeyframeCheck(keep, [reasons[i] for i in sorted(reasons)], broken, video_frames)


class ClipClassificationDataset(Dataset):
    """Whole-clip labels (the generic set standing in for Kinetics): one clip per video per epoch.

    Training picks a random clip position (seeded by (seed, epoch, index)); evaluation takes the centre.
    """

    def __init__(
        self, items: Sequence[tuple[Path, int]], clip: ClipSpec, transform: ClipTransform, *, train: bool, seed: int = 0
    ) -> None:
        self.items = list(items)
        self.clip = clip
        self.transform = transform
        self.train = train
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from seal_transfer.data.video import probe_video

        path, label = self.items[i]
        info = probe_video(path)
        span = self.clip.num_frames * self.clip.sample_rate
        rng = np.random.default_rng([self.seed, self.epoch, i])
        latest_start = max(info.num_frames - span, 0)
        start = int(rng.integers(0, latest_start + 1)) if self.train else latest_start // 2
        indices = np.minimum(start + self.clip.sample_rate * np.arange(self.clip.num_frames), info.num_frames - 1)
        frames = open_video_source(path).read(indices)
        clip, _ = self.transform(frames, np.zeros((0, 4), np.float32), rng)
        return {"inputs": pack_pathways(clip, self.clip.alpha), "label": int(label), "index": i}


def collate_clips(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "inputs": [_pad_stack([it["inputs"][p] for it in items]) for p in range(2)],
        "labels": torch.tensor([it["label"] for it in items], dtype=torch.long),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
    }
