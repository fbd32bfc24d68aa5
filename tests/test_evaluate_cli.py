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
