"""Generate the synthetic action world: real h264 videos + every annotation in the real SEAL / AVA formats.

Layout and rules: docs/synthetic_world.md. Every video is planned from its own seed, `(seed, domain, split,
index)`, so a world is deterministic per (preset, seed) whatever the number of worker processes; pixel noise
comes from a separate stream so annotations never depend on rendering.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from seal_transfer.data.clips import generate_clips
from seal_transfer.data.config import ClipConfig
from seal_transfer.data.formats.ava import (
    AvaTable,
    LabelMap,
    VideoTiming,
    write_ava_csv,
    write_exclusions,
    write_labelmap,
    write_video_meta,
)
from seal_transfer.data.formats.seal import SealTubes, SealVideo, Segment, Tube, write_seal_clips, write_seal_tubes
from seal_transfer.data.synthetic.config import SynthConfig
from seal_transfer.data.synthetic.motion import CODE, NONE, ActorPlan, plan_video, simulate
from seal_transfer.data.synthetic.render import ClutterBackground, PlainBackground, random_appearance, render_video
from seal_transfer.data.synthetic.vocab import ATOMIC, TIERS, activities_for, atomic_for, generic_for, target_for
from seal_transfer.errors import UserError
from seal_transfer.utils.fileio import atomic_path, atomic_write, write_json

# v2 (2026-12): the `small` preset's source domain has twice the videos (72/24) and a milder long tail of activity
# frequencies (Zipf exponent 0.6 instead of 1.1). Why (docs/synthetic_world.md, "Versions"): in v1, six of the 21
# source classes had 2-9 training clips and 0-2 validation boxes, so their AP was a coin flip and source-val
# frame-mAP could not measure a source model's strength. Target, generic, tiny and paper content is unchanged.
WORLD_VERSION = 2
TIME_OFFSET = 900.0  # AVA "cut" files: file frame 0 is movie second 900
FIRST_KEYFRAME = 902.0


@dataclass(frozen=True)
class DomainLook:
    fps: float
    width: int
    height: int
    actors: tuple[int, int]
    heights: tuple[float, float]  # actor height as a fraction of the frame height
    p_joint: float
    p_partial: float


SOURCE_LOOK = DomainLook(fps=20.0, width=160, height=120, actors=(1, 3), heights=(0.55, 0.75), p_joint=0.35,
                         p_partial=0.25)
TARGET_LOOK = DomainLook(fps=15.0, width=144, height=108, actors=(2, 4), heights=(0.4, 0.62), p_joint=0.5,
                         p_partial=0.2)
GENERIC_LOOK = DomainLook(fps=15.0, width=128, height=96, actors=(1, 3), heights=(0.45, 0.7), p_joint=0.0,
                          p_partial=0.0)

# ------------------------------------------------------------------------------------------------ jobs


@dataclass
class _Job:
    domain: str  # source | target | generic
    split: str
    index: int
    video_id: str
    seed: int
    tier: int
    duration: float
    out_dir: str
    excluded: bool = False
    label: int = -1  # generic class index
    source_zipf: float = 1.1


@dataclass
class _Result:
    job: _Job
    n_frames: int
    tubes: dict[str, Tube] = field(default_factory=dict)
    rows: dict[str, list[tuple]] = field(default_factory=dict)  # name -> (ts, box, id, person[, score])
    excluded: list[float] = field(default_factory=list)


_DOMAIN_CODE = {"source": 1, "target": 2, "generic": 3}
_SPLIT_CODE = {"train": 1, "val": 2, "unlabeled": 3}


def _streams(job: _Job) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    seq = np.random.SeedSequence([job.seed, _DOMAIN_CODE[job.domain], _SPLIT_CODE[job.split], job.index])
    plan, pixels, detector = seq.spawn(3)
    return np.random.default_rng(plan), np.random.default_rng(pixels), np.random.default_rng(detector)


def _zipf(n: int, permute: bool, exponent: float = 1.1) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    if permute:  # the target domain has its own activity frequencies (a label shift), fixed across seeds
        weights = weights[np.random.default_rng(20240501).permutation(n)]
    return weights


def _camera_shake(rng: np.random.Generator, n: int, fps: float) -> np.ndarray:
    t = np.arange(n) / fps
    out = np.zeros((n, 2))
    for axis, amp in ((0, 2.5), (1, 1.5)):
        for _ in range(2):
            out[:, axis] += amp / 2 * np.sin(2 * np.pi * rng.uniform(0.3, 2.5) * t + rng.uniform(0, 2 * np.pi))
        out[:, axis] += rng.normal(0, 0.4, n)
    return np.round(out, 3)


def _norm_boxes(boxes_px: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip to the frame, normalise, round (annotations stay byte-stable); also which boxes are real (>= 2 px)."""
    x1 = np.clip(boxes_px[..., 0], 0, width)
    x2 = np.clip(boxes_px[..., 2], 0, width)
    y1 = np.clip(boxes_px[..., 1], 0, height)
    y2 = np.clip(boxes_px[..., 3], 0, height)
    valid = (x2 - x1 >= 2) & (y2 - y1 >= 2)
    norm = np.stack([x1 / width, y1 / height, x2 / width, y2 / height], axis=-1)
    return np.round(norm, 4), valid


def _write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    """h264 at x264's 'veryfast' preset: encoding would otherwise cost more than rendering (data/video.py's
    `write_video` has no preset option), and quality at crf 20 is ample for 160x120 cartoons."""
    import av

    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            stream.options = {"crf": "20", "preset": "veryfast"}
            for array in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)


def _source_job(job: _Job) -> _Result:
    look = SOURCE_LOOK
    rng, pix, _ = _streams(job)
    n = int(round(job.duration * look.fps))
    acts = activities_for(job.tier)
    plans = plan_video(rng, n, look.fps, look.width, look.height, acts, _zipf(len(acts), False, job.source_zipf),
                       int(rng.integers(look.actors[0], look.actors[1] + 1)), look.heights, look.p_joint,
                       look.p_partial)
    kin = simulate(plans, look.fps, look.width, look.height)
    boxes, valid = _norm_boxes(kin.boxes(), look.width, look.height)
    ids = _atomic_ids(job.tier)
    result = _Result(job, n)
    for i, plan in enumerate(plans):
        frames = np.flatnonzero(kin.present[i] & valid[i])
        if frames.size == 0:
            continue
        tube = Tube(str(i), (int(plan.first), int(plan.last)))
        tube.boxes = np.column_stack([frames, boxes[i, frames]]).astype(np.float32)
        tube.atomic_actions = [Segment(s / look.fps, e / look.fps, ids[ATOMIC[c].name]) for s, e, c in plan.segments()]
        tube.activities = [Segment(s / look.fps, e / look.fps, name) for s, e, name in plan.activities]
        result.tubes[str(i)] = tube
    looks = [random_appearance(pix, "source") for _ in plans]
    frames_rgb = render_video(kin, looks, PlainBackground(pix, look.width, look.height), look.width, look.height,
                              noise_rng=pix, noise_sigma=0.01)
    _write_mp4(Path(job.out_dir) / f"{job.video_id}.mp4", frames_rgb, look.fps)
    return result


def _active(plan: ActorPlan, f: int) -> set[str]:
    return {ATOMIC[c].name for c in (plan.body[f], plan.arm[f]) if c != NONE}


def _target_job(job: _Job) -> _Result:
    look = TARGET_LOOK
    rng, pix, det = _streams(job)
    n = int(round(job.duration * look.fps))
    acts = activities_for(job.tier)
    plans = plan_video(rng, n, look.fps, look.width, look.height, acts, _zipf(len(acts), True),
                       int(rng.integers(look.actors[0], look.actors[1] + 1)), look.heights, look.p_joint,
                       look.p_partial)
    shake = _camera_shake(rng, n, look.fps)
    kin = simulate(plans, look.fps, look.width, look.height).shifted(shake[:, 0], shake[:, 1])
    boxes, valid = _norm_boxes(kin.boxes(), look.width, look.height)
    timing = target_timing(job.duration)
    keyframes = timing.keyframes()
    excluded: list[float] = []
    if job.excluded and keyframes.size > 2 and rng.random() < 0.6:
        excluded = [float(keyframes[int(rng.integers(1, keyframes.size - 1))])]
    source_ids = _atomic_ids(job.tier)
    targets = target_for(job.tier)
    result = _Result(job, n, rows={"gt": [], "hidden": [], "det": []}, excluded=excluded)
    for ts in keyframes.tolist():
        f = int(timing.frame_index(ts))
        for i, plan in enumerate(plans):
            if not (kin.present[i, f] and valid[i, f]):
                continue
            box = tuple(boxes[i, f].tolist())
            if ts not in excluded:
                active = _active(plan, f)
                seated = bool(plan.seated[f])
                body_idle = plan.body[f] == NONE
                for tid, cls in enumerate(targets, start=1):
                    if cls.special == "stand":
                        hit = body_idle and not seated
                    elif cls.special == "sit":
                        hit = body_idle and seated
                    else:
                        hit = any(set(conj) <= active for conj in cls.rule)
                    if hit:
                        result.rows["gt"].append((ts, box, tid, i))
                for name in sorted(active, key=lambda nm: source_ids[nm]):
                    result.rows["hidden"].append((ts, box, source_ids[name], i))
            if det.random() >= 0.06:  # the detector misses ~6% of people
                b = np.asarray(box)
                wh = np.array([b[2] - b[0], b[3] - b[1]] * 2)
                noise = det.normal(0, 0.05, 4) * wh
                jittered = np.clip(b + noise, 0, 1)
                jittered[2:] = np.maximum(jittered[2:], jittered[:2] + 0.01)
                score = float(np.clip(det.normal(0.93, 0.04) - 2 * np.abs(noise).mean(), 0.5, 0.999))
                result.rows["det"].append((ts, tuple(np.round(np.clip(jittered, 0, 1), 4).tolist()), -1, -1,
                                           round(score, 4)))
        for _ in range(int(det.poisson(0.35))):  # false positives: person-sized boxes on clutter
            w, h = det.uniform(0.08, 0.25), det.uniform(0.3, 0.7)
            x, y = det.uniform(0, 1 - w), det.uniform(0, 1 - h)
            result.rows["det"].append((ts, (round(x, 4), round(y, 4), round(x + w, 4), round(y + h, 4)), -1, -1,
                                       round(float(det.uniform(0.2, 0.8)), 4)))
    looks = [random_appearance(pix, "target") for _ in plans]
    dim = [int(timing.frame_index(ts)) + d for ts in excluded for d in (-1, 0, 1)]
    frames_rgb = render_video(kin, looks, ClutterBackground(pix, look.width, look.height, n, look.fps),
                              look.width, look.height, shake=shake, noise_rng=pix, noise_sigma=0.03, dim_frames=dim)
    _write_mp4(Path(job.out_dir) / f"{job.video_id}.mp4", frames_rgb, look.fps)
    return result


def _generic_job(job: _Job) -> _Result:
    look = GENERIC_LOOK
    rng, pix, _ = _streams(job)
    n = int(round(job.duration * look.fps))
    _, motion_name = generic_for(job.tier)[job.label]
    plans: list[ActorPlan] = []
    for _ in range(int(rng.integers(look.actors[0], look.actors[1] + 1))):
        plan = ActorPlan(first=0, last=n - 1, height=rng.uniform(*look.heights) * look.height,
                         ground=rng.uniform(0.86, 0.97) * look.height, x0=rng.uniform(0.2, 0.8) * look.width,
                         facing0=int(rng.choice([-1, 1])), body=np.full(n, NONE), arm=np.full(n, NONE),
                         seated=np.zeros(n, bool), partner=np.full(n, -1))
        if motion_name is not None:
            channel = next(a.channel for a in ATOMIC if a.name == motion_name)
            start = int(rng.integers(0, max(1, n // 4)))  # actors are out of step with each other
            getattr(plan, channel)[start:] = CODE[motion_name]
        plans.append(plan)
    kin = simulate(plans, look.fps, look.width, look.height)
    style = "source" if rng.random() < 0.5 else "target"
    looks = [random_appearance(pix, style) for _ in plans]
    if motion_name is None:  # the camera pans: the whole background slides fast, actors stand still
        pan = float(rng.choice([-1, 1]) * rng.uniform(25, 45))
        background: PlainBackground | ClutterBackground = ClutterBackground(pix, look.width, look.height, n, look.fps,
                                                                            scroll=pan)
    elif style == "target":
        background = ClutterBackground(pix, look.width, look.height, n, look.fps)
    else:
        background = PlainBackground(pix, look.width, look.height)
    frames_rgb = render_video(kin, looks, background, look.width, look.height, noise_rng=pix, noise_sigma=0.02)
    _write_mp4(Path(job.out_dir) / f"{job.video_id}.mp4", frames_rgb, look.fps)
    return _Result(job, n)


_JOBS = {"source": _source_job, "target": _target_job, "generic": _generic_job}


def _run_job(job: _Job) -> _Result:
    return _JOBS[job.domain](job)


# --------------------------------------------------------------------------------------------- helpers


def _atomic_ids(tier: int) -> dict[str, int]:
    return {a.name: i for i, a in enumerate(atomic_for(tier), start=1)}


def source_labelmap(tier: int) -> LabelMap:
    classes = atomic_for(tier)
    return LabelMap(list(range(1, len(classes) + 1)), {i: a.name for i, a in enumerate(classes, start=1)},
                    {i: a.label_type for i, a in enumerate(classes, start=1)})


def target_labelmap(tier: int) -> LabelMap:
    classes = target_for(tier)
    return LabelMap(list(range(1, len(classes) + 1)), {i: c.name for i, c in enumerate(classes, start=1)},
                    {i: "PERSON_MOVEMENT" if c.special else _target_type(c.rule) for i, c in enumerate(classes, 1)})


def _target_type(rule: tuple[tuple[str, ...], ...]) -> str:
    kinds = {next(a.label_type for a in ATOMIC if a.name == n) for conj in rule for n in conj}
    if "PERSON_PERSON" in kinds:
        return "PERSON_INTERACTION"
    return "OBJECT_MANIPULATION" if "PERSON_OBJECT" in kinds else "PERSON_MOVEMENT"


def target_timing(duration: float) -> VideoTiming:
    """AVA timing for a cut target video of `duration` seconds: keyframes 902 .. 900 + duration - 2 at 1 Hz."""
    return VideoTiming(fps=TARGET_LOOK.fps, time_offset=TIME_OFFSET, first_keyframe=FIRST_KEYFRAME,
                       last_keyframe=TIME_OFFSET + float(np.floor(duration)) - 2, keyframe_step=1.0)


def _video_ids(seed: int, stream: int, count: int, prefix: str, length: int) -> list[str]:
    """Distinct YouTube-like ids ([A-Za-z0-9_-]; target ids may start with '-' like real AVA ids)."""
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
    rng = np.random.default_rng([seed, 77, stream])
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        vid = prefix + "".join(alphabet[rng.integers(0, alphabet.size, length)])
        if vid not in seen:
            seen.add(vid)
            out.append(vid)
    return out


def _table(vids: list[str], rows: list[tuple]) -> AvaTable:
    if not rows:
        return AvaTable.empty()
    return AvaTable.from_columns(
        vids, [r[0] for r in rows], [r[1] for r in rows], action_ids=[r[2] for r in rows],
        person_ids=[r[3] for r in rows], scores=[r[4] if len(r) > 4 else 1.0 for r in rows])


def _gather(results: list[_Result], key: str) -> AvaTable:
    vids: list[str] = []
    rows: list[tuple] = []
    for res in results:
        part = res.rows.get(key, [])
        vids.extend([res.job.video_id] * len(part))
        rows.extend(part)
    table = _table(vids, rows)
    if len(table):  # AVA files are sorted by video, then time
        order = np.lexsort((table.action_ids, table.person_ids, table.timestamps, table.video_ids))
        table = table.select(order)
    return table


def _eval_subset(gt: AvaTable, labelmap: LabelMap) -> list[int]:
    """Leave out the rarest quarter of target classes (AVA evaluates 60 of 80), by train+val GT count."""
    counts = {cid: int((gt.action_ids == cid).sum()) for cid in labelmap.ids}
    drop = len(labelmap.ids) // 4
    rarest = sorted(labelmap.ids, key=lambda cid: (counts[cid], -cid))[:drop]
    return [cid for cid in labelmap.ids if cid not in rarest]


# ------------------------------------------------------------------------------------------- public API


def world_name(cfg: SynthConfig) -> str:
    """`{preset}-seed{seed}-v{WORLD_VERSION}`, plus a hash of any size overrides."""
    name = f"{cfg.preset}-seed{cfg.seed}-v{WORLD_VERSION}"
    overrides = cfg.overrides()
    if overrides:
        name += "-" + hashlib.sha1(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8]
    return name


def ensure_world(cfg: SynthConfig, cache_dir: str | Path, progress: bool = True) -> Path:
    """The world for `cfg` under `cache_dir`, generated on first use."""
    path = Path(cache_dir) / world_name(cfg)
    if (path / "manifest.json").exists():
        return path
    return generate_world(cfg, path, progress=progress)


def load_manifest(path: str | Path) -> dict[str, Any]:
    manifest = Path(path) / "manifest.json"
    if not manifest.exists():
        raise UserError(f"{manifest}: not found; {path} is not a synthetic world (generate one with "
                        "`python -m seal_transfer.synth`)")
    try:
        return json.loads(manifest.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{manifest}: not valid JSON ({exc})") from None


def describe_world(path: str | Path) -> str:
    """A few lines for humans: what is in the world and where."""
    m = load_manifest(path)
    s = m["stats"]
    lines = [
        f"synthetic world {Path(path)}  (preset {m['preset']}, seed {m['seed']}, version {m['version']})",
        f"  source (SEAL):  {s['source']['videos']} videos @ {m['fps']['source']:g} fps, {s['source']['tubes']} tubes, "
        f"{s['source']['atomic_segments']} atomic / {s['source']['activity_segments']} activity segments, "
        f"{s['source']['clip_rows']} clip rows ({s['source']['clips']} labelled clips, {s['source']['clip_boxes']} "
        f"boxes); {len(m['classes']['source_atomic'])} atomic, {len(m['classes']['activities'])} activity classes",
        f"  target (AVA):   {s['target']['videos']} videos @ {m['fps']['target']:g} fps "
        f"({s['target']['unlabeled_videos']} unlabeled), {s['target']['keyframes']} labelled keyframes, "
        f"{s['target']['gt_rows']} GT rows, {s['target']['detector_boxes']} detector boxes, "
        f"{len(m['classes']['target'])} classes ({len(m['classes']['target_eval_ids'])} evaluated), "
        f"{s['target']['excluded']} excluded keyframes",
        f"  generic:        {s['generic']['videos']} clips @ {m['fps']['generic']:g} fps, "
        f"{len(m['classes']['generic'])} classes",
    ]
    return "\n".join(lines)


def _iterate(jobs: list[_Job], workers: int, progress: bool) -> Iterator[_Result]:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="synth videos", unit="video")
    try:
        if workers <= 1:
            for job in jobs:
                yield _run_job(job)
                if bar:
                    bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for res in pool.map(_run_job, jobs, chunksize=1):
                    yield res
                    if bar:
                        bar.update()
    finally:
        if bar:
            bar.close()


def generate_world(cfg: SynthConfig, out: str | Path, progress: bool = True) -> Path:
    """Write the whole world to `out` (built in a temporary sibling, renamed at the end: never half a world)."""
    started = time.time()
    out = Path(out)
    sizes = cfg.sizes()
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: already exists and is not empty; remove it or choose another directory")
    tier = TIERS[cfg.preset]
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "seal" / "videos").mkdir(parents=True)
    (tmp / "ava" / "videos").mkdir(parents=True)
    (tmp / "ava" / "annotations").mkdir(parents=True)
    (tmp / "hidden_truth").mkdir(parents=True)
    (tmp / "generic" / "videos").mkdir(parents=True)
    try:
        _generate_into(cfg, sizes, tier, tmp, progress, started)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _generate_into(cfg: SynthConfig, sizes: dict[str, float], tier: int, root: Path, progress: bool,
                   started: float) -> None:
    seed = cfg.seed
    jobs: list[_Job] = []
    n_src = {s: int(sizes[f"source_{s}"]) for s in ("train", "val")}
    src_ids = _video_ids(seed, 1, sum(n_src.values()), "v_", 11)
    for split, offset in (("train", 0), ("val", n_src["train"])):
        for i in range(n_src[split]):
            jobs.append(_Job("source", split, i, src_ids[offset + i], seed, tier, float(sizes["source_duration"]),
                             str(root / "seal" / "videos"), source_zipf=float(sizes["source_zipf"])))
    n_tgt = {s: int(sizes[f"target_{s}"]) for s in ("train", "val", "unlabeled")}
    tgt_ids = _video_ids(seed, 2, sum(n_tgt.values()), "", 11)
    offset = 0
    for split in ("train", "val", "unlabeled"):
        for i in range(n_tgt[split]):
            jobs.append(_Job("target", split, i, tgt_ids[offset + i], seed, tier, float(sizes["target_duration"]),
                             str(root / "ava" / "videos"), excluded=split == "val"))
        offset += n_tgt[split]
    generic = generic_for(tier)
    for split in ("train", "val"):
        count = int(sizes[f"generic_{split}"])
        labels = np.random.default_rng([seed, 55, _SPLIT_CODE[split]]).permutation(np.arange(count) % len(generic))
        for i in range(count):
            jobs.append(_Job("generic", split, i, f"{split}_{i:05d}", seed, tier, float(sizes["generic_duration"]),
                             str(root / "generic" / "videos"), label=int(labels[i])))
    workers = cfg.workers or min(2, os.cpu_count() or 1)
    results = list(_iterate(jobs, workers, progress))
    by = {(d, s): [r for r in results if r.job.domain == d and r.job.split == s]
          for d in ("source", "target", "generic") for s in ("train", "val", "unlabeled")}

    # ---- source: SEAL Tubes + Clips
    src_lm = source_labelmap(tier)
    activities = [a.name for a in activities_for(tier)]
    write_labelmap(root / "seal" / "seal_atomic_actions.pbtxt", src_lm, layout="label")
    write_json(root / "seal" / "activity_classes.json", activities)
    src_stats = dict(videos=0, tubes=0, atomic_segments=0, activity_segments=0, clip_rows=0, clips=0, clip_boxes=0,
                     unlabeled_clips=0)
    for split in ("train", "val"):
        tubes = SealTubes(src_lm, activities)
        for res in by[("source", split)]:
            look = SOURCE_LOOK
            tubes.videos[res.job.video_id] = SealVideo(res.job.video_id, "training" if split == "train" else
                                                       "validation", res.n_frames / look.fps, look.fps, res.n_frames,
                                                       (look.height, look.width), res.tubes)
        write_seal_tubes(root / "seal" / f"seal_tubes_{split}.json", root / "seal" / f"seal_tubes_{split}_boxes.npz",
                         tubes)
        clips = generate_clips(tubes, ClipConfig(), src_lm)
        write_seal_clips(root / "seal" / f"seal_clips_{split}.csv", root / "seal" / f"seal_clips_{split}_boxes.npz",
                         clips)
        src_stats["videos"] += len(tubes.videos)
        src_stats["tubes"] += tubes.num_tubes()
        src_stats["atomic_segments"] += sum(len(t.atomic_actions) for v in tubes.videos.values()
                                            for t in v.tubes.values())
        src_stats["activity_segments"] += sum(len(t.activities) for v in tubes.videos.values()
                                              for t in v.tubes.values())
        src_stats["clip_rows"] += len(clips.table)
        src_stats["clips"] += len({(v, t, p) for v, t, p in zip(clips.table.video_ids.tolist(),
                                                                clips.table.timestamps.tolist(),
                                                                clips.table.person_ids.tolist())})
        src_stats["clip_boxes"] += sum(int(v.shape[0]) for v in clips.frame_boxes.values())
        src_stats["unlabeled_clips"] += len(clips.unlabeled)

    # ---- target: AVA
    ann = root / "ava" / "annotations"
    tgt_lm = target_labelmap(tier)
    write_labelmap(ann / "ava_action_list_v2.2.pbtxt", tgt_lm, layout="label")
    gts = {split: _gather(by[("target", split)], "gt") for split in ("train", "val")}
    eval_ids = _eval_subset(AvaTable.concat([gts["train"], gts["val"]]), tgt_lm)
    write_labelmap(ann / "ava_action_list_v2.2_for_activitynet_2019.pbtxt", tgt_lm.subset(eval_ids), layout="item")
    for split in ("train", "val"):
        write_ava_csv(ann / f"ava_{split}_v2.2.csv", gts[split], kind="gt")
    excluded = [(r.job.video_id, ts) for r in by[("target", "val")] for ts in r.excluded]
    write_exclusions(ann / "ava_val_excluded_timestamps_v2.2.csv", excluded)
    timings = {}
    for split in ("train", "val", "unlabeled"):
        write_ava_csv(ann / f"ava_{split}_predicted_boxes.csv", _gather(by[("target", split)], "det"), kind="boxes")
        write_ava_csv(root / "hidden_truth" / f"ava_{split}_source_labels.csv",
                      _gather(by[("target", split)], "hidden"),
                      kind="gt")
        for res in by[("target", split)]:
            timings[res.job.video_id] = target_timing(res.job.duration)
    write_video_meta(ann / "video_meta.csv", timings)
    write_json(root / "hidden_truth" / "label_mapping.json", {
        "note": "target class = any listed conjunction of source atomic classes active at the keyframe; "
                "'stand'/'sit' = no body-channel motion while standing / seated",
        "target_from_source": {c.name: [list(conj) for conj in c.rule] or c.special for c in target_for(tier)},
    })
    all_gt = AvaTable.concat([gts["train"], gts["val"]])
    tgt_stats = dict(
        videos=sum(len(by[("target", s)]) for s in ("train", "val", "unlabeled")),
        unlabeled_videos=len(by[("target", "unlabeled")]), keyframes=len(all_gt.keyframe_keys()) if len(all_gt) else 0,
        gt_rows=len(all_gt), excluded=len(excluded),
        detector_boxes=sum(len(r.rows["det"]) for s in ("train", "val", "unlabeled") for r in by[("target", s)]))

    # ---- generic clips
    names = [g[0] for g in generic]
    with atomic_write(root / "generic" / "generic_classes.txt") as handle:
        handle.write("".join(f"{n}\n" for n in names))
    for split in ("train", "val"):
        with atomic_write(root / "generic" / f"generic_{split}.csv") as handle:
            for res in by[("generic", split)]:
                handle.write(f"videos/{res.job.video_id}.mp4,{res.job.label}\n")

    manifest = {
        "preset": cfg.preset, "seed": cfg.seed, "version": WORLD_VERSION, "sizes": sizes,
        "fps": {"source": SOURCE_LOOK.fps, "target": TARGET_LOOK.fps, "generic": GENERIC_LOOK.fps},
        "resolution": {d: [lk.height, lk.width] for d, lk in (("source", SOURCE_LOOK), ("target", TARGET_LOOK),
                                                               ("generic", GENERIC_LOOK))},
        "target_timing": {"time_offset": TIME_OFFSET, "first_keyframe": FIRST_KEYFRAME, "keyframe_step": 1.0},
        "clip_config": asdict(ClipConfig()),
        "classes": {
            "source_atomic": [{"id": cid, "name": src_lm.names[cid], "label_type": src_lm.types[cid]}
                              for cid in src_lm.ids],
            "activities": activities,
            "target": [{"id": cid, "name": tgt_lm.names[cid]} for cid in tgt_lm.ids],
            "target_eval_ids": eval_ids,
            "generic": names,
        },
        "paths": {
            "seal_videos": "seal/videos", "seal_labelmap": "seal/seal_atomic_actions.pbtxt",
            "seal_activities": "seal/activity_classes.json",
            "seal_tubes": {s: f"seal/seal_tubes_{s}.json" for s in ("train", "val")},
            "seal_tube_boxes": {s: f"seal/seal_tubes_{s}_boxes.npz" for s in ("train", "val")},
            "seal_clips": {s: f"seal/seal_clips_{s}.csv" for s in ("train", "val")},
            "seal_clip_boxes": {s: f"seal/seal_clips_{s}_boxes.npz" for s in ("train", "val")},
            "ava_videos": "ava/videos",
            "ava_gt": {s: f"ava/annotations/ava_{s}_v2.2.csv" for s in ("train", "val")},
            "ava_labelmap": "ava/annotations/ava_action_list_v2.2.pbtxt",
            "ava_eval_labelmap": "ava/annotations/ava_action_list_v2.2_for_activitynet_2019.pbtxt",
            "ava_excluded": {"val": "ava/annotations/ava_val_excluded_timestamps_v2.2.csv"},
            "ava_boxes": {s: f"ava/annotations/ava_{s}_predicted_boxes.csv" for s in ("train", "val", "unlabeled")},
            "ava_video_meta": "ava/annotations/video_meta.csv",
            "ava_videos_by_split": {s: [r.job.video_id for r in by[("target", s)]]
                                    for s in ("train", "val", "unlabeled")},
            "generic_videos": "generic/videos",
            "generic_csv": {s: f"generic/generic_{s}.csv" for s in ("train", "val")},
            "generic_classes": "generic/generic_classes.txt",
            "hidden_truth": "hidden_truth",
        },
        "stats": {"source": src_stats, "target": tgt_stats,
                  "generic": {"videos": sum(len(by[("generic", s)]) for s in ("train", "val"))}},
    }
    write_json(root / "manifest.json", manifest)
    # Timing varies run to run, so it lives outside the (byte-deterministic) manifest.
    write_json(root / "generation.json", {"seconds": round(time.time() - started, 1), "workers": workers})
