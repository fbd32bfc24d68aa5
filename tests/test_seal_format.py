"""SEAL Tubes / Clips files: round trips and the validation errors a user sees."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seal_transfer.data.formats.ava import AvaTable, LabelMap
from seal_transfer.data.formats.seal import (
    SealClips,
    SealTubes,
    SealVideo,
    Segment,
    Tube,
    read_seal_clips,
    read_seal_tubes,
    write_seal_clips,
    write_seal_tubes,
)
from seal_transfer.errors import UserError

LM = LabelMap([1, 2, 5], {1: "walk", 2: "jump", 5: "lift object"}, {1: "POSE", 2: "POSE", 5: "PERSON_OBJECT"})


def _boxes(frames: np.ndarray) -> np.ndarray:
    n = frames.size
    return np.column_stack([frames, np.full(n, 0.1), np.full(n, 0.2), np.full(n, 0.4), np.full(n, 0.9)]).astype(
        np.float32)


def _tubes() -> SealTubes:
    tube0 = Tube("0", (0, 49), [Segment(0.5, 4.0, "Long jump")], [Segment(0.5, 2.0, 1), Segment(2.0, 4.0, 2)],
                 _boxes(np.arange(0, 50)))
    tube1 = Tube("1", (10, 39), [], [Segment(1.5, 3.5, 5)], _boxes(np.arange(10, 40, 2)))
    video = SealVideo("vid3", "training", 5.0, 10.0, 50, (96, 128), {"0": tube0, "1": tube1})
    return SealTubes(LM, ["Long jump", "Zumba"], {"vid3": video})


@pytest.fixture()
def written(tmp_path):
    json_path, npz_path = tmp_path / "seal_tubes_val.json", tmp_path / "seal_tubes_val_boxes.npz"
    write_seal_tubes(json_path, npz_path, _tubes())
    return json_path, npz_path


def test_tubes_round_trip(written):
    tubes = read_seal_tubes(*written, labelmap=LM)
    video = tubes.videos["vid3"]
    assert (video.fps, video.nframes, video.resolution, video.subset) == (10.0, 50, (96, 128), "training")
    assert tubes.atomic_classes.types[5] == "PERSON_OBJECT"
    assert tubes.activity_classes == ["Long jump", "Zumba"]
    assert [(s.start, s.end, s.label) for s in video.tubes["0"].atomic_actions] == [(0.5, 2.0, 1), (2.0, 4.0, 2)]
    assert video.tubes["0"].activities[0].label == "Long jump"
    np.testing.assert_array_equal(video.tubes["1"].boxes, _boxes(np.arange(10, 40, 2)))
    assert video.tubes["1"].boxes.dtype == np.float32


def _edit(json_path, change):
    doc = json.loads(json_path.read_text())
    change(doc)
    json_path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["database"]["vid3"]["tubes"]["0"]["atomic_actions"][1].update(segment=[4.0, 3.2]),
         "seal_tubes_val.json: database.vid3.tubes.0.atomic_actions[1].segment: end 3.2 <= start 4"),
        (lambda d: d["database"]["vid3"]["tubes"]["1"]["atomic_actions"][0].update(segment=[0.5, 3.0]),
         "database.vid3.tubes.1.atomic_actions[0].segment: [0.5, 3] is outside the tube's time span [1, 4] s"),
        (lambda d: d["database"]["vid3"]["tubes"]["0"]["atomic_actions"][0].update(label=3),
         "database.vid3.tubes.0.atomic_actions[0].label: unknown atomic action id 3"),
        (lambda d: d["database"]["vid3"]["tubes"]["0"]["activities"][0].update(label="Sumo"),
         "database.vid3.tubes.0.activities[0].label: unknown activity class 'Sumo'"),
        (lambda d: d["database"]["vid3"]["tubes"]["0"].update(frames=[0, 50]),
         "database.vid3.tubes.0.frames: [0, 50] is not inside the video's frames [0, 49]"),
        (lambda d: d["database"]["vid3"]["tubes"]["1"].update(frames=[12, 39]),
         "seal_tubes_val_boxes.npz: vid3/1: box row 0 is at frame 10, outside the tube's frames [12, 39]"),
        (lambda d: d["database"]["vid3"].pop("fps"), "database.vid3: missing key 'fps'"),
        (lambda d: d["database"]["vid3"]["tubes"].update({"2": {"frames": [0, 3]}}),
         "seal_tubes_val_boxes.npz: no boxes for tube 'vid3/2'"),
    ],
)
def test_tubes_validation_names_file_and_json_path(written, change, message):
    _edit(written[0], change)
    with pytest.raises(UserError) as err:
        read_seal_tubes(*written)
    assert message in str(err.value)


def test_bad_box_coordinates(tmp_path):
    tubes = _tubes()
    tubes.videos["vid3"].tubes["0"].boxes[3, 3] = 1.5
    write_seal_tubes(tmp_path / "t.json", tmp_path / "t.npz", tubes)
    with pytest.raises(UserError, match=r"t.npz: vid3/0: box at frame 3 .* outside \[0, 1\]"):
        read_seal_tubes(tmp_path / "t.json", tmp_path / "t.npz")
    tubes = _tubes()
    tubes.videos["vid3"].tubes["0"].boxes[4, 3] = 0.05  # x2 < x1
    write_seal_tubes(tmp_path / "t.json", tmp_path / "t.npz", tubes)
    with pytest.raises(UserError, match="box at frame 4 .* x2 < x1"):
        read_seal_tubes(tmp_path / "t.json", tmp_path / "t.npz")


def test_pickled_npz_is_refused(tmp_path, written):
    np.savez(tmp_path / "evil.npz", **{"vid3/0": np.array([object()], dtype=object)})
    with pytest.raises(UserError, match="not a readable .npz"):
        read_seal_tubes(written[0], tmp_path / "evil.npz")


def test_labelmap_mismatch(written):
    other = LabelMap([1, 2, 5], {1: "walk", 2: "run", 5: "lift object"}, source="x.pbtxt")
    with pytest.raises(UserError, match="disagree with x.pbtxt at id 2"):
        read_seal_tubes(*written, labelmap=other)


def test_clips_round_trip(tmp_path):
    table = AvaTable.from_columns(["v", "v"], [1.0, 2.0], [[0.1, 0.2, 0.3, 0.4]] * 2, action_ids=[1, 5],
                                  person_ids=[0, 3])
    unlabeled = AvaTable.from_columns(["v"], [3.0], [[0.2, 0.2, 0.5, 0.5]], person_ids=[3])
    frame_boxes = {"v,1,0": _boxes(np.arange(0, 20, 5))[:, :5], "v,2,3": _boxes(np.array([10, 20])),
                   "v,3,3": _boxes(np.array([30]))}
    clips = SealClips(table, frame_boxes, unlabeled, {"assign_rule": "overlap"})
    write_seal_clips(tmp_path / "c.csv", tmp_path / "c.npz", clips)
    back = read_seal_clips(tmp_path / "c.csv", tmp_path / "c.npz")
    assert back.table.action_ids.tolist() == [1, 5] and back.table.person_ids.tolist() == [0, 3]
    assert back.rule == {"assign_rule": "overlap"}
    assert back.unlabeled.person_ids.tolist() == [3] and back.unlabeled.timestamps.tolist() == [3.0]
    assert sorted(back.frame_boxes) == sorted(frame_boxes)
    np.testing.assert_array_equal(back.frame_boxes["v,2,3"], frame_boxes["v,2,3"])
    assert (tmp_path / "c.csv").read_text().splitlines()[0] == "v,0001,0.100,0.200,0.300,0.400,1,0"


def test_clips_row_without_boxes(tmp_path):
    table = AvaTable.from_columns(["v"], [1.0], [[0.1, 0.2, 0.3, 0.4]], action_ids=[1], person_ids=[0])
    write_seal_clips(tmp_path / "c.csv", tmp_path / "c.npz", SealClips(table, {}))
    with pytest.raises(UserError, match=r"c.csv:1: no per-frame boxes for clip 'v,1,0'"):
        read_seal_clips(tmp_path / "c.csv", tmp_path / "c.npz")
