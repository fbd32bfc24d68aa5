"""Where a domain's files are and how to load them: real data roots or the built-in synthetic world.

Stages ask for "the target train split" and get tables, label maps, per-video timing and video paths; whether
those came from a real AVA folder or from the synthetic world is decided here, once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np

from seal_transfer.data.formats.ava import (
    AvaTable,
    LabelMap,
    VideoTiming,
    check_action_ids,
    read_ava_csv,
    read_exclusions,
    read_labelmap,
    read_proposals_pkl,
    read_video_meta,
)
from seal_transfer.errors import UserError
from seal_transfer.utils.locks import process_lock

DOMAINS = ("source", "target", "generic")
_DOMAIN_FILES = {
    "source": "the SEAL files (at least the atomic-action label map the model is trained on, data.source.labelmap)",
    "target": "the AVA files",
    "generic": "the generic clip list",
}


def check_real_roots(cfg: Any, *domains: str) -> None:
    """Refuse a half-real run: when any data root is set, every domain a stage reads (`domains`) must be real.

    Without this, a stage given only `data.target.root` quietly generated the synthetic world for the source
    domain and took its label map as the model's output space. Cheap (no file is touched), so stages call it
    before their lock; `synthetic_root` repeats it as the last line of defence.
    """
    real = [(f"data.{d}.root", getattr(cfg.data, d).root) for d in DOMAINS if getattr(cfg.data, d).root is not None]
    if not real:
        return
    for domain in domains:
        if getattr(cfg.data, domain).root is None:
            key, value = real[0]
            raise UserError(
                f"config key 'data.{domain}.root' is not set, but {key}={value} is: this stage also reads "
                f"{_DOMAIN_FILES[domain]}, and a run on real data never falls back to the synthetic world; "
                f"set data.{domain}.root=PATH"
            )


def synthetic_root(cfg: Any, domain: str = "") -> Path:
    """The synthetic world for `data.synthetic`, generated into `data.cache_dir` on first use.

    `domain` names the part the caller wants; none is handed out (or generated) while a real root is set.
    """
    from seal_transfer.data.synthetic.world import ensure_world

    check_real_roots(cfg, *([domain] if domain else DOMAINS))
    cache = Path(cfg.data.cache_dir).expanduser()
    synth_cfg = cfg.data.synthetic
    cache.mkdir(parents=True, exist_ok=True)
    # Several processes (DDP ranks, parallel tests) may ask for the same world at once: one generates it, the
    # others wait on the lock and then find it finished. The rendering pool's workers do not hold the lock, so
    # a run restarted right after a kill -9 mid-generation does not wait for the orphans (utils/locks.py).
    with process_lock(cache / ".generate.lock", wait=True):
        return Path(ensure_world(synth_cfg, cache))


def config_path(root: Path, section: Any, name: str, prefix: str, *, required: bool = False) -> Optional[Path]:
    """The file a config key names (relative to the domain root unless absolute); `required` files must exist."""
    key = f"{prefix}.{name}"
    relative = getattr(section, name)
    if relative is None:
        if required:
            raise UserError(f"config key '{key}' is not set")
        return None
    path = Path(relative).expanduser()
    path = path if path.is_absolute() else root / path
    if required and not path.exists():
        raise UserError(f"{path}: file not found (config key '{key}')")
    return path


@dataclass
class DomainSplit:
    """One split of one domain, loaded: annotation rows, label maps, timing and video paths per video."""

    table: AvaTable
    labelmap: LabelMap
    timings: dict[str, VideoTiming]
    video_paths: dict[str, Path]
    eval_labelmap: Optional[LabelMap] = None
    exclusions: set[tuple[str, float]] = field(default_factory=set)
    # Checks the datasets run on the keyframes (datasets.check_keyframes): timestamps inside each video's
    # keyframe range (AVA), and frame counts the annotation promises (SEAL Tubes' nframes) with their source.
    check_keyframe_range: bool = False
    promised_frames: dict[str, int] = field(default_factory=dict)
    promised_by: str = "the annotation"
    counts: dict[str, int] = field(default_factory=dict)  # where the rows came from (SEAL Tubes / a Clips file)
    # (box, class) rows the training loss ignores (adapt.negatives=confident: a pseudo label's uncertain classes)
    ignored: Optional[AvaTable] = None


def target_root(cfg: Any) -> tuple[Path, bool]:
    t = cfg.data.target
    if t.root is None:
        return synthetic_root(cfg, "target") / "ava", True
    root = Path(t.root).expanduser()
    if not root.is_dir():
        raise UserError(f"{root}: data.target.root is not a folder")
    return root, False


def _timings(
    video_ids: set[str], meta: dict[str, VideoTiming], default: VideoTiming, paths: dict[str, Path]
) -> dict[str, VideoTiming]:
    """Per-video timing: the metadata file wins; otherwise the config defaults with the video's own fps."""
    from seal_transfer.data.video import VideoError, probe_video

    out: dict[str, VideoTiming] = {}
    for vid in video_ids:
        if vid in meta:
            out[vid] = meta[vid]
            continue
        fps = default.fps
        path = paths.get(vid)
        if path is not None and path.is_file():
            try:
                fps = probe_video(path).fps
            except VideoError:
                pass  # reported when the dataset checks its videos
        out[vid] = VideoTiming(fps, default.time_offset, default.first_keyframe, default.last_keyframe)
    return out


def _video_paths(video_dir: Path, video_ids: set[str], frame_folders: bool = False) -> dict[str, Path]:
    from seal_transfer.data.datasets import find_video

    return {vid: find_video(video_dir, vid, frame_folders=frame_folders) for vid in sorted(video_ids)}


EVAL_ALL_CLASSES = "all"  # data.target.eval_labelmap=all: evaluate every class of data.target.labelmap


def _eval_labelmap(root: Path, t: Any, labelmap: LabelMap) -> LabelMap:
    """The evaluated classes: a missing file is an error (falling back to all classes changes the mAP)."""
    if t.eval_labelmap == EVAL_ALL_CLASSES:
        return labelmap
    path = config_path(root, t, "eval_labelmap", "data.target")
    if path is None or not path.exists():
        raise UserError(
            f"{path}: file not found (config key 'data.target.eval_labelmap'; the 60-class AVA file ships in "
            f"seal_transfer/resources/, or set data.target.eval_labelmap={EVAL_ALL_CLASSES} to evaluate every class "
            "of data.target.labelmap)"
        )
    return read_labelmap(path)


def _exclusions(root: Path, t: Any) -> set[tuple[str, float]]:
    """Excluded val keyframes: a configured file that is missing is an error; `exclusions=null` means none."""
    path = config_path(root, t, "exclusions", "data.target")
    if path is None:
        return set()
    if not path.exists():
        raise UserError(
            f"{path}: file not found (config key 'data.target.exclusions'; set data.target.exclusions=null if "
            "this dataset has no excluded timestamps)"
        )
    return read_exclusions(path)


def ignored_eval_rows(table: AvaTable, labelmap: LabelMap, eval_ids: list[int]) -> tuple[int, int, str]:
    """Validation GT rows that frame-mAP ignores, as the official evaluator does: (rows whose action id is in no
    label map, rows of classes the evaluation label map leaves out, a description of the first unknown row)."""
    known = np.isin(table.action_ids, np.asarray(labelmap.ids, dtype=np.int64))
    unknown = np.flatnonzero((table.action_ids >= 0) & ~known)
    not_evaluated = int((known & ~np.isin(table.action_ids, np.asarray(eval_ids, dtype=np.int64))).sum())
    first = ""
    if unknown.size:
        i = int(unknown[0])
        first = (
            f"{table.source}: row {i + 1} ({table.video_ids[i]},{table.timestamps[i]:g}, "
            f"action_id {table.action_ids[i]})"
        )
    return int(unknown.size), not_evaluated, first


def load_target_split(cfg: Any, split: str, boxes: str = "gt") -> DomainSplit:
    """AVA-format target split. `split`: train | val | unlabeled; `boxes`: gt (labelled GT boxes) or detector."""
    t = cfg.data.target
    root, synthetic = target_root(cfg)
    labelmap = read_labelmap(config_path(root, t, "labelmap", "data.target", required=True))
    eval_labelmap = _eval_labelmap(root, t, labelmap) if split == "val" else None
    if split == "unlabeled":
        table = _read_boxes(
            config_path(root, t, "unlabeled_boxes", "data.target", required=True),
            t.trust_pickle,
        )
    elif boxes == "detector":
        path = config_path(root, t, "val_boxes", "data.target", required=True) if split == "val" else None
        if path is None:
            raise UserError(f"detector boxes for split '{split}' are not configured")
        table = _read_boxes(path, t.trust_pickle)
        table = table.select(table.scores >= t.val_box_threshold)
    else:
        table = read_ava_csv(config_path(root, t, f"{split}_gt", "data.target", required=True), "gt")
        if split == "train":
            check_action_ids(table, labelmap)  # a typo'd id would silently train as 'no label' (evaluators skip them)
            _check_duplicate_rows(table)
    exclusions = _exclusions(root, t) if split == "val" else set()
    meta_path = config_path(root, t, "video_meta", "data.target")
    meta = read_video_meta(meta_path) if meta_path is not None and meta_path.exists() else {}
    video_ids = set(table.video_ids.tolist())
    frame_root = config_path(root, t, "frame_dir", "data.target")
    video_dir = frame_root if frame_root is not None else root / t.video_dir
    paths = _video_paths(video_dir, video_ids, frame_folders=frame_root is not None)
    default = VideoTiming(t.fps, t.time_offset, t.first_keyframe, t.last_keyframe)
    return DomainSplit(
        table, labelmap, _timings(video_ids, meta, default, paths), paths, eval_labelmap, exclusions,
        check_keyframe_range=True,
    )


def labelled_videos(video_ids: set[str], fraction: float, seed: int) -> set[str]:
    """The videos a user with a labelling budget of `fraction` has annotated: ceil(fraction x n) of them (at
    least one), the first ones of a seeded permutation of the sorted ids — so for one seed the subsets are nested
    (the 0.1 subset lies inside the 0.25 one) and do not depend on the order rows were read in."""
    ordered = sorted(video_ids)
    if fraction >= 1.0 or not ordered:
        return set(ordered)
    order = np.random.default_rng([int(seed), 0x5EA1]).permutation(len(ordered))
    count = max(1, math.ceil(fraction * len(ordered) - 1e-9))
    return {ordered[i] for i in order[:count]}


def restrict_to_labelled_videos(split: DomainSplit, fraction: float, seed: int) -> DomainSplit:
    """`split` with only the rows (and videos) of `labelled_videos`; the label-scarce finetune regime."""
    keep = labelled_videos(set(split.table.video_ids.tolist()), fraction, seed)
    return replace(
        split,
        table=split.table.select(np.isin(split.table.video_ids, sorted(keep))),
        timings={v: t for v, t in split.timings.items() if v in keep},
        video_paths={v: p for v, p in split.video_paths.items() if v in keep},
    )


def hidden_truth(cfg: Any, split: str) -> Optional[AvaTable]:
    """The synthetic target's true actions in the SOURCE label space, for pseudo-label precision only.

    Real data has none (returns None). Only the adaptation statistics call this; no dataset or training path
    reads it, so the truth cannot leak into what a model learns.
    """
    root, synthetic = target_root(cfg)
    path = root.parent / "hidden_truth" / f"ava_{split}_source_labels.csv"
    return read_ava_csv(path, "gt") if synthetic and path.exists() else None


def _check_duplicate_rows(table: AvaTable) -> None:
    """An identical (video, time, box, action, person) row twice is a merge or export bug upstream: refuse it."""
    if len(table) < 2:
        return
    keys = np.rec.fromarrays(
        [table.video_ids, table.timestamps, *np.round(table.boxes.astype(np.float64), 4).T, table.action_ids,
         table.person_ids]
    )
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    if (counts > 1).any():
        row = int(first[counts > 1].min())
        raise UserError(
            f"{table.source}: row {row + 1} ({table.video_ids[row]},{table.timestamps[row]:g}, action "
            f"{int(table.action_ids[row])}, person {int(table.person_ids[row])}) appears more than once "
            f"({int((counts - 1).sum())} duplicate rows)"
        )


def _read_boxes(path: Path, trust_pickle: bool) -> AvaTable:
    if path.suffix == ".pkl":
        return read_proposals_pkl(path, trust=trust_pickle)
    return read_ava_csv(path, "boxes")


# ------------------------------------------------------------------------------------------- source (SEAL)


def source_root(cfg: Any) -> Path:
    s = cfg.data.source
    if s.root is None:
        return synthetic_root(cfg, "source") / "seal"
    root = Path(s.root).expanduser()
    if not root.is_dir():
        raise UserError(f"{root}: data.source.root is not a folder")
    return root


def expand_dense_boxes(clips: Any, fps_of: dict[str, float], window: float) -> AvaTable:
    """One training sample per annotated frame in the central `1 s` of each clip (box density, Table 3).

    SEAL Clips keep a box for the person at 1 fps, 4 fps or every frame inside each 2-second clip. A denser
    annotation gives more (time, box) samples with exact boxes: each annotated frame within half a second of
    the clip's keyframe becomes a sample centred on that frame, with that frame's box and the clip's labels.
    The central second tiles the video once with stride 1 s, so no frame is counted by two clips.
    """
    from seal_transfer.data.formats.seal import clip_box_key

    table = clips.table
    parts: list[AvaTable] = []
    for i in range(len(table)):
        vid = str(table.video_ids[i])
        center = float(table.timestamps[i])
        frame_boxes = clips.frame_boxes.get(clip_box_key(vid, center, int(table.person_ids[i])))
        if frame_boxes is None or len(frame_boxes) == 0:
            parts.append(table.select(np.array([i])))
            continue
        times = frame_boxes[:, 0] / fps_of[vid]
        near = np.abs(times - center) <= 0.5 * min(window, 1.0) - 1e-9
        near |= np.isclose(times, center)
        chosen = frame_boxes[near]
        n = len(chosen)
        parts.append(
            AvaTable.from_columns(
                [vid] * n,
                chosen[:, 0] / fps_of[vid],
                chosen[:, 1:5],
                [int(table.action_ids[i])] * n,
                [int(table.person_ids[i])] * n,
                source=table.source,
            )
        )
    return AvaTable.concat(parts) if parts else AvaTable.empty(table.source)


def source_labelmap(cfg: Any) -> LabelMap:
    """The source (SEAL) atomic-action label map: the model's output space in pretrain and adapt."""
    return read_labelmap(config_path(source_root(cfg), cfg.data.source, "labelmap", "data.source", required=True))


def load_source_split(cfg: Any, split: str, dense: bool = True) -> DomainSplit:
    """SEAL Clips of one split: cut from SEAL Tubes with `data.source.clips` (window, stride, rule, density),
    read from a SEAL Clips file (`data.source.{split}_clips`), or both mixed.

    `dense=True` (training) expands each clip to the annotated frames of its central second; validation uses
    the keyframe box only, as AVA-style frame-mAP does. With both sources, a video that has tubes takes its clips
    from the tubes (the configured rule); the Clips file's rows for it are skipped and counted, so the file can
    be the released SEAL Clips, which holds the tube videos too. `counts` says how many rows came from where.
    """
    from seal_transfer.data.clips import generate_clips
    from seal_transfer.data.formats.seal import SealClips, read_seal_tubes

    s = cfg.data.source
    root = source_root(cfg)
    labelmap = source_labelmap(cfg)
    clip_cfg = cfg.data.source.clips  # checked when the config was loaded
    tubes_name, clips_name = f"{split}_tubes", f"{split}_clips"
    tubes_json = config_path(root, s, tubes_name, "data.source", required=True) if getattr(s, tubes_name) else None
    clips_csv = config_path(root, s, clips_name, "data.source", required=True) if getattr(s, clips_name) else None
    if tubes_json is None and clips_csv is None:
        raise UserError(f"config keys 'data.source.{split}_tubes' and 'data.source.{split}_clips' are both null: the "
                        f"{split} split needs SEAL Tubes, a SEAL Clips file, or both")
    clips = SealClips(AvaTable.empty(), {})  # cut from the tubes
    tubes, from_file = None, None
    fps_of: dict[str, float] = {}
    duration_of: dict[str, float] = {}
    counts: dict[str, int] = {}
    if tubes_json is not None:
        boxes_npz = tubes_json.with_name(tubes_json.stem + "_boxes.npz")
        if not boxes_npz.exists():
            raise UserError(f"{boxes_npz}: file not found (the per-frame boxes beside {tubes_json.name})")
        tubes = read_seal_tubes(tubes_json, boxes_npz, labelmap)
        clips = generate_clips(tubes, clip_cfg, labelmap)
        fps_of = {vid: float(v.fps) for vid, v in tubes.videos.items()}
        duration_of = {vid: float(v.duration) for vid, v in tubes.videos.items()}
        counts.update(tube_videos=len(tubes.videos), rows_from_tubes=len(clips.table))
    tube_videos = set(fps_of)
    if clips_csv is not None:
        from_file, videos, file_counts = _read_clips_file(clips_csv, labelmap, clip_cfg, tube_videos,
                                                          root / s.video_dir, check_duplicates=split == "train")
        for vid, (fps, duration) in videos.items():
            fps_of[vid], duration_of[vid] = fps, duration
        counts.update(file_counts)
        print(f"[source {split}] {clips_csv.name}: {counts['rows_from_clips_file']} rows of "
              f"{counts['clips_file_videos']} videos read"
              + (f", {counts['clips_file_rows_skipped']} rows of videos that have tubes skipped "
                 f"(their clips come from {tubes_json.name})" if counts["clips_file_rows_skipped"] else "")
              + (f"; {counts['clips_sparser_than_density']} clips have boxes at fewer frames than box_density="
                 f"{clip_cfg.box_density} asks (gaps, or a file thinner than that; used as they are)"
                 if counts["clips_sparser_than_density"] else ""))
    table = expand_dense_boxes(clips, fps_of, clip_cfg.window) if dense else clips.table
    if dense and clip_cfg.assign_rule == "keyframe" and tubes is not None:
        from seal_transfer.data.clips import label_at_own_instant

        table = label_at_own_instant(table, tubes)  # each dense sample labelled at its own frame
    if from_file is not None:
        # A Clips file has no atomic segments, so its dense samples keep their clip's labels whatever the rule.
        file_table = expand_dense_boxes(from_file, fps_of, clip_cfg.window) if dense else from_file.table
        table = AvaTable.concat([table, file_table]) if tubes is not None else file_table
    video_ids = set(table.video_ids.tolist())
    paths = _video_paths(root / s.video_dir, video_ids)
    timings = {
        vid: VideoTiming(
            fps=fps_of[vid],
            time_offset=0.0,
            first_keyframe=clip_cfg.window / 2,
            last_keyframe=duration_of[vid] - clip_cfg.window / 2,
            keyframe_step=clip_cfg.stride,
        )
        for vid in video_ids
    }
    return DomainSplit(
        table, labelmap, timings, paths, labelmap, set(),
        promised_frames={vid: int(tubes.videos[vid].nframes) for vid in video_ids if vid in tube_videos},
        promised_by=f"nframes in {tubes_json.name}" if tubes_json is not None else "the annotation",
        counts=counts,
    )


_UNPROBED_FPS = 30.0  # stands in for a video that cannot be opened; the dataset's video check drops and counts it


def _read_clips_file(
    csv_path: Path, labelmap: LabelMap, clip_cfg: Any, tube_videos: set[str], video_dir: Path, check_duplicates: bool
) -> tuple[Any, dict[str, tuple[float, float]], dict[str, int]]:
    """A SEAL Clips CSV + its `_boxes.npz`, read as given: rows of `tube_videos` skipped, per-frame boxes thinned to
    the configured density, the keyframe box always kept. Returns the clips, (fps, duration) per video (from the
    video file: there is no Tubes JSON to say) and the counts."""
    from seal_transfer.data.clips import density_frames, thin_clip_boxes
    from seal_transfer.data.formats.seal import SealClips, clip_box_key, read_seal_clips
    from seal_transfer.data.video import VideoError, probe_video

    npz_path = csv_path.with_name(csv_path.stem + "_boxes.npz")
    if not npz_path.exists():
        raise UserError(f"{npz_path}: file not found (the per-frame boxes beside {csv_path.name})")
    clips = read_seal_clips(csv_path, npz_path)
    check_action_ids(clips.table, labelmap)
    if check_duplicates:
        _check_duplicate_rows(clips.table)
    skip = np.isin(clips.table.video_ids, sorted(tube_videos)) if tube_videos else np.zeros(len(clips.table), bool)
    table = clips.table.select(~skip)
    table.source = str(csv_path)
    videos: dict[str, tuple[float, float]] = {}
    for vid in sorted(set(table.video_ids.tolist())):
        try:
            info = probe_video(_video_paths(video_dir, {vid})[vid])
            videos[vid] = (info.fps, info.duration_s)
        except VideoError:
            videos[vid] = (_UNPROBED_FPS, float(table.timestamps[table.video_ids == vid].max()) + clip_cfg.window / 2)
    frame_boxes: dict[str, np.ndarray] = {}
    sparse = 0
    for vid, center, person, box in zip(table.video_ids.tolist(), table.timestamps.tolist(),
                                        table.person_ids.tolist(), table.boxes):
        key = clip_box_key(vid, center, person)
        if key in frame_boxes:
            continue  # one clip, several action rows
        fps = videos[vid][0]
        rows = np.asarray(clips.frame_boxes[key], np.float32)
        if (rows[:, 0] != np.round(rows[:, 0])).any() or (rows[:, 0] < 0).any():
            raise UserError(f"{npz_path.name}: '{key}' has a frame column that is not a non-negative integer")
        kept = thin_clip_boxes(rows, center, fps, clip_cfg)
        keyframe = float(np.rint(center * fps))
        if not (kept[:, 0] == keyframe).any():  # the CSV row is the keyframe box; a generated clip always has it
            kept = np.concatenate([kept, np.asarray([[keyframe, *box]], np.float32)])
            kept = kept[np.argsort(kept[:, 0], kind="stable")]
        first, last, grid = density_frames(center, fps, clip_cfg)
        sparse += int(len(kept) < (len(grid) if grid is not None else last - first + 1))
        frame_boxes[key] = kept
    counts = {
        "clips_file_videos": len(videos),
        "rows_from_clips_file": len(table),
        "clips_file_rows_skipped": int(skip.sum()),
        "clips_sparser_than_density": sparse,
    }
    return SealClips(table, frame_boxes), videos, counts


def class_frequencies(table: AvaTable) -> dict[int, int]:
    """Training rows per class id (Table 3 buckets rank classes by this)."""
    ids, counts = np.unique(table.action_ids[table.action_ids >= 0], return_counts=True)
    return {int(i): int(c) for i, c in zip(ids, counts)}
