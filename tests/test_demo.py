"""`python -m seal_transfer.demo`: a tiny detector on a tiny video writes an annotated mp4 + GIF; checkpoints of
both kinds load; drawing puts boxes and labels on the frame; user mistakes exit 2 with one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seal_transfer.cli import guarded_main
from seal_transfer.data.box_plan import box_plan
from seal_transfer.data.formats.ava import AvaTable, LabelMap, read_ava_csv, write_ava_csv, write_labelmap
from seal_transfer.data.video import open_video_source, write_video
from seal_transfer.demo import main
from seal_transfer.engine.inference import load_scorer
from seal_transfer.models.config import ModelConfig
from seal_transfer.models.slowfast import build_detector
from seal_transfer.report.frames import draw_detections, label_font, resize_frames

CLASS_IDS = [3, 5, 9]
NAMES = ["walk", "wave arm", "jump"]
MODEL_CFG = {"preset": "tiny"}


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("demo")
    torch.manual_seed(0)
    model = build_detector(ModelConfig(**MODEL_CFG), len(CLASS_IDS))
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "seal_transfer": {"class_ids": CLASS_IDS, "class_names": NAMES,
                                                       "model": MODEL_CFG}}, root / "model.pt")
    torch.save({"state_dict": state, "pytorch-lightning_version": "2.6",
                "hyper_parameters": {"model_cfg": MODEL_CFG, "optim_cfg": {"loss": "bce"}, "num_classes": 3,
                                     "class_ids": CLASS_IDS, "pose_columns": []}}, root / "last.ckpt")
    (root / "config.yaml").write_text("data:\n  augment:\n    eval_short_side: 64\n", encoding="utf-8")
    # A 3-second, 8 fps clip: a bright square moving right on grey, in an AVA-like folder layout.
    frames = np.full((24, 72, 96, 3), 90, np.uint8)
    for i in range(24):
        frames[i, 20:60, 10 + 2 * i: 30 + 2 * i] = 230
    videos = root / "ava" / "videos"
    write_video(videos / "clipA.mp4", frames, 8.0)
    boxes = AvaTable.from_columns(["clipA"] * 3, [1.0, 2.0, 2.0], [[0.1, 0.2, 0.5, 0.9], [0.2, 0.2, 0.6, 0.9],
                                                                  [0.6, 0.1, 0.9, 0.5]],
                                  scores=[0.95, 0.9, 0.3])
    write_ava_csv(root / "boxes.csv", boxes, "boxes")
    # The same boxes in movie time (AVA cut file: frame 0 = second 900) where the demo finds them by itself.
    annotations = root / "ava" / "annotations"
    moved = AvaTable.from_columns(boxes.video_ids, boxes.timestamps + 900, boxes.boxes, scores=boxes.scores)
    write_ava_csv(annotations / "ava_val_predicted_boxes.csv", moved, "boxes")
    (annotations / "video_meta.csv").write_text(
        "video_id,fps,time_offset,first_keyframe,last_keyframe\nclipA,8,900,901,902\n", encoding="utf-8")
    gt = AvaTable.from_columns(["clipA"] * 2, [901.0, 901.0], [[0.1, 0.2, 0.5, 0.9]] * 2, [3, 9], [0, 0])
    write_ava_csv(root / "gt.csv", gt, "gt")
    write_labelmap(root / "labels.pbtxt", LabelMap(CLASS_IDS, {3: "a", 5: "b", 9: "c"}))
    return {"root": root, "video": videos / "clipA.mp4", "model": root / "model.pt", "ckpt": root / "last.ckpt",
            "boxes": root / "boxes.csv", "gt": root / "gt.csv", "labels": root / "labels.pbtxt"}


def test_demo_writes_annotated_video_and_gif(assets: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.mp4"
    dets = tmp_path / "dets.csv"
    code = main([str(assets["video"]), "--checkpoint", str(assets["model"]), "--boxes", str(assets["boxes"]),
                 "--out", str(out), "--detections", str(dets), "--no-progress", "--display-short-side", "144",
                 "--time-offset", "0"])
    assert code == 0
    with open_video_source(out) as source:
        info = source.info
        assert (info.num_frames, info.fps) == (24, 8.0)
        assert (info.width, info.height) == (192, 144)  # upscaled to the display short side
        first, later = source.read(np.array([0, 12]))
    with open_video_source(assets["video"]) as source:
        plain = resize_frames(source.read(np.array([0, 12])), (192, 144)).astype(int)
    untouched = np.abs(first.astype(int) - plain[0]).mean()  # frame 0 precedes the first keyframe with boxes
    annotated = np.abs(later.astype(int) - plain[1]).mean()  # boxes and labels drawn from second 1 on
    assert untouched < 2.0 and annotated > untouched + 1.0
    from PIL import Image

    with Image.open(out.with_suffix(".gif")) as gif:
        assert gif.n_frames >= 2 and gif.size[0] <= 320
    rows = read_ava_csv(dets, "detections")
    assert len(rows) == 2 * len(CLASS_IDS)  # the 0.3-score box is below --box-threshold 0.8
    assert set(rows.action_ids.tolist()) == set(CLASS_IDS)
    assert np.all((rows.scores >= 0) & (rows.scores <= 1))
    assert sorted(set(rows.timestamps.tolist())) == [1.0, 2.0]
    summary = capsys.readouterr().out
    assert "demo finished" in summary and "2 scored on 2/3 keyframes" in summary


def test_demo_finds_world_boxes_and_timing_by_itself(assets: dict[str, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "auto.mp4"
    code = main([str(assets["video"]), "--checkpoint", str(assets["ckpt"]), "--labelmap", str(assets["labels"]),
                 "--out", str(out), "--no-gif", "--no-progress", "--display-short-side", "0", "--box-threshold", "0"])
    assert code == 0 and out.is_file() and not out.with_suffix(".gif").exists()
    summary = capsys.readouterr().out
    assert "time offset 900" in summary and "ava_val_predicted_boxes.csv: 3 scored" in summary


def test_demo_draws_gt_boxes(assets: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "gt.mp4"
    code = main([str(assets["video"]), "--checkpoint", str(assets["model"]), "--gt", str(assets["gt"]),
                 "--time-offset", "900", "--out", str(out), "--no-progress", "--display-short-side", "0",
                 "--fps-keyframes", "2"])
    assert code == 0 and out.is_file()


def test_checkpoints_of_both_kinds_load(assets: dict[str, Path]) -> None:
    exported = load_scorer(assets["model"])
    assert exported.class_names == NAMES and exported.class_ids == CLASS_IDS and not exported.notes
    lightning = load_scorer(assets["ckpt"])
    assert lightning.class_names == ["class 3", "class 5", "class 9"] and lightning.notes
    named = load_scorer(assets["ckpt"], labelmap=assets["labels"])
    assert named.class_names == ["a", "b", "c"]
    for a, b in zip(exported.model.state_dict().values(), lightning.model.state_dict().values()):
        assert torch.equal(a, b)


def test_draw_detections_marks_box_and_label() -> None:
    frame = np.zeros((120, 160, 3), np.uint8)
    drawn = draw_detections(frame, np.array([[0.25, 0.5, 0.75, 0.95]], np.float32), [[("walk", 0.9)]], label_font(12))
    assert frame.max() == 0  # the input is not modified
    assert drawn[int(0.95 * 120) - 1, 80].any()  # bottom edge of the box
    assert drawn[int(0.5 * 120) - 5, 45:70].any()  # label block above the box
    assert not drawn[10:40, 5:30].any()  # elsewhere untouched


def test_box_plan_groups_and_thresholds() -> None:
    table = AvaTable.from_columns(["v", "v", "v", "w"], [2.0, 2.0, 3.0, 2.0],
                                  [[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5], [0.1, 0.1, 0.2, 0.2], [0, 0, 1, 1]],
                                  scores=[0.9, 0.9, 0.5, 1.0])
    plan = box_plan(table, "v", 0.8, "x.csv")
    assert plan.timestamps.tolist() == [2.0] and len(plan.boxes[0]) == 1  # duplicate merged, 0.5 dropped
    assert plan.at(2.4, 0.5) == 0 and plan.at(3.0, 0.5) is None


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--video-id", "nope"], "no rows for video id 'nope'"),
        (["--time-offset", "0"], "AVA cut files need --time-offset 900"),
        (["--time-offset", "500"], "plain videos need --time-offset 0"),
        (["--fps-keyframes", "0"], "--fps-keyframes"),
        (["--out", "x.avi"], "--out x.avi"),
        (["--start", "10"], "past the end"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(assets: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                            extra: list[str], message: str) -> None:
    boxes = str(assets["root"] / "ava" / "annotations" / "ava_val_predicted_boxes.csv")
    args = [str(assets["video"]), "--checkpoint", str(assets["model"]), "--boxes", boxes, "--no-progress", *extra]
    assert guarded_main(main, args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and len(err.splitlines()) == 1


def test_bad_inputs_exit_2(assets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.save({"state_dict": {}, "hyper_parameters": {"model_cfg": MODEL_CFG, "num_classes": 4}},
               tmp_path / "classifier.ckpt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "plain.pt")
    cases = [
        ([str(tmp_path / "missing.mp4"), "--checkpoint", str(assets["model"])], "does not exist"),
        ([str(assets["video"]), "--checkpoint", str(tmp_path / "classifier.ckpt")], "clip classifier"),
        ([str(assets["video"]), "--checkpoint", str(tmp_path / "plain.pt")], "no model description"),
        ([str(assets["video"]), "--checkpoint", str(assets["model"]), "--boxes", str(tmp_path / "none.csv")],
         "file not found"),
    ]
    for args, message in cases:
        assert guarded_main(main, [*args, "--no-progress", "--out", str(tmp_path / "o.mp4")]) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
