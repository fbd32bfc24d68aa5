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
from seal_transfer.errors import UserError

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
    from seal_transfer.models.config import ModelConfig
    from seal_transfer.models.slowfast import build_detector

    model = build_detector(ModelConfig(preset="tiny"), num_classes)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, path)
    return path


def _frame_folders(tmp: Path, world: Path) -> Path:
    """The private AVA copy with PySlowFast frame folders, `frames/{vid}/{vid}_000001.jpg` (1-based), made from
    the world's videos once per session and copied in; use with `data.target.frame_dir=frames`."""
    root = _ava(tmp, world)
    if not (root / "frames").exists():
        cache = world.parent / "ava_frame_folders"
        if not cache.exists():
            from torchvision.io import write_jpeg

            from seal_transfer.data.video import VideoSource, probe_video

            building = world.parent / f".ava_frame_folders.{os.getpid()}"
            for video in sorted((world / "ava" / "videos").glob("*.mp4")):
                folder = building / video.stem
                folder.mkdir(parents=True)
                frames = VideoSource(video).read(np.arange(probe_video(video).num_frames))
                for i, frame in enumerate(frames):
                    image = torch.from_numpy(frame).permute(2, 0, 1).contiguous()
                    write_jpeg(image, str(folder / f"{video.stem}_{i + 1:06d}.jpg"), quality=90)
            building.rename(cache)
        shutil.copytree(cache, root / "frames")
    return root


def _frames_target(tmp: Path, world: Path) -> list[str]:
    return [f"data.target.root={_frame_folders(tmp, world)}", "data.target.frame_dir=frames"]


def _append_rows(path: Path, *rows: str) -> None:
    path.write_text(path.read_text() + "".join(f"{row}\n" for row in rows))


def _set_last_keyframe(meta: Path, video_id: str, last: str) -> None:
    """video_meta.csv: give one video a later last keyframe, so a late timestamp passes the range check."""
    lines = meta.read_text().splitlines()
    for i, line in enumerate(lines):
        fields = line.split(",")
        if fields[0] == video_id:
            fields[4] = last
            lines[i] = ",".join(fields)
    meta.write_text("\n".join(lines) + "\n")


def _truncated_mkv(video: Path) -> Path:
    """Replace `video` (mp4) by the first half of an mkv of the same frames: it opens, and its header still
    promises every frame (an mp4 cut short does not even open: its index sits at the end)."""
    from seal_transfer.data.video import VideoSource, probe_video, write_video

    mkv = video.with_suffix(".mkv")
    write_video(mkv, VideoSource(video).read(np.arange(probe_video(video).num_frames)), fps=15, gop_size=15)
    video.unlink()
    mkv.write_bytes(mkv.read_bytes()[: mkv.stat().st_size // 2])
    return mkv


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


def c_eval_labelmap_missing(tmp: Path, world: Path) -> Case:
    lm = _ava(tmp, world) / "annotations" / "ava_action_list_v2.2_for_activitynet_2019.pbtxt"
    lm.unlink()  # it used to fall back to all classes silently: another mAP
    return Case("finetune", _target(tmp, world), [str(lm), "file not found", "config key 'data.target.eval_labelmap'",
                                                  "data.target.eval_labelmap=all"])


def c_exclusions_missing(tmp: Path, world: Path) -> Case:
    excl = _ava(tmp, world) / "annotations" / "ava_val_excluded_timestamps_v2.2.csv"
    excl.unlink()  # it used to count as "no exclusions" silently
    return Case("finetune", _target(tmp, world), [str(excl), "file not found", "config key 'data.target.exclusions'",
                                                  "data.target.exclusions=null"])


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


def c_video_truncated_but_openable(tmp: Path, world: Path) -> Case:
    mkv = _truncated_mkv(_first_train_video(tmp, world))  # keyframes 904-906 lie past the cut (frame 59): 3 of 10
    return Case("finetune", _target(tmp, world), ["target train: 3 of 10 keyframes cannot be used",
                                                  "data.max_broken_fraction=0.01", f"{mkv}: keyframe 0904 is frame 60",
                                                  "past the last decodable frame", "truncated",
                                                  "header promises 120 frames"])


def c_timestamp_after_video_end(tmp: Path, world: Path) -> Case:
    gt = _train_gt(tmp, world)
    vid = _first_train_video(tmp, world).stem
    _set_last_keyframe(_ava(tmp, world) / "annotations" / "video_meta.csv", vid, "1798")
    _append_rows(gt, f"{vid},1500,0.100,0.100,0.500,0.900,1,0")  # the video ends at second 908
    return Case("finetune", _target(tmp, world), ["target train: 1 of 11 keyframes cannot be used",
                                                  f"{vid}.mp4: keyframe 1500 is frame 9000, outside the video "
                                                  "(frames 0..119, seconds 900..908)", str(gt)])


def c_timestamp_outside_keyframe_range(tmp: Path, world: Path) -> Case:
    gt = _train_gt(tmp, world)
    vid = _first_train_video(tmp, world).stem
    _append_rows(gt, f"{vid},0850,0.100,0.100,0.500,0.900,1,0")
    return Case("finetune", _target(tmp, world), ["1 of 11 keyframes cannot be used",
                                                  "keyframe 0850 is outside the keyframe range 902..906",
                                                  "video_meta.csv"])


def c_frames_gap(tmp: Path, world: Path) -> Case:
    args = _frames_target(tmp, world)
    vid = _first_train_video(tmp, world).stem
    (_ava(tmp, world) / "frames" / vid / f"{vid}_000061.jpg").unlink()  # frame 60, keyframe 0904's own frame
    return Case("finetune", args, ["target train: 1 of 10 keyframes cannot be used",
                                   f"frames/{vid}: keyframe 0904 needs frame 60, but {vid}_000061.jpg is missing"])


def c_frame_folder_missing(tmp: Path, world: Path) -> Case:
    args = _frames_target(tmp, world)
    vid = _first_train_video(tmp, world).stem
    shutil.rmtree(_ava(tmp, world) / "frames" / vid)
    return Case("finetune", args, [f"frames/{vid}: frame folder does not exist", "data.max_broken_fraction"])


def c_frame_decode_error_in_worker(tmp: Path, world: Path) -> Case:
    args = _frames_target(tmp, world)
    vid = _first_train_video(tmp, world).stem
    jpg = _ava(tmp, world) / "frames" / vid / f"{vid}_000046.jpg"  # keyframe 0903's own frame
    jpg.write_bytes(b"not a jpeg")  # listed like any frame, found only when a DataLoader worker decodes it
    return Case("finetune", [*args, "data.num_workers=1"], [str(jpg), "cannot decode jpg"])


def c_video_id_escapes_root(tmp: Path, world: Path) -> Case:
    gt = _train_gt(tmp, world)
    fields = gt.read_text().splitlines()[0].split(",")
    _edit_line(gt, 1, _row(fields, vid="../../etc/passwd"))
    return Case("finetune", _target(tmp, world), ["../../etc/passwd", "not a plain name"])


CASES: dict[str, Maker] = {name[2:]: fn for name, fn in globals().items() if name.startswith("c_") and callable(fn)}
SUBPROCESS_CASES = ["unknown_key", "lambda_above_one", "csv_column_count", "ckpt_truncated", "video_zero_bytes",
                    "frame_decode_error_in_worker"]


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
    from seal_transfer.config.loader import load_config
    from seal_transfer.data.datamodules import make_keyframe_split
    from seal_transfer.data.domains import load_target_split
    from seal_transfer.models.config import clip_spec

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
    made = make_keyframe_split(cfg, split, clip=clip_spec(cfg.model), train=True, what="target train")
    assert len(made.index) > 0


# ------------------------------------------------------------------ broken videos inside a dataset are counted


def test_broken_video_below_limit_is_skipped_and_counted(tmp_path: Path, tiny_world: Path) -> None:
    from seal_transfer.config import Config
    from seal_transfer.config.loader import load_config
    from seal_transfer.data.datamodules import make_keyframe_split
    from seal_transfer.data.domains import load_target_split
    from seal_transfer.models.config import clip_spec

    video = _first_train_video(tmp_path, tiny_world)
    video.write_bytes(b"")
    cfg = load_config(Config, [SMOKE], [*_argv(Case("finetune", [], []), tmp_path, tiny_world)[2:],
                                        *_target(tmp_path, tiny_world), "data.max_broken_fraction=0.5"])
    split = load_target_split(cfg, "train")
    made = make_keyframe_split(cfg, split, clip=clip_spec(cfg.model), train=True, what="target train")
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

    def poisoned(*args):  # finite in epoch 0, NaN from epoch 1 on
        value = real_loss(*args)
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


# -------------------------------------------- keyframes that cannot be decoded are skipped, counted and not scored


def _detected_keyframes(stage: Path) -> set[tuple[str, str]]:
    return {tuple(row.split(",")[:2]) for row in (stage / "val_detections.csv").read_text().splitlines()}


def _val_keyframes(root: Path) -> set[tuple[str, str]]:
    rows = (root / "annotations" / "ava_val_v2.2.csv").read_text().splitlines()
    excluded = (root / "annotations" / "ava_val_excluded_timestamps_v2.2.csv").read_text().splitlines()
    return {tuple(row.split(",")[:2]) for row in rows} - {tuple(row.split(",")) for row in excluded}


def _finetune(tmp: Path, world: Path, capsys: pytest.CaptureFixture, *args: str) -> tuple[dict, str]:
    argv = [*_argv(Case("finetune", [], []), tmp, world), "data.max_broken_fraction=0.5", *args]
    code = guarded_main(finetune.main, argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads((tmp / "run" / "finetune" / "metrics.json").read_text()), out


@pytest.mark.e2e
def test_frame_gap_and_timestamps_outside_the_video_are_skipped_and_counted(
    tmp_path: Path, tiny_world: Path, capsys: pytest.CaptureFixture
) -> None:
    args = _frames_target(tmp_path, tiny_world)
    root = _ava(tmp_path, tiny_world)
    gt = root / "annotations" / "ava_val_v2.2.csv"
    vid = gt.read_text().split(",", 1)[0]
    (root / "frames" / vid / f"{vid}_000061.jpg").unlink()  # a gap at frame 60: keyframe 0904's own frame
    _set_last_keyframe(root / "annotations" / "video_meta.csv", vid, "1798")
    _append_rows(gt, f"{vid},1500,0.100,0.100,0.500,0.900,1,0",  # the video ends at second 908
                 f"{vid},0850,0.100,0.100,0.500,0.900,1,0",  # before the video and its keyframe range
                 f"{vid},0902,0.600,0.100,0.900,0.900,99,7")  # a label id in no label map (item 12)
    metrics, out = _finetune(tmp_path, tiny_world, capsys, *args)
    assert metrics["skipped_keyframes"] == 3 and metrics["broken_videos"] == []
    folder = root / "frames" / vid
    assert f"[target val] skipping 3 of 11 keyframes that cannot be decoded as asked, first: {folder}: " \
           "keyframe 0850 is outside the keyframe range 902..1798" in out
    problems = "\n".join(metrics["data_problems"])
    assert f"keyframe 0904 needs frame 60, but {vid}_000061.jpg is missing (a gap)" in problems
    assert "keyframe 1500 is frame 9000, outside the video (frames 0..119, seconds 900..908)" in problems
    skipped = {(vid, "0904"), (vid, "1500"), (vid, "0850")}
    assert _detected_keyframes(tmp_path / "run" / "finetune") == _val_keyframes(root) - skipped
    assert metrics["val_keyframes"] == 8
    assert metrics["val_gt_rows_unknown_action"] == 1
    assert f"ignores, as the official evaluator does, 1 GT rows whose action id is not in {root}" in out
    assert f"(first: {gt}: row {len(gt.read_text().splitlines())} ({vid},902, action_id 99))" in out


@pytest.mark.e2e
def test_truncated_video_keyframes_past_the_cut_are_skipped_and_counted(
    tmp_path: Path, tiny_world: Path, capsys: pytest.CaptureFixture
) -> None:
    root = _ava(tmp_path, tiny_world)
    vid = (root / "annotations" / "ava_val_v2.2.csv").read_text().split(",", 1)[0]
    mkv = _truncated_mkv(root / "videos" / f"{vid}.mp4")
    from seal_transfer.data.video import VideoSource

    last = VideoSource(mkv).last_decodable_frame(119)
    assert 52 <= last < 60  # keyframe 0903 (frames 37..52) decodes, 0904 (frame 60) does not
    metrics, out = _finetune(tmp_path, tiny_world, capsys, *_target(tmp_path, tiny_world))
    assert metrics["skipped_keyframes"] == 2 and metrics["broken_videos"] == []  # 0904, 0906 (0905 is excluded)
    assert f"first: {mkv}: keyframe 0904 is frame 60, past the last decodable frame {last}: the video is truncated " \
           "(its header promises 120 frames)" in out
    assert _detected_keyframes(tmp_path / "run" / "finetune") == _val_keyframes(root) - {(vid, "0904"), (vid, "0906")}


def test_seal_video_shorter_than_its_nframes_is_skipped_and_counted(tmp_path: Path, tiny_world: Path) -> None:
    from seal_transfer.config import Config
    from seal_transfer.config.loader import load_config
    from seal_transfer.data.datamodules import make_keyframe_split
    from seal_transfer.data.domains import load_source_split
    from seal_transfer.data.video import VideoSource, write_video
    from seal_transfer.models.config import clip_spec

    seal = _seal(tmp_path, tiny_world)
    tubes = json.loads((seal / "seal_tubes_train.json").read_text())["database"]
    vid = sorted(tubes)[0]
    video = seal / "videos" / f"{vid}.mp4"
    half = tubes[vid]["nframes"] // 2
    write_video(video, VideoSource(video).read(np.arange(half)), fps=tubes[vid]["fps"])  # a healthy, shorter file
    base = [*_argv(Case("pretrain", [], []), tmp_path, tiny_world)[2:], f"data.source.root={seal}"]
    cfg = load_config(Config, [SMOKE], [*base, "data.max_broken_fraction=0.5"])
    made = make_keyframe_split(cfg, load_source_split(cfg, "train"), clip=clip_spec(cfg.model), train=True,
                               what="SEAL Clips train")
    assert made.skipped_keyframes and not made.broken_videos
    assert f"past the last decodable frame {half - 1}: the video is truncated (nframes in seal_tubes_train.json " \
           f"promises {tubes[vid]['nframes']} frames)" in made.skipped_keyframes[0]
    fps = tubes[vid]["fps"]
    kept = made.index.timestamps[np.asarray(made.index.video_ids) == vid]
    assert kept.size and (np.rint(kept * fps) + made.dataset.clip.num_frames // 2 < half + 1).all()
    strict = load_config(Config, [SMOKE], base)
    with pytest.raises(UserError, match=rf"SEAL Clips train: {len(made.skipped_keyframes)} of \d+ keyframes cannot"):
        make_keyframe_split(strict, load_source_split(strict, "train"), clip=clip_spec(strict.model), train=True,
                            what="SEAL Clips train")


def test_doing_without_eval_labelmap_or_exclusions_is_explicit(tmp_path: Path, tiny_world: Path) -> None:
    from seal_transfer.config import Config
    from seal_transfer.config.loader import load_config
    from seal_transfer.data.domains import load_target_split

    ann = _ava(tmp_path, tiny_world) / "annotations"
    (ann / "ava_action_list_v2.2_for_activitynet_2019.pbtxt").unlink()
    (ann / "ava_val_excluded_timestamps_v2.2.csv").unlink()
    base = [*_argv(Case("finetune", [], []), tmp_path, tiny_world)[2:], *_target(tmp_path, tiny_world)]
    cfg = load_config(Config, [SMOKE], [*base, "data.target.eval_labelmap=all", "data.target.exclusions=null"])
    val = load_target_split(cfg, "val")
    assert val.eval_labelmap is not None and val.eval_labelmap.ids == val.labelmap.ids
    assert val.exclusions == set()
    assert load_target_split(load_config(Config, [SMOKE], base), "train").eval_labelmap is None  # train needs neither
