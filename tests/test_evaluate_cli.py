"""`python -m seal_transfer.evaluate`: output contract, JSON, bad input, official file variants, benchmark inputs."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import warnings
from pathlib import Path

import pytest

from seal_transfer.cli import guarded_main
from seal_transfer.data.formats.ava import read_ava_csv, read_labelmap
from seal_transfer.evaluate import main, parse_thresholds, read_ava_for_eval
from seal_transfer.evaluation.frame_map import frame_map

REPO = Path(__file__).resolve().parents[1]
SHARED = Path("/work/shared/data")
DET = SHARED / "fixtures/mmaction2/eval_detection"
LOC = SHARED / "fixtures/mmaction2/eval_localization"


def run(argv, capsys):
    code = guarded_main(main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out.strip().splitlines(), err


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_ava_fixture_last_line_and_json(tmp_path, capsys):
    out_json = tmp_path / "res" / "ava.json"
    code, lines, err = run(["ava", DET / "gt.csv", DET / "pred.csv", "--labelmap", DET / "action_list.txt",
                            "--json", out_json], capsys)
    assert code == 0
    assert lines[-1].startswith("mAP@0.5IOU ")
    assert float(lines[-1].split()[-1]) == pytest.approx(0.0938552188, abs=1e-9)
    assert len(lines) == 4 and lines[0].split("\t")[:3] == ["AP@0.5IOU", "1", "action1"]
    data = json.loads(out_json.read_text())
    assert data["mAP"] == pytest.approx(0.0938552188, abs=1e-9)
    assert set(data["per_class"]) == {"1", "2", "3"}
    assert data["num_gt_boxes"] == 12 and data["num_keyframes"] == 3 and data["num_ignored_class"] == 0
    assert "keyframes scored" in err


def test_bad_row_is_one_line_error_with_file_and_line(capsys):
    bad = SHARED / "ava/ava_val_v2.2_excerpt_raw_with_bad_row.csv"
    code, lines, err = run(["ava", bad, DET / "pred.csv", "--labelmap", DET / "action_list.txt"], capsys)
    assert code == 2 and not lines
    assert err.strip() == f"error: {bad}:16: person_id '3_' is not a number"


def test_empty_detections_and_foreign_classes(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code, lines, err = run(["ava", DET / "gt.csv", empty, "--labelmap", DET / "action_list.txt"], capsys)
    assert code == 0 and lines[-1] == "mAP@0.5IOU 0.0000000000" and "warning: no detections" in err
    foreign = tmp_path / "foreign.csv"
    foreign.write_text((DET / "pred.csv").read_text() + "3reY9zJKhqN,1774,0.1,0.1,0.5,0.5,42,0.99\n")
    out_json = tmp_path / "f.json"
    code, lines, err = run(["ava", DET / "gt.csv", foreign, "--labelmap", DET / "action_list.txt", "--json",
                            out_json], capsys)
    assert code == 0 and float(lines[-1].split()[-1]) == pytest.approx(0.0938552188, abs=1e-9)
    assert json.loads(out_json.read_text())["num_ignored_class"] == 1 and "outside the label map" in err


def test_protocols_and_exclusions(tmp_path, capsys):
    det = tmp_path / "det.csv"
    det.write_text((DET / "pred.csv").read_text() + "someVideo00,0902,0.1,0.1,0.5,0.5,1,0.999\n")
    base = ["ava", DET / "gt.csv", det, "--labelmap", DET / "action_list.txt"]
    v2020 = float(run(base, capsys)[1][-1].split()[-1])
    v2019 = float(run([*base, "--protocol", "2019"], capsys)[1][-1].split()[-1])
    assert v2020 == pytest.approx(0.0938552188, abs=1e-9) and v2019 < v2020
    excl = tmp_path / "excl.csv"
    excl.write_text("3reY9zJKhqN,1774\n")
    code, lines, _ = run([*base, "--exclusions", excl], capsys)
    gt = read_ava_csv(DET / "gt.csv", "gt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = frame_map(gt, read_ava_csv(det, "detections"), [1, 2, 3], exclusions={("3reY9zJKhqN", 1774.0)})
    assert code == 0 and float(lines[-1].split()[-1]) == pytest.approx(expected.mAP, abs=1e-9)


def test_2020_gt_with_keyframe_only_rows_and_seven_columns(tmp_path, capsys):
    gt = tmp_path / "gt.csv"
    text = (DET / "gt.csv").read_text()
    gt.write_text(text + "3reY9zJKhqN,1775\n" + "HmR8SmNIoxu,1384,0.1,0.1,0.2,0.2,2\n")
    table, negatives = read_ava_for_eval(gt, "gt")
    assert negatives == [("3reY9zJKhqN", 1775.0)] and len(table) == 13 and table.person_ids[-1] == -1
    det = tmp_path / "det.csv"
    det.write_text((DET / "pred.csv").read_text() + "3reY9zJKhqN,1775,0.1,0.1,0.5,0.5,1,0.999\n")
    code, lines, _ = run(["ava", gt, det, "--labelmap", DET / "action_list.txt"], capsys)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = frame_map(table, read_ava_csv(det, "detections"), [1, 2, 3], negative_keyframes=negatives)
    assert code == 0 and float(lines[-1].split()[-1]) == pytest.approx(expected.mAP, abs=1e-9)
    # A real error in such a file still names the original file and line.
    gt.write_text(text + "3reY9zJKhqN,1775\n" + "HmR8SmNIoxu,1384,0.1,0.1,0.2,zz,2,1\n")
    code, _, err = run(["ava", gt, det, "--labelmap", DET / "action_list.txt"], capsys)
    assert code == 2 and err.strip().startswith(f"error: {gt}:14: ")


LABELMAP_1 = 'item {\n  name: "one"\n  id: 1\n}\n'


def test_ava_inverted_and_empty_boxes_are_scored_as_the_official_code_does(tmp_path, capsys):
    """Inverted detection boxes are dropped (not false positives), an empty GT box counts and is never matched;
    each file says how many it had in one warning line."""
    labelmap = tmp_path / "labelmap.pbtxt"
    labelmap.write_text(LABELMAP_1)
    gt = tmp_path / "gt.csv"
    gt.write_text("v1,0902,0.1,0.1,0.5,0.5,1,0\n"
                  "v1,0902,0.6,0.6,0.6,0.9,1,1\n"  # zero width
                  "v1,0903,0.2,0.2,0.6,0.6,1,0\n")
    det = tmp_path / "det.csv"
    det.write_text("v1,0902,0.1,0.1,0.5,0.5,1,0.9\n"  # TP
                   "v1,0902,0.427,0.373,0.601,0.3729,1,0.95\n"  # y2 < y1 by 1e-4: dropped
                   "v1,0903,0.2,0.2,0.6,0.6,1,0.8\n"  # TP
                   "v1,0903,0.7,0.7,0.65,0.9,1,0.85\n"  # x2 < x1: dropped
                   "v1,0902,0.6,0.6,0.7,0.9,1,0.7\n")  # meets only the zero-width GT: IoU 0, FP
    out_json = tmp_path / "r.json"
    code, lines, err = run(["ava", gt, det, "--labelmap", labelmap, "--json", out_json], capsys)
    # 3 GT rows; TP, TP, FP → AP = 1/3 + 1/3 = 2/3 (scored as false positives, the inverted rows would give 1/3)
    assert code == 0 and lines[-1] == "mAP@0.5IOU 0.6666666667"
    warnings_ = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings_ == [
        f"warning: {gt}: 0 rows with a box that has x2 < x1 or y2 < y1 and 1 row with a box of zero width or height "
        "(first: line 2, box (0.6, 0.6, 0.6, 0.9)); kept, as the official AVA reader keeps them (in evaluation "
        "such a ground-truth box counts and is never matched)",
        f"warning: {det}: 2 rows with a box that has x2 < x1 or y2 < y1 and 0 rows with a box of zero width or "
        "height (first: line 2, box (0.427, 0.373, 0.601, 0.3729)); kept: the evaluator drops them after the "
        "top-k cut, as the official code does (neither true nor false positives)",
    ]
    assert "3 GT boxes (1 without area)" in err and "2 empty or inverted boxes" in err
    data = json.loads(out_json.read_text())
    assert data["num_dropped_invalid_box"] == 2 and data["num_degenerate_gt_boxes"] == 1
    reference = _load("frame_map_reference", REPO / "tests/test_frame_map.py").reference_frame_map
    rows = [tuple(line.split(",")) for line in det.read_text().splitlines()]
    gt_rows = [tuple(line.split(",")) for line in gt.read_text().splitlines()]
    assert reference(gt_rows, rows, [1])[0] == pytest.approx(2 / 3, abs=1e-15)


def test_ava_bad_numbers_stay_one_line_errors(tmp_path, capsys):
    labelmap = tmp_path / "labelmap.pbtxt"
    labelmap.write_text(LABELMAP_1)
    good = "v1,0902,0.1,0.1,0.5,0.5,1,0.9\n"
    for row, message in (("v1,0902,0.1,nan,0.5,0.5,1,0.8", "y1 'nan' is not finite"),
                         ("v1,0902,0.1,0.1,0.5,1.7,1,0.8", "y2 1.7 is outside [0, 1] (boxes are normalised)"),
                         ("v1,0902,0.1,0.1,0.5,0.5,1,high", "score 'high' is not a number"),
                         ("v1,0902,0.1,0.1,0.5,0.5,1,inf", "score 'inf' is not finite")):
        det = tmp_path / "det.csv"
        det.write_text(good * 3 + row + "\n")
        code, lines, err = run(["ava", DET / "gt.csv", det, "--labelmap", labelmap], capsys)
        assert code == 2 and not lines and err.strip() == f"error: {det}:4: {message}"


def test_ava_seven_column_rows_with_inverted_boxes_name_the_original_file(tmp_path, capsys):
    det = tmp_path / "det7.csv"
    det.write_text("3reY9zJKhqN,1774,0.1,0.1,0.5,0.5,1\n3reY9zJKhqN,1774,0.6,0.1,0.5,0.5,1\n")
    table, _ = read_ava_for_eval(det, "detections")
    assert len(table) == 2 and table.scores.tolist() == [1.0, 1.0]
    assert table.notes == [
        f"{det}: 1 row with a box that has x2 < x1 or y2 < y1 and 0 rows with a box of zero width or height "
        "(first: line 2, box (0.6, 0.1, 0.5, 0.5)); kept: the evaluator drops them after the top-k cut, as the "
        "official code does (neither true nor false positives)"
    ]
    assert not capsys.readouterr().err  # the CLI prints the notes, the reader does not


def test_tad_segments_ending_before_they_start_are_scored_as_the_official_code_does(tmp_path, capsys):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"database": {
        "a": {"subset": "validation", "annotations": [{"segment": [0, 10], "label": "x"},
                                                      {"segment": [20, 18], "label": "x"}]},
        "b": {"subset": "validation", "annotations": [{"segment": [5, 5], "label": "x"}]}}}))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"results": {
        "a": [{"segment": [30, 25], "label": "x", "score": 0.95}, {"segment": [0, 10], "label": "x", "score": 0.9},
              {"segment": [10, 12], "label": "x", "score": 0.8}],
        "b": [{"segment": [7, 7], "label": "x", "score": 0.7}]}}))
    code, lines, err = run(["tad", gt, pred], capsys)
    # see test_temporal_map: FP, TP, TP (0 / 0 with [20, 18]), TP (0 / 0) → 3/4 at every threshold
    assert code == 0 and lines[-1] == "average-mAP 0.7500000000" and lines[0] == "mAP@0.50 0.7500000000"
    warnings_ = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings_) == 2
    assert warnings_[0].startswith(f"warning: {gt}: 1 segment with end < start and 1 segment of zero length (first: "
                                   "database/a/annotations[1]/segment [20.0, 18.0]); scored with the official")
    assert warnings_[1].startswith(f"warning: {pred}: 1 segment with end < start and 1 segment of zero length "
                                   "(first: results/a[0]/segment [30.0, 25.0])")


def test_tad_fixture_and_json(tmp_path, capsys):
    out_json = tmp_path / "tad.json"
    code, lines, err = run(["tad", LOC / "gt.json", LOC / "result.json", "--json", out_json], capsys)
    assert code == 0 and lines[-1].startswith("average-mAP ")
    assert float(lines[-1].split()[-1]) == pytest.approx(0.617758, abs=1e-6)
    assert lines[0].startswith("mAP@0.50 ") and len(lines) == 11
    data = json.loads(out_json.read_text())
    assert data["average_mAP"] == pytest.approx(0.617758, abs=1e-6) and "0.95" in data["mAP_at"]
    assert "stripped the 'v_' prefix" in err
    code, lines, _ = run(["tad", LOC / "gt.json", LOC / "result.json", "--exact-ids"], capsys)
    assert code == 0 and float(lines[-1].split()[-1]) == 0.0


def test_tad_bad_input_and_thresholds(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{\n  \"results\": [1,\n")
    code, _, err = run(["tad", LOC / "gt.json", bad], capsys)
    assert code == 2 and err.startswith(f"error: {bad}:") and "not valid JSON" in err
    assert parse_thresholds("0.5:0.05:0.95").tolist() == pytest.approx([0.5 + 0.05 * i for i in range(10)])
    assert parse_thresholds("0.3,0.7").tolist() == [0.3, 0.7]
    code, _, err = run(["tad", LOC / "gt.json", LOC / "result.json", "--tiou", "x"], capsys)
    assert code == 2 and "--tiou" in err


def test_benchmark_generator_output_matches_the_reference(tmp_path):
    """The benchmark's realistic structure, at tiny scale, scored by the literal reference and by frame_map."""
    bench = _load("bench_eval", REPO / "scripts/bench_eval.py")
    reference = _load("frame_map_reference", REPO / "tests/test_frame_map.py").reference_frame_map
    data = bench.generate_ava(scale=0.004, seed=7)
    gt_csv, det_csv = tmp_path / "gt.csv", tmp_path / "det.csv"
    bench.write_ava_csv_fast(gt_csv, data["gt"], "person")
    bench.write_ava_csv_fast(det_csv, data["det"], "score")
    labelmap = read_labelmap(bench.LABELMAP)
    gt_rows = [tuple(line.split(",")) for line in gt_csv.read_text().splitlines()]
    det_rows = [tuple(line.split(",")) for line in det_csv.read_text().splitlines()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for protocol in ("2020", "2019"):
            expected, _ = reference(gt_rows, det_rows, labelmap.ids, protocol=protocol)
            ours = frame_map(read_ava_csv(gt_csv, "gt"), read_ava_csv(det_csv, "detections"), labelmap.ids,
                             protocol=protocol)
            assert not math.isnan(expected) and ours.mAP == pytest.approx(expected, abs=1e-12)
