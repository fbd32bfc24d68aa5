"""Tubes -> clips against hand-computed cases (paper 3.2: window 2 s, stride 1 s)."""

from __future__ import annotations

import numpy as np
import pytest

from seal_transfer.data.clips import generate_clips, person_ids_for
from seal_transfer.data.config import ClipConfig
from seal_transfer.data.formats.ava import LabelMap
from seal_transfer.data.formats.seal import SealTubes, SealVideo, Segment, Tube
from seal_transfer.errors import UserError

LM = LabelMap(list(range(1, 10)), {i: f"a{i}" for i in range(1, 10)})


def _tube(tid: str, segments: list[tuple[float, float, int]], frames: np.ndarray, n: int = 60) -> Tube:
    boxes = np.column_stack([frames, np.full(frames.size, 0.1), np.full(frames.size, 0.2),
                             0.3 + frames / 1000, np.full(frames.size, 0.9)]).astype(np.float32)
    return Tube(tid, (0, n - 1), [], [Segment(s, e, label) for s, e, label in segments], boxes)


def _world(tubes: list[Tube], fps: float = 10.0, n: int = 60) -> SealTubes:
    video = SealVideo("v", "training", n / fps, fps, n, (96, 128), {t.tube_id: t for t in tubes})
    return SealTubes(LM, [], {"v": video})


def _centres(clips, label: int) -> list[float]:
    return sorted(clips.table.timestamps[clips.table.action_ids == label].tolist())


ALL = np.arange(60)


def test_overlap_rule_hand_computed():
    tube = _tube("0", [(1.0, 3.0, 1), (2.0, 2.5, 2), (4.1, 4.4, 3), (0.0, 6.0, 4), (0.5, 2.0, 5)], ALL)
    clips = generate_clips(_world([tube]), ClipConfig(), LM)
    assert _centres(clips, 1) == [1.0, 2.0, 3.0]  # clip [3,5) only touches the segment
    assert _centres(clips, 2) == [2.0, 3.0]  # 0.5 s exactly inside [1,3) and [2,4): >= min_overlap
    assert _centres(clips, 3) == []  # 0.3 s action: shorter than min_overlap everywhere
    assert _centres(clips, 4) == [1.0, 2.0, 3.0, 4.0, 5.0]  # spans every clip; last clip [4,6) ends the video
    assert _centres(clips, 5) == [1.0, 2.0]
    assert clips.rule["min_overlap"] == 0.5 and clips.rule["assign_rule"] == "overlap"


@pytest.mark.parametrize(
    ("rule", "expected2", "expected5"),
    [("keyframe", [2.0], [1.0]), ("both", [2.0], [1.0]), ("either", [2.0, 3.0], [1.0, 2.0])],
)
def test_keyframe_rules(rule, expected2, expected5):
    # segment 5 = [0.5, 2.0) ends exactly at keyframe 2.0: half-open, so it does not cover it
    tube = _tube("0", [(2.0, 2.5, 2), (0.5, 2.0, 5)], ALL)
    clips = generate_clips(_world([tube]), ClipConfig(assign_rule=rule), LM)
    assert _centres(clips, 2) == expected2
    assert _centres(clips, 5) == expected5


def test_min_overlap_is_configurable():
    tube = _tube("0", [(2.0, 2.5, 2)], ALL)
    assert _centres(generate_clips(_world([tube]), ClipConfig(min_overlap=0.6), LM), 2) == []
    # 0 means "any positive overlap": the window [0, 2) only touches the segment
    assert _centres(generate_clips(_world([tube]), ClipConfig(min_overlap=0.0), LM), 2) == [2.0, 3.0]


@pytest.mark.parametrize(("density", "count"), [("1fps", 2), ("4fps", 8), ("all", 20)])
def test_box_density(density, count):
    tube = _tube("0", [(0.0, 6.0, 1)], ALL)
    clips = generate_clips(_world([tube]), ClipConfig(box_density=density), LM)
    boxes = clips.frame_boxes["v,2,0"]
    assert boxes.shape == (count, 5)
    assert boxes[:, 0].min() >= 10 and boxes[:, 0].max() <= 29  # clip [1, 3) s = frames 10..29 at 10 fps
    assert 20 in boxes[:, 0].tolist()  # the keyframe's box is always kept
    np.testing.assert_allclose(boxes[boxes[:, 0] == 20, 1:], [[0.1, 0.2, 0.32, 0.9]], atol=1e-6)


def test_box_density_at_15fps_and_1fps_frames():
    tube = _tube("0", [(0.0, 6.0, 1)], np.arange(90), n=90)
    clips = generate_clips(_world([tube], fps=15.0, n=90), ClipConfig(box_density="1fps"), LM)
    assert clips.frame_boxes["v,2,0"][:, 0].tolist() == [15.0, 30.0]  # seconds 1 and 2 of the clip [1, 3)
    clips = generate_clips(_world([tube], fps=15.0, n=90), ClipConfig(box_density="4fps"), LM)
    frames = clips.frame_boxes["v,2,0"][:, 0]
    assert frames.size == 8 and np.unique(frames).size == 8 and 30 in frames.tolist()


def test_person_must_have_a_box_at_the_keyframe():
    # boxes on frames 0..25 only, and a hole at frame 10 (keyframe of clip [0, 2))
    frames = np.setdiff1d(np.arange(26), [10])
    tube = _tube("0", [(0.0, 6.0, 1)], frames)
    clips = generate_clips(_world([tube]), ClipConfig(), LM)
    assert _centres(clips, 1) == [2.0]
    np.testing.assert_allclose(clips.table.boxes[0], [0.1, 0.2, 0.32, 0.9], atol=1e-6)


def test_unlabeled_persons_and_person_ids():
    walker = _tube("7", [(0.0, 2.2, 1)], ALL)
    idle = _tube("3", [], ALL)
    clips = generate_clips(_world([walker, idle]), ClipConfig(), LM)
    assert set(clips.table.person_ids.tolist()) == {7}
    assert _centres(clips, 1) == [1.0, 2.0]
    unl = sorted(zip(clips.unlabeled.person_ids.tolist(), clips.unlabeled.timestamps.tolist()))
    assert unl == [(3, c) for c in (1.0, 2.0, 3.0, 4.0, 5.0)] + [(7, c) for c in (3.0, 4.0, 5.0)]
    assert "v,4,3" in clips.frame_boxes  # unlabelled persons keep their per-frame boxes
    no_unlabeled = generate_clips(_world([walker, idle]), ClipConfig(keep_unlabeled=False), LM)
    assert len(no_unlabeled.unlabeled) == 0 and "v,4,3" not in no_unlabeled.frame_boxes
    assert person_ids_for(["b", "a", "10"]) == {"10": 0, "a": 1, "b": 2}
    assert person_ids_for(["3", "12"]) == {"3": 3, "12": 12}


def test_rows_sorted_and_unique():
    tube = _tube("0", [(0.0, 3.0, 2), (1.0, 4.0, 2), (0.0, 6.0, 1)], ALL)  # overlapping segments, same label
    clips = generate_clips(_world([tube]), ClipConfig(), LM)
    keys = list(zip(clips.table.timestamps.tolist(), clips.table.action_ids.tolist()))
    assert keys == sorted(set(keys))
    assert _centres(clips, 2) == [1.0, 2.0, 3.0, 4.0]


def test_many_tubes_vectorised():
    rng = np.random.default_rng(0)
    tubes = []
    for i in range(2000):
        start = rng.uniform(0, 4)
        tubes.append(_tube(str(i), [(start, start + rng.uniform(0.6, 2.0), int(rng.integers(1, 10)))], ALL))
    clips = generate_clips(_world(tubes), ClipConfig(), LM)
    assert len(clips.table) > 2000
    assert len(clips.frame_boxes) == 2000 * 5  # every tube is present in every one of the 5 clips
    ref = generate_clips(_world(tubes[:1]), ClipConfig(), LM)
    first = clips.table.person_ids == 0
    assert clips.table.timestamps[first].tolist() == ref.table.timestamps.tolist()


@pytest.mark.parametrize(
    ("cfg", "message"),
    [(ClipConfig(assign_rule="center"), "clips.assign_rule"), (ClipConfig(box_density="8"), "clips.box_density"),
     (ClipConfig(min_overlap=3.0), "clips.min_overlap"), (ClipConfig(stride=0), "clips.window and clips.stride")],
)
def test_config_errors(cfg, message):
    with pytest.raises(UserError, match=message):
        generate_clips(_world([_tube("0", [], ALL)]), cfg, LM)


def test_unknown_label_rejected():
    with pytest.raises(UserError, match="atomic label 42 is not in the label map"):
        generate_clips(_world([_tube("0", [(0.0, 2.0, 42)], ALL)]), ClipConfig(), LM)


def test_segments_beyond_a_tubes_boxes_never_leak_into_the_next_tube():
    short_a = _tube("0", [(0.0, 6.0, 1)], np.arange(26))
    short_b = _tube("1", [], np.arange(26))
    clips = generate_clips(_world([short_a, short_b]), ClipConfig(box_density="all"), LM)
    assert clips.table.person_ids.tolist() == [0, 0]
    assert _centres(clips, 1) == [1.0, 2.0]
    assert clips.frame_boxes["v,2,1"][:, 0].max() == 25  # window frames past the tube's boxes stay empty


def test_rows_ordered_by_video_id_whatever_the_file_order():
    tube = _tube("0", [(0.0, 3.0, 1)], ALL)
    b = SealVideo("b", "training", 6.0, 10.0, 60, (96, 128), {"0": tube})
    a = SealVideo("a", "training", 6.0, 10.0, 60, (96, 128), {"0": tube})
    clips = generate_clips(SealTubes(LM, [], {"b": b, "a": a}), ClipConfig(), LM)
    assert clips.table.video_ids.tolist() == ["a"] * 3 + ["b"] * 3


def test_dense_samples_are_labelled_at_their_own_instant():
    """assign_rule=keyframe + 4 fps boxes: samples around a keyframe take the actions active at their own frame."""
    from seal_transfer.data.clips import label_at_own_instant
    from seal_transfer.data.domains import expand_dense_boxes

    world = _world([_tube("0", [(0.0, 1.2, 1), (1.2, 3.0, 2), (0.0, 6.0, 4)], ALL)])
    clips = generate_clips(world, ClipConfig(assign_rule="keyframe", box_density="4fps"), LM)
    dense = expand_dense_boxes(clips, {"v": 10.0}, 2.0)
    # copied clip labels: the clip at keyframe 1.0 carries action 1 to its sample at frame 12 (1.2 s), after it ended
    assert 1 in set(dense.action_ids[np.isclose(dense.timestamps, 1.2)].tolist())
    relabelled = label_at_own_instant(dense, world)

    def labels_at(t: float) -> set[int]:
        return set(relabelled.action_ids[np.isclose(relabelled.timestamps, t)].tolist())

    assert labels_at(1.0) == {1, 4}  # the keyframe sample keeps its clip labels
    assert labels_at(0.8) == {1, 4}
    assert labels_at(1.2) == labels_at(1.5) == {2, 4}  # action 1 ended at 1.2 s (half-open), action 2 began
    assert len(relabelled) == len(set(zip(relabelled.timestamps.tolist(), relabelled.action_ids.tolist())))
