"""SEAL Clips read as given (`data.source.{split}_clips`), alone or mixed with clips cut from SEAL Tubes.

The paper's SEAL Clips also holds videos without tubes (§3.1: v-log videos are "a part source of SEAL Clips"), so
pretraining must read a Clips CSV (AVA layout, centre-frame boxes) and its per-frame boxes directly. The fixtures
are the tiny world's own SEAL files (the real formats): its Clips file was written from its Tubes, so reading the
file must give what cutting the tubes gives, and dropping videos from the Tubes turns them into tube-less videos.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from seal_transfer import pretrain
from seal_transfer.cli import guarded_main
from seal_transfer.config import Config
from seal_transfer.config.loader import load_config
from seal_transfer.data.domains import load_source_split
from seal_transfer.data.formats.ava import AvaTable
from seal_transfer.data.formats.seal import read_seal_tubes, write_seal_tubes

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"


def _seal(tmp: Path, world: Path) -> Path:
    root = tmp / "seal"
    if not root.exists():
        shutil.copytree(world / "seal", root)
    return root


def _cfg(root: Path, *overrides: str):
    return load_config(Config, [SMOKE], [f"data.source.root={root}", *overrides])


def _rows(table: AvaTable, decimals: int = 4) -> list[tuple]:
    return sorted(zip(table.video_ids.tolist(), np.round(table.timestamps, 6).tolist(),
                      [tuple(b) for b in np.round(table.boxes.astype(np.float64), decimals).tolist()],
                      table.action_ids.tolist(), table.person_ids.tolist()))


def _sorted(table: AvaTable) -> AvaTable:
    return table.select(np.lexsort((table.action_ids, table.person_ids, table.timestamps, table.video_ids)))


@pytest.mark.parametrize("density", ["1fps", "4fps"])
def test_clips_file_alone_gives_the_clips_cut_from_the_same_tubes(tmp_path: Path, tiny_world: Path,
                                                                   density: str) -> None:
    """The world's Clips file holds 4 fps boxes; the configured density is applied to it as to the tubes."""
    root = _seal(tmp_path, tiny_world)
    tubes = load_source_split(_cfg(root, f"data.source.clips.box_density={density}"), "train", dense=True)
    clips = load_source_split(_cfg(root, f"data.source.clips.box_density={density}", "data.source.train_tubes=null",
                                   "data.source.train_clips=seal_clips_train.csv"), "train", dense=True)
    assert len(clips.table) == len(tubes.table) > 0
    assert _rows(clips.table) == _rows(tubes.table)  # per-frame boxes come from the .npz: exact
    assert clips.counts == {"clips_file_videos": 4, "rows_from_clips_file": 49, "clips_file_rows_skipped": 0,
                            "clips_sparser_than_density": clips.counts["clips_sparser_than_density"]}
    assert {v: t.fps for v, t in clips.timings.items()} == {v: t.fps for v, t in tubes.timings.items()}  # probed
    val_tubes = _sorted(load_source_split(_cfg(root), "val", dense=False).table)
    val_clips = _sorted(load_source_split(_cfg(root, "data.source.val_tubes=null",
                                               "data.source.val_clips=seal_clips_val.csv"), "val", dense=False).table)
    assert val_clips.video_ids.tolist() == val_tubes.video_ids.tolist()
    assert val_clips.action_ids.tolist() == val_tubes.action_ids.tolist()
    np.testing.assert_allclose(val_clips.boxes, val_tubes.boxes, atol=5e-4 + 1e-6)  # the CSV keeps 3 decimals


def test_density_all_keeps_what_the_file_holds(tmp_path: Path, tiny_world: Path, capsys: pytest.CaptureFixture) -> None:
    root = _seal(tmp_path, tiny_world)
    four = load_source_split(_cfg(root, "data.source.clips.box_density=4fps"), "train", dense=True)
    every = load_source_split(_cfg(root, "data.source.clips.box_density=all", "data.source.train_tubes=null",
                                   "data.source.train_clips=seal_clips_train.csv"), "train", dense=True)
    assert _rows(every.table) == _rows(four.table)  # a 4 fps file cannot give more than 4 fps
    assert every.counts["clips_sparser_than_density"] == 32  # every clip of the file, announced
    assert "32 clips have boxes at fewer frames than box_density=all asks" in capsys.readouterr().out


def test_keyframe_rule_relabels_tube_samples_and_keeps_the_files(tmp_path: Path, tiny_world: Path) -> None:
    """assign_rule=keyframe relabels dense tube samples at their own frame; a Clips file has no segments to do that
    with, so its samples keep their clip's labels (they must not vanish)."""
    root = _seal(tmp_path, tiny_world)
    rule = "data.source.clips.assign_rule=keyframe"
    clips = load_source_split(_cfg(root, rule, "data.source.train_tubes=null",
                                   "data.source.train_clips=seal_clips_train.csv"), "train", dense=True)
    plain = load_source_split(_cfg(root, "data.source.train_tubes=null",
                                   "data.source.train_clips=seal_clips_train.csv"), "train", dense=True)
    assert len(clips.table) == len(plain.table) > 0 and _rows(clips.table) == _rows(plain.table)
    tubes = load_source_split(_cfg(root, rule), "train", dense=True)
    assert len(tubes.table) > 0


def _drop_tubes(root: Path, videos: list[str]) -> None:
    """Take `videos` out of the train Tubes: they stay in the videos folder and the Clips file, like v-log videos."""
    labelmap_path = root / "seal_atomic_actions.pbtxt"
    from seal_transfer.data.formats.ava import read_labelmap

    json_path, npz_path = root / "seal_tubes_train.json", root / "seal_tubes_train_boxes.npz"
    tubes = read_seal_tubes(json_path, npz_path, read_labelmap(labelmap_path))
    for vid in videos:
        del tubes.videos[vid]
    write_seal_tubes(json_path, npz_path, tubes)


def test_clips_file_with_videos_that_have_no_tubes_mixes_with_the_tube_clips(
    tmp_path: Path, tiny_world: Path, capsys: pytest.CaptureFixture
) -> None:
    root = _seal(tmp_path, tiny_world)
    everything = load_source_split(_cfg(root), "train", dense=True)
    clips_csv = (root / "seal_clips_train.csv").read_text().splitlines()
    videos = sorted({line.split(",")[0] for line in clips_csv})
    vlog = videos[:2]  # these lose their tubes
    _drop_tubes(root, vlog)
    mixed = load_source_split(_cfg(root, "data.source.train_clips=seal_clips_train.csv"), "train", dense=True)
    vlog_rows = sum(line.split(",")[0] in vlog for line in clips_csv)
    assert mixed.counts == {
        "tube_videos": 2, "rows_from_tubes": len(clips_csv) - vlog_rows,
        "clips_file_videos": 2, "rows_from_clips_file": vlog_rows,
        "clips_file_rows_skipped": len(clips_csv) - vlog_rows,  # rows of the tube videos: the tubes give those
        "clips_sparser_than_density": 0,
    }
    assert sorted(mixed.video_paths) == videos and sorted(mixed.timings) == videos
    assert _rows(mixed.table) == _rows(everything.table)  # the file's clips are what the lost tubes gave
    out = capsys.readouterr().out
    skipped = len(clips_csv) - vlog_rows
    assert f"{vlog_rows} rows of 2 videos read, {skipped} rows of videos that have tubes skipped" in out


# ------------------------------------------------------------------------------------------- bad input


def _run_pretrain(tmp: Path, root: Path, *args: str, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    argv = ["--config", str(SMOKE), f"run_dir={tmp / 'run'}", f"data.cache_dir={tmp / 'cache'}",
            f"data.source.root={root}", "data.num_workers=0", *args]
    code = guarded_main(pretrain.main, argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert not [p for pattern in ("metrics.json", "model.pt", "*.ckpt") for p in (tmp / "run").rglob(pattern)]
    return code, lines[0]


CLIPS_ONLY = ("data.source.train_tubes=null", "data.source.train_clips=seal_clips_train.csv")


def test_split_without_tubes_or_clips_is_refused(tmp_path: Path, tiny_world: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    _, line = _run_pretrain(tmp_path, _seal(tmp_path, tiny_world), "data.source.train_tubes=null", capsys=capsys)
    assert "'data.source.train_tubes' and 'data.source.train_clips' are both null" in line


def test_missing_clips_file_names_the_key(tmp_path: Path, tiny_world: Path, capsys: pytest.CaptureFixture) -> None:
    root = _seal(tmp_path, tiny_world)
    _, line = _run_pretrain(tmp_path, root, "data.source.train_tubes=null", "data.source.train_clips=nope.csv",
                            capsys=capsys)
    assert line == f"error: {root / 'nope.csv'}: file not found (config key 'data.source.train_clips')"


def test_clips_file_without_its_boxes_is_refused(tmp_path: Path, tiny_world: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    root = _seal(tmp_path, tiny_world)
    (root / "seal_clips_train_boxes.npz").unlink()
    _, line = _run_pretrain(tmp_path, root, *CLIPS_ONLY, capsys=capsys)
    assert f"{root / 'seal_clips_train_boxes.npz'}: file not found (the per-frame boxes beside seal_clips_train.csv)" \
        in line


def test_clips_file_action_outside_the_label_map_names_the_row(tmp_path: Path, tiny_world: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    root = _seal(tmp_path, tiny_world)
    csv = root / "seal_clips_train.csv"
    lines = csv.read_text().splitlines()
    fields = lines[4].split(",")
    fields[6] = "99"
    lines[4] = ",".join(fields)
    csv.write_text("\n".join(lines) + "\n")
    _, line = _run_pretrain(tmp_path, root, *CLIPS_ONLY, capsys=capsys)
    assert f"{csv}: row 5 " in line and "action_id 99, not in label map" in line


def test_clips_file_with_fractional_frames_is_refused(tmp_path: Path, tiny_world: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    root = _seal(tmp_path, tiny_world)
    npz = root / "seal_clips_train_boxes.npz"
    with np.load(npz) as data:
        arrays = {k: data[k] for k in data.files}
    key = next(k for k in arrays if not k.startswith("__"))
    arrays[key] = arrays[key].copy()
    arrays[key][0, 0] += 0.5
    np.savez(npz, **arrays)
    _, line = _run_pretrain(tmp_path, root, *CLIPS_ONLY, capsys=capsys)
    assert f"seal_clips_train_boxes.npz: '{key}' has a frame column that is not a non-negative integer" in line


# ------------------------------------------------------------------------------------------- end to end


@pytest.mark.e2e
def test_pretrain_on_seal_clips_without_any_tubes(tmp_path: Path, tiny_world: Path) -> None:
    import os
    import subprocess
    import sys

    root = _seal(tmp_path, tiny_world)
    for split in ("train", "val"):
        (root / f"seal_tubes_{split}.json").unlink()  # nothing of the Tubes is left to read
        (root / f"seal_tubes_{split}_boxes.npz").unlink()
    cmd = [sys.executable, "-m", "seal_transfer.pretrain", "--config", str(SMOKE), f"run_dir={tmp_path / 'run'}",
           f"data.cache_dir={tmp_path / 'cache'}", f"data.source.root={root}", "data.source.train_tubes=null",
           "data.source.val_tubes=null", "data.source.train_clips=seal_clips_train.csv",
           "data.source.val_clips=seal_clips_val.csv", "data.num_workers=0", "trainer.limit_train_batches=2",
           "trainer.enable_progress_bar=false"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "pretrain" / "metrics.json").read_text())
    assert metrics["source_rows"]["train"]["rows_from_clips_file"] == 49
    assert metrics["source_rows"]["val"]["rows_from_clips_file"] == 36
    assert metrics["train_keyframes"] > 0 and 0 <= metrics["mAP"] <= 1
    assert not (tmp_path / "cache").exists()  # a real source root: the synthetic world is never made
