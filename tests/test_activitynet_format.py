"""ActivityNet JSON readers: both GT layouts, prediction layouts, id alignment, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seal_transfer.data.formats.activitynet import (
    TadSegments,
    align_video_ids,
    read_activitynet_gt,
    read_activitynet_predictions,
    write_activitynet_predictions,
)
from seal_transfer.errors import UserError

FIXTURES = Path("/work/shared/data/fixtures/mmaction2/eval_localization")


def write(tmp_path: Path, name: str, obj) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(obj, indent=1))
    return path


def test_bare_and_official_gt_layouts_read_the_same(tmp_path):
    bare, bare_videos = read_activitynet_gt(FIXTURES / "gt.json")
    wrapped_obj = {"version": "VERSION 1.3", "taxonomy": [], "database": json.loads((FIXTURES / "gt.json").read_text())}
    wrapped, wrapped_videos = read_activitynet_gt(write(tmp_path, "gt.json", wrapped_obj))
    assert bare_videos == wrapped_videos == ["v_bYUmtLBL7W4", "v_hDPLy21Yyuk"]
    assert bare.labels.tolist() == wrapped.labels.tolist() == ["Wakeboarding"] * 3 + ["Cleaning shoes"]
    assert bare.starts[0] == pytest.approx(11.553655226209049)


def test_subset_selection(tmp_path):
    obj = {"database": {"a": {"subset": "training", "annotations": [{"segment": [0, 1], "label": "x"}]},
                        "b": {"subset": "validation", "annotations": [{"segment": [2, 3], "label": "y"}]}}}
    path = write(tmp_path, "gt.json", obj)
    gt, videos = read_activitynet_gt(path, "validation")
    assert videos == ["b"] and gt.labels.tolist() == ["y"]
    assert len(read_activitynet_gt(path, None)[0]) == 2


def test_predictions_layouts_and_round_trip(tmp_path):
    preds = read_activitynet_predictions(FIXTURES / "result.json")
    assert len(preds) == 14 and preds.scores.max() <= 1.0
    out = tmp_path / "out.json"
    write_activitynet_predictions(out, preds)
    again = read_activitynet_predictions(out)
    assert again.video_ids.tolist() == preds.video_ids.tolist() and again.scores.tolist() == preds.scores.tolist()
    bare = read_activitynet_predictions(write(tmp_path, "bare.json", {"a": [{"segment": [0, 1], "label": 3,
                                                                             "score": 0.5}]}))
    assert bare.labels.tolist() == ["3"]


def test_align_video_ids_only_when_it_helps():
    gt = TadSegments.from_columns(["v_a", "v_b"], [0, 0], [1, 1], ["x", "x"])
    preds = TadSegments.from_columns(["a"], [0], [1], ["x"], [1.0])
    aligned, videos, note = align_video_ids(gt, ["v_a", "v_b"], preds)
    assert aligned.video_ids.tolist() == ["a", "b"] and videos == ["a", "b"] and note
    same = TadSegments.from_columns(["v_a"], [0], [1], ["x"], [1.0])
    assert align_video_ids(gt, ["v_a", "v_b"], same)[2] is None
    other = TadSegments.from_columns(["zz"], [0], [1], ["x"], [1.0])
    assert align_video_ids(gt, ["v_a", "v_b"], other)[2] is None


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"database": {"a": {"annotations": []}}}, "database/a: no 'subset'"),
        ({"database": {"a": {"subset": "validation", "annotations": [{"segment": [0], "label": "x"}]}}},
         "database/a/annotations[0]/segment: expected [start, end]"),
        ({"database": {"a": {"subset": "validation", "annotations": [{"segment": [0, 1]}]}}},
         "database/a/annotations[0]: no 'label'"),
        ({"something": 1}, "not an ActivityNet ground-truth file"),
    ],
)
def test_gt_errors_name_the_json_path(tmp_path, obj, message):
    path = write(tmp_path, "gt.json", obj)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        read_activitynet_gt(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_prediction_errors_and_json_syntax(tmp_path):
    path = write(tmp_path, "p.json", {"results": {"a": [{"segment": [0, 1], "label": "x"}]}})
    with pytest.raises(UserError, match=r"results/a\[0\]: no 'score'"):
        read_activitynet_predictions(path)
    broken = tmp_path / "broken.json"
    broken.write_text('{\n "results": {\n  "a": [,]\n }\n}\n')
    with pytest.raises(UserError, match=r"broken.json:3: not valid JSON"):
        read_activitynet_predictions(broken)
    with pytest.raises(UserError, match="file not found"):
        read_activitynet_gt(tmp_path / "missing.json")


def test_segments_ending_before_they_start_are_read_and_counted_in_one_warning(tmp_path, capsys):
    gt = write(tmp_path, "gt.json", {"database": {
        "a": {"subset": "validation", "annotations": [{"segment": [0, 10], "label": "x"},
                                                      {"segment": [20, 18], "label": "x"}]},
        "b": {"subset": "validation", "annotations": [{"segment": [5, 5], "label": "x"}]},
        "c": {"subset": "training", "annotations": [{"segment": [9, 1], "label": "x"}]}}})
    segments, videos = read_activitynet_gt(gt)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(segments) == 3 and segments.ends.tolist() == [10.0, 18.0, 5.0] and videos == ["a", "b"]
    assert err == [f"warning: {gt}: 1 segment with end < start and 1 segment of zero length (first: "
                   "database/a/annotations[1]/segment [20.0, 18.0]); scored with the official tIoU arithmetic: "
                   "intersection 0, so tIoU 0 with any segment, or NaN (a match) where the two lengths sum to 0"]
    assert segments.notes == [err[0][len("warning: "):]]
    pred = write(tmp_path, "pred.json", {"results": {"a": [{"segment": [3, 1], "label": "x", "score": 0.5},
                                                           {"segment": [4, 2], "label": "x", "score": 0.4}]}})
    predictions = read_activitynet_predictions(pred, warn=False)
    assert not capsys.readouterr().err and len(predictions) == 2
    assert predictions.notes[0].startswith(f"{pred}: 2 segments with end < start and 0 segments of zero length "
                                           "(first: results/a[0]/segment [3.0, 1.0])")
    clean, _ = read_activitynet_gt(FIXTURES / "gt.json")
    assert clean.notes == [] and not capsys.readouterr().err


def test_fast_prediction_path_gives_the_exact_readers_columns(tmp_path, monkeypatch):
    import numpy as np

    import seal_transfer.data.formats.activitynet as anet

    rng = np.random.default_rng(0)
    results = {}
    for v in range(30):
        starts = rng.uniform(0, 100, size=int(rng.integers(0, 40)))
        results[f"vid_{v}"] = [{"segment": [float(s), float(s + rng.uniform(0.1, 9)) if i % 3 else int(s) + 2],
                                "label": ["a", "b", 7][i % 3], "score": float(rng.uniform())}
                               for i, s in enumerate(starts)]
    path = write(tmp_path, "p.json", {"results": results})
    fast = read_activitynet_predictions(path)
    monkeypatch.setattr(anet, "_predictions_fast", lambda results, source: None)
    exact = read_activitynet_predictions(path)
    for column in ("video_ids", "starts", "ends", "labels", "scores"):
        assert getattr(fast, column).dtype.kind == getattr(exact, column).dtype.kind
        assert getattr(fast, column).tolist() == getattr(exact, column).tolist(), column
    assert len(fast) == sum(len(items) for items in results.values()) and "7" in fast.labels.tolist()


@pytest.mark.parametrize("item", [{"segment": ["1", "2"], "label": "x", "score": 0.5},
                                  {"segment": [1, 2], "label": "x", "score": "0.5"},
                                  {"segment": [1, 2, 3], "label": "x", "score": 0.5}])
def test_items_the_fast_path_does_not_take_are_judged_by_the_exact_reader(tmp_path, item):
    import seal_transfer.data.formats.activitynet as anet

    path = write(tmp_path, "p.json", {"results": {"a": [{"segment": [0, 1], "label": "x", "score": 0.9}, item]}})
    assert anet._predictions_fast({"a": [item]}, "p") is None
    if len(item["segment"]) == 3:
        with pytest.raises(UserError, match=r"results/a\[1\]/segment: expected \[start, end\]"):
            read_activitynet_predictions(path)
    else:  # numbers written as strings: the exact reader accepts them, as float() does
        assert read_activitynet_predictions(path).ends.tolist() == [1.0, 2.0]
