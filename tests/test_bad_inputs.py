"""Bad input never crashes or corrupts: each malformed file gives one line `error: <source>: <problem>`, exit 2.

Every case copies the tiny synthetic world's AVA (or SEAL) folder into tmp_path, breaks one file, and runs a real
stage CLI on it: most in-process through `guarded_main` (the same code path as `python -m`, minus interpreter
start-up), a handful as real subprocesses. Each asserts exit code 2, exactly one stderr line naming the source
and the problem, no traceback, and that the stage left no metrics.json, model.pt or checkpoint behind.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from seal_transfer import adapt, finetune, pretrain
from seal_transfer.cli import guarded_main

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"
STAGES = {"pretrain": pretrain.main, "adapt": adapt.main, "finetune": finetune.main}


@dataclass
class Case:
    stage: str
    args: list[str]
    expect: list[str]  # substrings the single error line must contain (source, then problem)
    extra_forbidden: list[str] = field(default_factory=list)  # paths (relative to tmp_path) that must not exist


Maker = Callable[[Path, Path], Case]  # (tmp_path, world) -> Case


# ------------------------------------------------------------------------------------------- helpers


def _ava(tmp: Path, world: Path) -> Path:
    """A private, writable copy of the world's AVA folder, used as data.target.root."""
    root = tmp / "ava"
    if not root.exists():
        shutil.copytree(world / "ava", root)
    return root


def _seal(tmp: Path, world: Path) -> Path:
    root = tmp / "seal"
    if not root.exists():
        shutil.copytree(world / "seal", root)
    return root


def _target(tmp: Path, world: Path) -> list[str]:
    return [f"data.target.root={_ava(tmp, world)}"]


def _edit_line(path: Path, line: int, new: str) -> None:
    lines = path.read_text().splitlines()
    lines[line - 1] = new
    path.write_text("\n".join(lines) + "\n")


def _train_gt(tmp: Path, world: Path) -> Path:
    return _ava(tmp, world) / "annotations" / "ava_train_v2.2.csv"


def _first_train_video(tmp: Path, world: Path) -> Path:
    vid = _train_gt(tmp, world).read_text().split(",", 1)[0]
    return _ava(tmp, world) / "videos" / f"{vid}.mp4"


def _gt_row_case(new_row: Callable[[list[str]], str], *expect: str, line: int = 3) -> Maker:
    """Replace line `line` of the training GT CSV with `new_row(fields of that line)`."""

    def make(tmp: Path, world: Path) -> Case:
        gt = _train_gt(tmp, world)
        fields = gt.read_text().splitlines()[line - 1].split(",")
        _edit_line(gt, line, new_row(fields))
        return Case("finetune", _target(tmp, world), [f"{gt}:{line}:", *expect])

    return make


def _row(fields: list[str], **changes: str) -> str:
    names = ["vid", "ts", "x1", "y1", "x2", "y2", "action", "person"]
    out = dict(zip(names, fields))
    out.update(changes)
    return ",".join(out[n] for n in names)


def _small_ckpt(path: Path, num_classes: int) -> Path:
    from seal_transfer.models.slowfast import ModelConfig, build_detector

    model = build_detector(ModelConfig(preset="tiny"), num_classes)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, path)
    return path


# ------------------------------------------------------------------------------------------- config cases


def c_unknown_key(tmp: Path, world: Path) -> Case:
    return Case("pretrain", ["trainer.max_epoch=3"], ["trainer.max_epoch", "unknown config key", "max_epochs"])


def c_wrong_type(tmp: Path, world: Path) -> Case:
    return Case("pretrain", ["trainer.max_epochs=lots"], ["trainer.max_epochs", "lots"])


def c_lambda_zero(tmp: Path, world: Path) -> Case:
    return Case("adapt", ["adapt.lambda_c=0"], ["adapt.lambda_c"])


def c_lambda_above_one(tmp: Path, world: Path) -> Case:
    return Case("adapt", ["adapt.lambda_c=1.5"], ["adapt.lambda_c", "1.5"])


def c_missing_config_file(tmp: Path, world: Path) -> Case:
    return Case("pretrain", ["--config", str(tmp / "nope.yaml")], [str(tmp / "nope.yaml"), "not found"])


def c_yaml_unknown_key(tmp: Path, world: Path) -> Case:
    cfg = tmp / "bad.yaml"
    cfg.write_text("optim:\n  learning_rate: 0.1\n")
    return Case("pretrain", ["--config", str(cfg)], [str(cfg), "optim.learning_rate"])


def c_yaml_syntax(tmp: Path, world: Path) -> Case:
    cfg = tmp / "broken.yaml"
    cfg.write_text("trainer:\n  max_epochs: 1\n bad_indent: [\n")
    return Case("pretrain", ["--config", str(cfg)], [f"{cfg}:", "not valid YAML"])


def c_yaml_not_mapping(tmp: Path, world: Path) -> Case:
    cfg = tmp / "list.yaml"
    cfg.write_text("- 1\n- 2\n")
    return Case("pretrain", ["--config", str(cfg)], [str(cfg), "mapping"])


def c_target_root_missing(tmp: Path, world: Path) -> Case:
    return Case("finetune", [f"data.target.root={tmp / 'no_such_dir'}"], [str(tmp / "no_such_dir"), "not a folder"])


def c_init_missing(tmp: Path, world: Path) -> Case:
    return Case("finetune", [*_target(tmp, world), f"init={tmp / 'w.pt'}"], [str(tmp / "w.pt"), "not found"])


def c_negative_broken_fraction(tmp: Path, world: Path) -> Case:
    return Case("pretrain", ["data.max_broken_fraction=-0.5"], ["data.max_broken_fraction"])


# --------------------------------------------------------------------------------------------- CSV cases

c_csv_column_count = _gt_row_case(lambda f: ",".join(f[:7]), "expected 8 columns", "found 7")
c_csv_non_numeric = _gt_row_case(lambda f: _row(f, ts="09O2"), "timestamp '09O2' is not a number")
c_csv_box_outside = _gt_row_case(lambda f: _row(f, y2="1.700"), "y2 1.7 is outside [0, 1]")
c_csv_nan = _gt_row_case(lambda f: _row(f, x1="nan"), "x1 'nan' is not finite")
c_csv_bad_person = _gt_row_case(lambda f: _row(f, person="3_"), "person_id '3_' is not a number")
c_csv_zero_action = _gt_row_case(lambda f: _row(f, action="0"), "action_id 0 is not a positive label id")
c_csv_empty_video_id = _gt_row_case(lambda f: _row(f, vid=""), "video_id is empty")


def c_csv_unknown_action(tmp: Path, world: Path) -> Case:
    gt = _train_gt(tmp, world)
    fields = gt.read_text().splitlines()[1].split(",")
    _edit_line(gt, 2, _row(fields, action="999"))
    return Case("finetune", _target(tmp, world), [str(gt), "row 2", "action_id 999", "not in label map"])


def c_csv_duplicate_rows(tmp: Path, world: Path) -> Case:
    gt = _train_gt(tmp, world)
    lines = gt.read_text().splitlines()
    gt.write_text("\n".join([*lines, lines[4]]) + "\n")
    return Case("finetune", _target(tmp, world), [str(gt), "row 5", "appears more than once"])


def c_csv_not_utf8(tmp: Path, world: Path) -> Case:
    gt = _train_gt(tmp, world)
    gt.write_bytes(b"\xff\xfe\x00garbage\x9c\n")
    return Case("finetune", _target(tmp, world), [str(gt), "not a UTF-8 text file"])


def c_csv_missing(tmp: Path, world: Path) -> Case:
    gt = _train_gt(tmp, world)
    gt.unlink()
    return Case("finetune", _target(tmp, world), [str(gt), "file not found", "data.target.train_gt"])


def c_video_meta_bad_fps(tmp: Path, world: Path) -> Case:
    meta = _ava(tmp, world) / "annotations" / "video_meta.csv"
    fields = meta.read_text().splitlines()[1].split(",")
    fields[1] = "0"
    _edit_line(meta, 2, ",".join(fields))
    return Case("finetune", _target(tmp, world), [f"{meta}:2:", "fps 0.0 must be positive"])


def c_exclusions_columns(tmp: Path, world: Path) -> Case:
    excl = _ava(tmp, world) / "annotations" / "ava_val_excluded_timestamps_v2.2.csv"
    excl.write_text("vid1,0902,extra\n")
    return Case("finetune", _target(tmp, world), [f"{excl}:1:", "expected 2 columns"])


def c_detector_boxes_bad_score(tmp: Path, world: Path) -> Case:
    boxes = _ava(tmp, world) / "annotations" / "ava_val_predicted_boxes.csv"
    lines = boxes.read_text().splitlines()
    fields = lines[0].split(",")
    fields[-1] = "high"
    _edit_line(boxes, 1, ",".join(fields))
    args = [*_target(tmp, world), "data.target.val_boxes=annotations/ava_val_predicted_boxes.csv"]
    return Case("finetune", args, [f"{boxes}:1:", "score 'high' is not a number"])


# ------------------------------------------------------------------------------------------ label maps


def _labelmap_case(text: str, *expect: str) -> Maker:
    def make(tmp: Path, world: Path) -> Case:
        lm = _ava(tmp, world) / "annotations" / "ava_action_list_v2.2.pbtxt"
        lm.write_text(text)
        return Case("finetune", _target(tmp, world), [str(lm), *expect])

    return make


c_labelmap_garbage = _labelmap_case("this is not a label map\n", "not an AVA label map")
c_labelmap_duplicate_id = _labelmap_case(
    'label { name: "a" label_id: 1 }\nlabel { name: "b" label_id: 1 }\n', ":2:", "id 1 appears twice"
)
c_labelmap_non_integer = _labelmap_case('item { name: "a" id: one }\n', ":1:", "id 'one' is not an integer")
c_labelmap_no_name = _labelmap_case("item { id: 3 }\n", ":1:", "has no name")


# ----------------------------------------------------------------------------------- JSON and box files


def c_tubes_json_truncated(tmp: Path, world: Path) -> Case:
    seal = _seal(tmp, world)
    tubes = seal / "seal_tubes_train.json"
    tubes.write_text(tubes.read_text()[:200])
    return Case("pretrain", [f"data.source.root={seal}"], [str(tubes), "JSON"])


def c_tubes_json_missing_key(tmp: Path, world: Path) -> Case:
    seal = _seal(tmp, world)
    tubes = seal / "seal_tubes_train.json"
    data = json.loads(tubes.read_text())
    del data["database"]
    tubes.write_text(json.dumps(data))
    return Case("pretrain", [f"data.source.root={seal}"], [tubes.name, "database"])


def c_tubes_boxes_not_npz(tmp: Path, world: Path) -> Case:
    seal = _seal(tmp, world)
    npz = seal / "seal_tubes_train_boxes.npz"
    npz.write_bytes(b"not a zip archive")
    return Case("pretrain", [f"data.source.root={seal}"], [str(npz)])


def c_proposals_pickle_untrusted(tmp: Path, world: Path) -> Case:
    pkl = _ava(tmp, world) / "annotations" / "val_boxes.pkl"
    with pkl.open("wb") as handle:
        pickle.dump({"vid,0902": np.zeros((1, 5), np.float32)}, handle)
    args = [*_target(tmp, world), "data.target.val_boxes=annotations/val_boxes.pkl"]
    return Case("finetune", args, [str(pkl), "pickle", "data.target.trust_pickle"])


# ------------------------------------------------------------------------------------------ checkpoints


def c_ckpt_truncated(tmp: Path, world: Path) -> Case:
    path = _small_ckpt(tmp / "w.pt", 9)
    path.write_bytes(path.read_bytes()[:5000])
    return Case("finetune", [*_target(tmp, world), f"init={path}"], [str(path), "truncated or not a checkpoint"])


def c_ckpt_not_a_checkpoint(tmp: Path, world: Path) -> Case:
    path = tmp / "w.pt"
    path.write_text("hello, I am text\n")
    return Case("finetune", [*_target(tmp, world), f"init={path}"], [str(path), "not a readable PyTorch checkpoint"])


def c_ckpt_wrong_layout(tmp: Path, world: Path) -> Case:
    path = tmp / "w.pt"
    torch.save({"epoch": 3, "weights": [1, 2, 3]}, path)
    return Case("finetune", [*_target(tmp, world), f"init={path}"], [str(path), "no weights found"])


def c_ckpt_foreign_network(tmp: Path, world: Path) -> Case:
    path = tmp / "w.pt"
    torch.save({"state_dict": {"encoder.layer.0.weight": torch.zeros(2, 2)}}, path)
    return Case("finetune", [*_target(tmp, world), f"init={path}"], [str(path)])


def c_ckpt_wrong_class_count(tmp: Path, world: Path) -> Case:
    path = _small_ckpt(tmp / "w.pt", 3)
    return Case("adapt", [f"init={path}"], [str(path), "does not fit the 9 source classes"],
                extra_forbidden=["run/adapt/round_1/pseudo_labels.csv"])


def c_ckpt_pickle_without_opt_in(tmp: Path, world: Path) -> Case:
    path = tmp / "legacy.ckpt"
    state = torch.load(_small_ckpt(tmp / "w.pt", 9), weights_only=True)
    state["note"] = Path("a-python-object")  # anything beyond tensors/containers needs full pickle
    torch.save(state, path)
    return Case("finetune", [*_target(tmp, world), f"init={path}"], [str(path), "allow_pickle"])


# ----------------------------------------------------------------------------------------------- videos


def _video_case(breaker: Callable[[Path], None], *expect: str) -> Maker:
    def make(tmp: Path, world: Path) -> Case:
        video = _first_train_video(tmp, world)
        breaker(video)
        return Case("finetune", _target(tmp, world), [str(video), "data.max_broken_fraction", *expect])

    return make


def _truncate(video: Path) -> None:
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 5])


def _short_video(video: Path) -> None:
    from seal_transfer.data.video import write_video

    write_video(video, np.zeros((3, 64, 64, 3), np.uint8), fps=15)


c_video_missing = _video_case(lambda v: v.unlink(), "does not exist")
c_video_zero_bytes = _video_case(lambda v: v.write_bytes(b""), "0 bytes")
c_video_truncated = _video_case(_truncate)
c_video_not_a_video = _video_case(lambda v: v.write_text("just text\n" * 100), "cannot open as a video")
c_video_too_short = _video_case(_short_video, "frames")


def c_video_id_escapes_root(tmp: Path, world: Path) -> Case:
    gt = _train_gt(tmp, world)
    fields = gt.read_text().splitlines()[0].split(",")
    _edit_line(gt, 1, _row(fields, vid="../../etc/passwd"))
    return Case("finetune", _target(tmp, world), ["../../etc/passwd", "not a plain name"])


CASES: dict[str, Maker] = {name[2:]: fn for name, fn in globals().items() if name.startswith("c_") and callable(fn)}
SUBPROCESS_CASES = ["unknown_key", "lambda_above_one", "csv_column_count", "ckpt_truncated", "video_zero_bytes"]


def test_suite_is_big_enough() -> None:
    assert len(CASES) >= 30


# ------------------------------------------------------------------------------------------- running


def _argv(case: Case, tmp: Path, world: Path) -> list[str]:
    return [
        "--config",
        str(SMOKE),
        f"run_dir={tmp / 'run'}",
        f"data.cache_dir={world.parent}",
        "trainer.enable_progress_bar=false",
        "data.num_workers=0",
        *case.args,
    ]


def _check(case: Case, code: int, err: str, tmp: Path) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, f"expected one stderr line, got:\n{err}"
    assert lines[0].startswith("error: ")
    for fragment in case.expect:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    run = tmp / "run"
    leftovers = [p for pattern in ("metrics.json", "model.pt", "*.ckpt") for p in run.rglob(pattern)]
    assert not leftovers, leftovers
    for rel in case.extra_forbidden:
        assert not (tmp / rel).exists(), rel


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_in_process(name: str, tmp_path: Path, tiny_world: Path, capsys: pytest.CaptureFixture) -> None:
    case = CASES[name](tmp_path, tiny_world)
    code = guarded_main(STAGES[case.stage], _argv(case, tmp_path, tiny_world))
    _, err = capsys.readouterr()
    _check(case, code, err, tmp_path)


@pytest.mark.e2e
@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_input_real_cli(name: str, tmp_path: Path, tiny_world: Path) -> None:
    case = CASES[name](tmp_path, tiny_world)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", f"seal_transfer.{case.stage}", *_argv(case, tmp_path, tiny_world)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    _check(case, result.returncode, result.stderr, tmp_path)


# ------------------------------------------------- rows the official reader accepts are read, with one warning


def test_inverted_train_box_is_read_with_one_warning(tmp_path: Path, tiny_world: Path, capsys) -> None:
    """x2 < x1 in the training GT used to be refused (a bad-input case); the official AVA reader reads such rows,
    so the training reader does too and says so in one line."""
    from seal_transfer.config import Config
    from seal_transfer.configuration import load_config
    from seal_transfer.data.datamodules import make_keyframe_split
    from seal_transfer.data.domains import load_target_split

    gt = _train_gt(tmp_path, tiny_world)
    fields = gt.read_text().splitlines()[2].split(",")
    _edit_line(gt, 3, _row(fields, x1="0.800", x2="0.200"))
    cfg = load_config(Config, [SMOKE], [*_argv(Case("finetune", [], []), tmp_path, tiny_world)[2:],
                                        *_target(tmp_path, tiny_world)])
    split = load_target_split(cfg, "train")
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert err == [f"warning: {gt}: 1 row with a box that has x2 < x1 or y2 < y1 and 0 rows with a box of zero width "
                   f"or height (first: line 3, box (0.8, {float(fields[3])}, 0.2, {float(fields[5])})); kept, as the "
                   "official AVA reader keeps them (in evaluation such a ground-truth box counts and is never matched)"]
    np.testing.assert_array_equal(split.table.boxes[2, [0, 2]], np.float32([0.8, 0.2]))
    made = make_keyframe_split(cfg, split, train=True, what="target train")
    assert len(made.index) > 0


# ------------------------------------------------------------------ broken videos inside a dataset are counted


def test_broken_video_below_limit_is_skipped_and_counted(tmp_path: Path, tiny_world: Path) -> None:
    from seal_transfer.config import Config
    from seal_transfer.configuration import load_config
    from seal_transfer.data.datamodules import make_keyframe_split
    from seal_transfer.data.domains import load_target_split

    video = _first_train_video(tmp_path, tiny_world)
    video.write_bytes(b"")
    cfg = load_config(Config, [SMOKE], [*_argv(Case("finetune", [], []), tmp_path, tiny_world)[2:],
                                        *_target(tmp_path, tiny_world), "data.max_broken_fraction=0.5"])
    split = load_target_split(cfg, "train")
    made = make_keyframe_split(cfg, split, train=True, what="target train")
    assert len(made.broken_videos) == 1 and str(video) in made.broken_videos[0]
    assert video.stem not in set(made.index.video_ids)
    assert len(made.index) > 0


# ------------------------------------------------------------------------- NaN loss keeps the last checkpoint


@pytest.mark.e2e
def test_nan_loss_stops_with_clear_error_and_keeps_last_checkpoint(
    tmp_path: Path, tiny_world: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seal_transfer.engine import detection

    real_loss = detection.detection_loss

    def poisoned(logits, targets, pose_columns, loss):  # finite in epoch 0, NaN from epoch 1 on
        value = real_loss(logits, targets, pose_columns, loss)
        return value * float("nan") if poisoned.module.current_epoch >= 1 else value

    real_step = detection.DetectionModule.training_step

    def step(self, batch, batch_idx):
        poisoned.module = self
        return real_step(self, batch, batch_idx)

    monkeypatch.setattr(detection, "detection_loss", poisoned)
    monkeypatch.setattr(detection.DetectionModule, "training_step", step)
    argv = [*_argv(Case("pretrain", [], []), tmp_path, tiny_world), "trainer.max_epochs=2",
            "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]
    code = guarded_main(pretrain.main, argv)
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err
    assert lines[-1].startswith("error: training loss is nan at epoch 1")
    stage = tmp_path / "run" / "pretrain"
    assert not (stage / "metrics.json").exists() and not (stage / "model.pt").exists()
    last = torch.load(stage / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())
