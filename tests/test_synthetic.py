"""The synthetic world: determinism, real-format files, hidden truth kept apart, boxes on actors, AVA timing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seal_transfer.data.clips import generate_clips
from seal_transfer.data.config import ClipConfig
from seal_transfer.data.formats.ava import (
    check_action_ids,
    read_ava_csv,
    read_exclusions,
    read_labelmap,
    read_video_meta,
)
from seal_transfer.data.formats.seal import read_seal_clips, read_seal_tubes
from seal_transfer.data.synthetic.config import SynthConfig
from seal_transfer.data.synthetic.motion import CODE, NONE, ActorPlan, plan_video, simulate
from seal_transfer.data.synthetic.render import OBJECT_ID, PlainBackground, random_appearance, render_video
from seal_transfer.data.synthetic.vocab import activities_for
from seal_transfer.data.synthetic.world import (
    WORLD_VERSION,
    describe_world,
    ensure_world,
    generate_world,
    load_manifest,
)
from seal_transfer.errors import UserError

MICRO = dict(preset="tiny", seed=3, source_train=2, source_val=1, source_duration=6.0, target_train=1, target_val=2,
             target_unlabeled=1, target_duration=6.0, generic_train=2, generic_val=1, workers=1)

SOURCE_ONLY = {**MICRO, "source_train": 2, "source_val": 0, "target_train": 0, "target_val": 0, "target_unlabeled": 0,
               "generic_train": 0, "generic_val": 0}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return generate_world(SynthConfig(**MICRO), tmp_path_factory.mktemp("w") / "world", progress=False)


def _annotation_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix != ".mp4" and p.name != "generation.json"}


def test_deterministic_annotations(world, tmp_path):
    again = generate_world(SynthConfig(**{**MICRO, "workers": 2}), tmp_path / "again", progress=False)
    first, second = _annotation_files(world), _annotation_files(again)
    assert sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []
    other_seed = generate_world(SynthConfig(**{**SOURCE_ONLY, "seed": 4}), tmp_path / "other", progress=False)
    assert (other_seed / "seal/seal_tubes_train.json").read_bytes() != first["seal/seal_tubes_train.json"]


def test_readers_accept_everything(world):
    m = load_manifest(world)
    seal = world / "seal"
    lm = read_labelmap(seal / "seal_atomic_actions.pbtxt")
    assert lm.ids == [c["id"] for c in m["classes"]["source_atomic"]]
    assert set(lm.types.values()) == {"POSE", "PERSON_OBJECT", "PERSON_PERSON"}
    for split in ("train", "val"):
        tubes = read_seal_tubes(seal / f"seal_tubes_{split}.json", seal / f"seal_tubes_{split}_boxes.npz", lm)
        assert tubes.activity_classes == json.loads((seal / "activity_classes.json").read_text())
        clips = read_seal_clips(seal / f"seal_clips_{split}.csv", seal / f"seal_clips_{split}_boxes.npz")
        regenerated = generate_clips(tubes, ClipConfig(), lm)
        np.testing.assert_array_equal(clips.table.action_ids, regenerated.table.action_ids)
        check_action_ids(clips.table, lm)
    ann = world / "ava" / "annotations"
    tlm = read_labelmap(ann / "ava_action_list_v2.2.pbtxt")
    eval_lm = read_labelmap(ann / "ava_action_list_v2.2_for_activitynet_2019.pbtxt")
    assert set(eval_lm.ids) < set(tlm.ids) and eval_lm.ids == m["classes"]["target_eval_ids"]
    for split in ("train", "val"):
        gt = read_ava_csv(ann / f"ava_{split}_v2.2.csv", "gt")
        assert len(gt) > 0
        check_action_ids(gt, tlm)
        hidden = read_ava_csv(world / "hidden_truth" / f"ava_{split}_source_labels.csv", "gt")
        check_action_ids(hidden, lm)
    for split in ("train", "val", "unlabeled"):
        boxes = read_ava_csv(ann / f"ava_{split}_predicted_boxes.csv", "boxes")
        assert len(boxes) > 0 and (boxes.action_ids == -1).all() and (boxes.scores < 1).all()
        assert set(boxes.video_ids.tolist()) <= set(m["paths"]["ava_videos_by_split"][split])
    assert len(read_exclusions(ann / "ava_val_excluded_timestamps_v2.2.csv")) >= 0
    generic = (world / "generic" / "generic_train.csv").read_text().splitlines()
    names = (world / "generic" / "generic_classes.txt").read_text().split("\n")[:-1]
    for line in generic:
        path, label = line.split(",")
        assert (world / "generic" / path).exists() and 0 <= int(label) < len(names)
    assert "source (SEAL)" in describe_world(world)


def test_hidden_truth_is_kept_apart(world):
    for sub in ("seal", "ava", "generic"):
        names = [p.name for p in (world / sub).rglob("*")]
        assert not [n for n in names if "source_labels" in n or "label_mapping" in n]
    manifest_text = (world / "manifest.json").read_text()
    assert "hidden_truth/" not in manifest_text.replace('"hidden_truth": "hidden_truth"', "")
    gt = read_ava_csv(world / "ava/annotations/ava_train_v2.2.csv", "gt")
    hidden = read_ava_csv(world / "hidden_truth/ava_train_source_labels.csv", "gt")
    # every hidden row sits on a GT box (same video, second, person, box)
    gt_keys = {(v, t, p) for v, t, p in zip(gt.video_ids.tolist(), gt.timestamps.tolist(), gt.person_ids.tolist())}
    hid_keys = {(v, t, p) for v, t, p in zip(hidden.video_ids.tolist(), hidden.timestamps.tolist(),
                                             hidden.person_ids.tolist())}
    assert hid_keys <= gt_keys


def test_target_timing_and_exclusions(world):
    ann = world / "ava" / "annotations"
    meta = read_video_meta(ann / "video_meta.csv")
    manifest = load_manifest(world)
    all_ids = sum(manifest["paths"]["ava_videos_by_split"].values(), [])
    assert sorted(meta) == sorted(all_ids)
    for timing in meta.values():
        assert (timing.fps, timing.time_offset, timing.first_keyframe, timing.last_keyframe) == (15.0, 900, 902, 904)
    excluded = read_exclusions(ann / "ava_val_excluded_timestamps_v2.2.csv")
    for split in ("train", "val"):
        gt = read_ava_csv(ann / f"ava_{split}_v2.2.csv", "gt")
        assert set(gt.timestamps.tolist()) <= {902.0, 903.0, 904.0}
        assert not {(v, t) for v, t in zip(gt.video_ids.tolist(), gt.timestamps.tolist())} & excluded
    assert set((ann / "ava_train_v2.2.csv").read_text().split(",")[1:2]) <= {"0902", "0903", "0904"}


def test_video_frame_counts_match_metadata(world):
    import av

    def frames(path: Path) -> tuple[int, float, tuple[int, int]]:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            count = sum(1 for _ in container.decode(stream))
            return count, float(stream.average_rate), (stream.height, stream.width)

    tubes = json.loads((world / "seal/seal_tubes_val.json").read_text())["database"]
    for vid, entry in tubes.items():
        assert frames(world / "seal/videos" / f"{vid}.mp4") == (entry["nframes"], entry["fps"],
                                                                 tuple(entry["resolution"]))
    meta = read_video_meta(world / "ava/annotations/video_meta.csv")
    for vid, timing in meta.items():
        count, fps, _ = frames(world / "ava/videos" / f"{vid}.mp4")
        assert (count, fps) == (6 * 15, timing.fps)
    line = (world / "generic/generic_val.csv").read_text().splitlines()[0]
    assert frames(world / "generic" / line.split(",")[0])[0] == 2 * 15


def _scene(seed: int = 0):
    rng = np.random.default_rng(seed)
    acts = activities_for(2)
    plans = plan_video(rng, 120, 20.0, 160, 120, acts, np.ones(len(acts)), 3, (0.55, 0.75), 1.0, 0.0)
    return plans, simulate(plans, 20.0, 160, 120), rng


@pytest.mark.parametrize("seed", [0, 1])
def test_boxes_follow_rendered_actors(seed):
    plans, kin, rng = _scene(seed)
    looks = [random_appearance(rng, "source") for _ in plans]
    frames = np.arange(0, 120, 7)
    _, ids = render_video(kin, looks, PlainBackground(rng, 160, 120), 160, 120, frames=frames, with_ids=True)
    boxes = kin.boxes()
    boxes[..., 0::2] = boxes[..., 0::2].clip(0, 160)  # what the world writes (normalised after clipping)
    boxes[..., 1::2] = boxes[..., 1::2].clip(0, 120)
    others = [OBJECT_ID]
    checked = 0
    for n, t in enumerate(frames.tolist()):
        for i in range(len(plans)):
            ys, xs = np.nonzero(ids[n] == i)
            if xs.size < 30:
                continue  # mostly hidden behind another actor
            x1, y1, x2, y2 = boxes[i, t]
            assert (xs + 0.5 >= x1).all() and (xs + 0.5 <= x2).all()
            assert (ys + 0.5 >= y1).all() and (ys + 0.5 <= y2).all()
            inside = ids[n][int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))]
            if not np.isin(inside, [j for j in range(len(plans)) if j != i] + others).any():
                # nothing in front of it: the box is tight, the painted extent reaches within 2 px of every edge
                assert xs.min() + 0.5 - x1 < 2 and x2 - xs.max() - 0.5 < 2
                assert ys.min() + 0.5 - y1 < 2 and y2 - ys.max() - 0.5 < 2
            checked += 1
    assert checked > 20


def _one_actor(body: str | None, arm: str | None, n: int = 48) -> ActorPlan:
    plan = ActorPlan(first=0, last=n - 1, height=80.0, ground=110.0, x0=80.0, facing0=1,
                     body=np.full(n, NONE), arm=np.full(n, NONE), seated=np.zeros(n, bool), partner=np.full(n, -1))
    if body:
        plan.body[:] = CODE[body]
    if arm:
        plan.arm[:] = CODE[arm]
    return plan


def test_direction_pairs_need_motion():
    """raise/lower arm show the same poses; only their order in time differs (one frame cannot tell them apart)."""
    fps, n = 20.0, 24  # one 1.2 s cycle
    up = simulate([_one_actor(None, "raise arm", n)], fps, 160, 120)
    down = simulate([_one_actor(None, "lower arm", n)], fps, 160, 120)
    angle_up = np.arctan2(up.ux[0, :, 5], up.uy[0, :, 5])
    angle_down = np.arctan2(down.ux[0, :, 5], down.uy[0, :, 5])
    np.testing.assert_allclose(np.sort(angle_up), np.sort(angle_down), atol=0.15)
    assert np.mean(np.diff(np.unwrap(angle_up)) > 0) > 0.6  # mostly rising
    assert np.mean(np.diff(np.unwrap(angle_down)) < 0) > 0.6  # mostly falling
    walk = simulate([_one_actor("walk", None)], fps, 160, 120)
    back = simulate([_one_actor("walk backward", None)], fps, 160, 120)
    np.testing.assert_allclose(walk.cy, back.cy)  # same pose sequence ...
    assert walk.cx[0, -1, 3] > 80 > back.cx[0, -1, 3]  # ... moving the other way


def test_ensure_world_caches(tmp_path):
    cfg = SynthConfig(**SOURCE_ONLY)
    cache = tmp_path / "cache"
    path = ensure_world(cfg, cache, progress=False)
    assert path.parent == cache and path.name.startswith(f"tiny-seed3-v{WORLD_VERSION}-")
    stamp = (path / "manifest.json").stat().st_mtime_ns
    assert ensure_world(cfg, cache, progress=False) == path
    assert (path / "manifest.json").stat().st_mtime_ns == stamp
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no partial world left behind
    with pytest.raises(UserError, match="already exists"):
        generate_world(cfg, path, progress=False)
    with pytest.raises(UserError, match="synth.preset"):
        generate_world(SynthConfig(preset="huge"), tmp_path / "x", progress=False)
    with pytest.raises(UserError, match="not a synthetic world"):
        load_manifest(tmp_path)


def test_source_zipf_changes_only_the_source_activity_mix(tmp_path):
    """v2's knob: a flatter source long tail draws other source plans, and leaves the target's exactly as they were."""
    a = generate_world(SynthConfig(**MICRO), tmp_path / "a", progress=False)
    b = generate_world(SynthConfig(**{**MICRO, "source_zipf": 0.0}), tmp_path / "b", progress=False)
    for name in ("ava/annotations/ava_train_v2.2.csv", "ava/annotations/ava_val_v2.2.csv",
                 "hidden_truth/ava_train_source_labels.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "seal/seal_tubes_train.json").read_bytes() != (b / "seal/seal_tubes_train.json").read_bytes()
    steep = SynthConfig(**MICRO)
    flat = SynthConfig(**{**MICRO, "source_zipf": 0.0})
    assert steep.sizes()["source_zipf"] == 1.1 and flat.sizes()["source_zipf"] == 0.0
    from seal_transfer.data.synthetic.world import _zipf

    assert np.allclose(_zipf(4, False, 0.0), 1.0)  # exponent 0: every activity equally likely
    assert _zipf(4, False, 1.1)[0] / _zipf(4, False, 1.1)[3] == pytest.approx(4 ** 1.1)
    assert SynthConfig(preset="small").sizes()["source_zipf"] == 0.6
