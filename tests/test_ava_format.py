from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from seal_transfer.data.formats import ava
from seal_transfer.errors import UserError


def test_real_val_excerpt_parses(shared_data: Path) -> None:
    table = ava.read_ava_csv(shared_data / "ava" / "ava_val_v2.2_excerpt.csv", "gt")
    assert len(table) == 154
    assert table.video_ids[0] == "1j20qq1JyX4"
    assert table.timestamps.min() == 902 and table.timestamps.max() == 941
    assert table.boxes.shape == (154, 4)
    assert (table.boxes[:, 2] >= table.boxes[:, 0]).all()
    assert set(np.unique(table.action_ids)) <= set(range(1, 81))


def test_raw_excerpt_fails_with_line_number(shared_data: Path) -> None:
    path = shared_data / "ava" / "ava_val_v2.2_excerpt_raw_with_bad_row.csv"
    with pytest.raises(UserError) as err:
        ava.read_ava_csv(path, "gt")
    assert str(err.value) == f"{path}:16: person_id '3_' is not a number"


def test_both_labelmap_layouts(shared_data: Path) -> None:
    full = ava.read_labelmap(shared_data / "ava" / "ava_action_list_v2.2_80_reconstructed.pbtxt")
    assert len(full) == 80 and full.ids[0] == 1 and full.ids[-1] == 80
    assert full.types[1] == "PERSON_MOVEMENT" and full.types[80] == "PERSON_INTERACTION"
    sixty = ava.read_labelmap(shared_data / "ava" / "ava_action_list_v2.1_for_activitynet_2018.pbtxt")
    assert len(sixty) == 60 and 2 not in sixty.ids and sixty.types == {}
    assert set(sixty.ids) <= set(full.ids)


def test_labelmap_round_trip(tmp_path: Path) -> None:
    lm = ava.LabelMap([3, 7], {3: 'say "hi"', 7: "walk"}, {3: "POSE", 7: "PERSON_PERSON"})
    for layout in ("label", "item"):
        path = tmp_path / f"{layout}.pbtxt"
        ava.write_labelmap(path, lm, layout)
        back = ava.read_labelmap(path)
        assert back.ids == [3, 7] and back.names == lm.names
        assert back.types == (lm.types if layout == "label" else {})


def test_labelmap_errors(tmp_path: Path) -> None:
    bad = tmp_path / "dup.pbtxt"
    bad.write_text('item {\n name: "a"\n id: 1\n}\nitem {\n name: "b"\n id: 1\n}\n')
    with pytest.raises(UserError, match=r"dup.pbtxt:5: id 1 appears twice"):
        ava.read_labelmap(bad)
    empty = tmp_path / "empty.pbtxt"
    empty.write_text("nothing here\n")
    with pytest.raises(UserError, match="no 'label"):
        ava.read_labelmap(empty)


@pytest.mark.parametrize(
    "row, message",
    [
        ("v,0902,0.1,0.1,0.5,0.5,3", "expected 8 columns"),
        ("v,09x2,0.1,0.1,0.5,0.5,3,0", "timestamp '09x2' is not a number"),
        ("v,0902,0.1,0.1,1.5,0.5,3,0", "outside [0, 1]"),
        ("v,0902,0.1,0.1,0.5,0.5,0,0", "not a positive label id"),
        ("v,0902,nan,0.1,0.5,0.5,3,0", "not finite"),
        ("v,0902,0.1,0.1,0.5,inf,3,0", "not finite"),
        ("v,0902,0.1,-0.2,0.5,0.5,3,0", "y1 -0.2 is outside [0, 1]"),
        ("v,0902,0.6,0.1,0.5,0.5x,3,0", "y2 '0.5x' is not a number"),
        ("v,0902,0.1,0.1,0.5,,3,0", "y2 '' is not a number"),
        ("v,0902,0.1,0.1,0.5,0.5,0x3,0", "action_id '0x3' is not a number"),
        ("v,0902,0.1,0.1,0.5,0.5,3,99999999999999999999", "person_id '99999999999999999999' does not fit"),
    ],
)
def test_bad_rows_name_the_line(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "gt.csv"
    path.write_text("v,0902,0.1,0.1,0.5,0.5,3,0\n" + row + "\n")
    with pytest.raises(UserError) as err:
        ava.read_ava_csv(path, "gt")
    assert f"{path}:2:" in str(err.value) and message in str(err.value)


def test_write_read_round_trip_all_kinds(tmp_path: Path) -> None:
    table = ava.AvaTable.from_columns(
        ["a", "b"], [902, 903.5], [[0, 0, 0.5, 0.5], [0.1, 0.2, 0.3, 0.4]], [4, 5], [1, 2], [0.25, 0.75]
    )
    for kind in ava.KINDS:
        path = tmp_path / f"{kind}.csv"
        ava.write_ava_csv(path, table, kind)
        back = ava.read_ava_csv(path, kind)
        assert back.video_ids.tolist() == ["a", "b"]
        np.testing.assert_allclose(back.timestamps, [902, 903.5])
        np.testing.assert_allclose(back.boxes, table.boxes, atol=1e-3)
        assert back.action_ids.tolist() == [4, 5]
        if "score" in ava.KINDS[kind]:
            np.testing.assert_allclose(back.scores, [0.25, 0.75], atol=1e-6)
    assert (tmp_path / "gt.csv").read_text().startswith("a,0902,0.000,0.000,0.500,0.500,4,1\n")


def test_fast_and_exact_parsers_agree(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 500
    lo = rng.random((n, 2)) * 0.5
    boxes = np.concatenate([lo, lo + 0.1 + rng.random((n, 2)) * 0.3], 1)
    boxes[::50, 2] = boxes[::50, 0] - 0.001  # inverted
    boxes[7::50, 3] = boxes[7::50, 1]  # zero height
    table = ava.AvaTable.from_columns(
        [f"vid{i % 7}" for i in range(n)],
        rng.integers(902, 1799, n),
        boxes,
        rng.integers(1, 81, n),
        scores=rng.random(n),
    )
    path = tmp_path / "det.csv"
    ava.write_ava_csv(path, table, "detections")
    text = path.read_text()
    fast = ava._parse_fast(path, "detections")
    assert fast is not None
    # Force the row-by-row parser with a tab-separated copy.
    tabbed = tmp_path / "det_tab.csv"
    tabbed.write_text(text.replace(",", "\t"))
    assert ava._parse_fast(tabbed, "detections") is None
    exact = ava.read_ava_csv(tabbed, "detections", warn=False)
    assert fast.video_ids.tolist() == exact.video_ids.tolist()
    np.testing.assert_array_equal(fast.timestamps, exact.timestamps)
    np.testing.assert_allclose(fast.boxes, exact.boxes)
    np.testing.assert_array_equal(fast.boxes, exact.boxes)  # the same float64 parse, clip and float32 rounding
    np.testing.assert_array_equal(fast.action_ids, exact.action_ids)
    np.testing.assert_allclose(fast.scores, exact.scores)
    np.testing.assert_array_equal(fast.scores, exact.scores)
    for name in ("video_ids", "timestamps", "boxes", "action_ids", "person_ids", "scores"):
        assert getattr(fast, name).dtype == getattr(exact, name).dtype, name
    assert [note.replace(str(path), "F") for note in fast.notes] == [
        note.replace(str(tabbed), "F") for note in exact.notes
    ]
    assert "10 rows with a box that has x2 < x1 or y2 < y1 and 10 rows with a box of zero width" in fast.notes[0]


def test_inverted_and_empty_boxes_are_read_and_counted_in_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Rows the official reader accepts (inverted or empty boxes) are read, clipped as usual and counted."""
    rows = [
        "v,0902,0.1,0.1,0.5,0.5,3,0",
        "v,0902,0.427,0.373,0.601,0.3729,3,1",  # y2 < y1 by 1e-4: rounding to 3 and 4 decimals
        "v,0902,0.2,0.2,0.2,0.6,3,2",  # zero width
        "v,0903,1.008,0.1,1.002,0.5,4,0",  # x2 < x1 as written; both are clipped to 1
        "v,0903,0.3,0.8,0.1,0.9,5,1",  # x2 < x1
    ]
    for sep, name in ((",", "fast.csv"), ("\t", "exact.csv")):  # the fast path, and the row-by-row one (tabs)
        path = tmp_path / name
        path.write_text("\n".join(r.replace(",", sep) for r in rows) + "\n")
        assert (ava._parse_fast(path, "gt") is None) == (sep == "\t")
        table = ava.read_ava_csv(path, "gt")
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            f"warning: {path}: 3 rows with a box that has x2 < x1 or y2 < y1 and 1 row with a box of zero width or "
            "height (first: line 2, box (0.427, 0.373, 0.601, 0.3729)); kept, as the official AVA reader keeps "
            "them (in evaluation such a ground-truth box counts and is never matched)"
        ]
        assert len(table) == 5 and table.notes == [err[0][len("warning: "):]]
        np.testing.assert_array_equal(table.boxes[1], np.float32([0.427, 0.373, 0.601, 0.3729]))
        np.testing.assert_array_equal(table.boxes[3], np.float32([1.0, 0.1, 1.0, 0.5]))
        np.testing.assert_array_equal(table.boxes[4], np.float32([0.3, 0.8, 0.1, 0.9]))
    # Quiet when asked, and nothing to say about a clean file.
    assert ava.read_ava_csv(tmp_path / "fast.csv", "gt", warn=False).notes and not capsys.readouterr().err
    clean = tmp_path / "clean.csv"
    clean.write_text(rows[0] + "\n")
    assert ava.read_ava_csv(clean, "gt").notes == [] and not capsys.readouterr().err


def test_degenerate_line_number_skips_blank_and_comment_lines(tmp_path: Path) -> None:
    path = tmp_path / "det.csv"
    path.write_text("\nv,0902,0.1,0.1,0.5,0.5,3,0.9\n\n\nv,0902,0.6,0.1,0.5,0.5,3,0.8\n")
    fast = ava._parse_fast(path, "detections")
    assert fast is not None and "(first: line 5, box (0.6, 0.1, 0.5, 0.5))" in fast.notes[0]
    assert "the evaluator drops them after the top-k cut" in fast.notes[0]
    path.write_text("# comment\nv,0902,0.1,0.1,0.5,0.5,3,0.9\nv,0902,0.6,0.1,0.5,0.5,3,0.8\n")
    table = ava.read_ava_csv(path, "detections", warn=False)  # a comment line: the row-by-row parser
    assert len(table) == 2 and "(first: line 3," in table.notes[0]


@pytest.mark.parametrize(
    "text",
    [
        "#v,0902,0.1,0.1,0.5,0.5,3,0\nw,0902,0.1,0.1,0.5,0.5,3,0\n",  # a comment that has 8 fields
        " v,0902,0.1,0.1,0.5,0.5,3,0\n",  # blank-padded id
        "\ufeffv,0902,0.1,0.1,0.5,0.5,3,0\n",  # byte-order mark
        'v,0902,"0.1",0.1,0.5,0.5,3,0\nw,0903,0.1,0.1,0.5,0.5,4,1\n',  # quoted number
        "v,0902,0.1,0.1,0.5,0.5,3,0\r\nw,0903,0.1,0.1,0.5,0.5,4,1\r\n",  # CRLF
        "v,0902,1e-1,0.1,0.5,0.5,+3,0\n",  # exponent, signed int
        "v,0902,0.1,0.1,0.5,0.5,3, 1_0\n",  # what int() reads: blank-padded, underscores
        "\nv,0902,.5,0.1,0.5,0.5,03,0\n\n",  # blank lines, '.5', a leading zero
    ],
)
def test_fast_path_reads_what_the_exact_parser_reads_or_steps_aside(tmp_path: Path, text: str) -> None:
    path = tmp_path / "gt.csv"
    path.write_text(text, encoding="utf-8")
    fast = ava._parse_fast(path, "gt")
    exact = ava._parse_exact(path, "gt")
    if fast is not None:
        for name in ("video_ids", "timestamps", "boxes", "action_ids", "person_ids", "scores"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(exact, name))
    assert ava.read_ava_csv(path, "gt").video_ids.tolist() == exact.video_ids.tolist()


def test_pyslowfast_predicted_boxes(shared_data: Path) -> None:
    boxes = ava.read_ava_csv(shared_data / "ava" / "pyslowfast_predicted_boxes_excerpt.txt", "boxes")
    assert len(boxes) == 13
    assert boxes.action_ids[-3] == -1  # the tab row with label -1
    assert boxes.scores[0] == pytest.approx(0.996382)


def test_exclusions_and_video_meta(shared_data: Path, tmp_path: Path) -> None:
    excl = ava.read_exclusions(
        shared_data / "fixtures" / "mmaction2" / "ava_dataset" / "ava_excluded_timestamps_sample.csv"
    )
    assert ("0f39OWEqJ24", 903.0) in excl
    timing = {"a": ava.VideoTiming(fps=25, time_offset=0, first_keyframe=2, last_keyframe=5)}
    ava.write_video_meta(tmp_path / "meta.csv", timing)
    back = ava.read_video_meta(tmp_path / "meta.csv")
    assert back["a"] == timing["a"]
    assert back["a"].keyframes().tolist() == [2, 3, 4, 5]
    assert back["a"].frame_index(3.0).item() == 75
    assert ava.VideoTiming().frame_index(902).item() == 60  # AVA defaults: 30 fps, file starts at 900 s


def test_proposals_pickle_needs_trust(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "fixtures" / "mmaction2" / "ava_dataset" / "ava_proposals_sample.pkl"
    with pytest.raises(UserError, match="pickle"):
        ava.read_proposals_pkl(path)
    table = ava.read_proposals_pkl(path, trust=True)
    assert len(table) > 0 and (table.action_ids == -1).all()

    class Evil:
        def __reduce__(self):  # noqa: D105 - a pickle that would run code
            return (print, ("pwned",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"v,0902": Evil()}))
    with pytest.raises(UserError, match="refusing to load global"):
        ava.read_proposals_pkl(evil, trust=True)


def test_frame_list(shared_data: Path) -> None:
    frames = ava.read_frame_list(shared_data / "ava" / "pyslowfast_frame_list_excerpt.txt")
    assert frames["-5KQ66BBWC4"][0] == "-5KQ66BBWC4/-5KQ66BBWC4_000001.jpg"
    assert len(frames["2PpxiG0WU18"]) == 4


def test_check_action_ids() -> None:
    lm = ava.LabelMap([1, 2], {1: "a", 2: "b"})
    table = ava.AvaTable.from_columns(["v", "v"], [902, 902], [[0, 0, 1, 1]] * 2, [1, 9], source="x.csv")
    with pytest.raises(UserError, match="x.csv: row 2 .* action_id 9, not in label map"):
        ava.check_action_ids(table, lm)


def test_box_scores_become_one_detection_row_per_box_and_class(tmp_path: Path) -> None:
    boxes = ava.AvaTable.from_columns(["a", "b"], [902.0, 903.0], [[0, 0, 0.5, 0.5], [0.1, 0.2, 0.3, 0.4]],
                                      person_ids=[7, 8])
    scores = np.array([[0.9, 0.1, 0.2], [0.3, 0.4, 0.5]])
    dets = ava.AvaTable.from_box_scores(boxes, scores, [12, 80, 3])
    assert dets.video_ids.tolist() == ["a"] * 3 + ["b"] * 3
    assert dets.action_ids.tolist() == [12, 80, 3, 12, 80, 3] and dets.person_ids.tolist() == [7, 7, 7, 8, 8, 8]
    np.testing.assert_allclose(dets.scores, scores.reshape(-1), rtol=1e-6)
    np.testing.assert_array_equal(dets.boxes[3], boxes.boxes[1])
    ava.write_ava_csv(tmp_path / "d.csv", dets, kind="detections")  # the written detection CSV reads back row for row
    back = ava.read_ava_csv(tmp_path / "d.csv", kind="detections")
    assert back.action_ids.tolist() == dets.action_ids.tolist()
    assert len(ava.AvaTable.from_box_scores(boxes, np.zeros((2, 0)), [])) == 0
    with pytest.raises(ValueError, match=r"shape \(3,\) for 2 boxes and 3 classes"):
        ava.AvaTable.from_box_scores(boxes, np.zeros(3), [1, 2, 3])
