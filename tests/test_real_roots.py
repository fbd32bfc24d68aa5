"""A run on real data never falls back to the synthetic world, and adapt checks the model's label space.

`python -m seal_transfer.adapt --config configs/finetune_ava_r50.yaml data.target.root=/data/ava` (the command
docs/real_data.md used to show) took the source label space from a freshly generated synthetic world and then
blamed the checkpoint. Now any stage that reads a domain whose root is unset while another root is set stops
before any work (no world generated, no stage folder, no lock) with one line naming the key; and adapt compares
the class names a checkpoint records with the source label map.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from seal_transfer import adapt, finetune, pretrain, tubes
from seal_transfer.cli import guarded_main
from seal_transfer.data.formats.ava import read_labelmap, write_labelmap
from seal_transfer.errors import UserError
from seal_transfer.pseudo.rounds import check_source_label_space

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"
STAGES = {"pretrain": pretrain.main, "adapt": adapt.main, "finetune": finetune.main, "tubes": tubes.main}


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def _roots(tmp: Path, world: Path, *domains: str) -> list[str]:
    """Private copies of the tiny world's folders, given as real roots (the format is the real one)."""
    args = []
    for domain in domains:
        folder = {"source": "seal", "target": "ava", "generic": "generic"}[domain]
        root = tmp / folder
        if not root.exists():
            shutil.copytree(world / folder, root)
        args.append(f"data.{domain}.root={root}")
    return args


def test_adapt_on_a_real_target_without_a_source_root_stops_before_any_work(
    tmp_path: Path, tiny_world: Path, capsys: pytest.CaptureFixture
) -> None:
    """The docs' command line as it was: real AVA root, no data.source.root."""
    cache, run = tmp_path / "cache", tmp_path / "run"
    argv = ["--config", str(REPO / "configs" / "finetune_ava_r50.yaml"), *_roots(tmp_path, tiny_world, "target"),
            f"run_dir={run}", f"data.cache_dir={cache}", "adapt.pool=unlabeled",
            "data.target.unlabeled_boxes=annotations/ava_train_predicted_boxes.csv"]
    code = guarded_main(adapt.main, argv)
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2
    assert line.startswith("error: config key 'data.source.root' is not set, but data.target.root=")
    assert "label map" in line and "synthetic world" in line
    assert not cache.exists(), "the synthetic world was generated"
    assert not run.exists(), "the stage folder (lock, config.yaml) was created before the refusal"


@pytest.mark.parametrize(
    ("stage", "given", "missing", "extra"),
    [
        ("adapt", "source", "target", []),
        ("pretrain", "target", "source", []),
        ("pretrain", "source", "generic", ["task=classification"]),
        ("finetune", "source", "target", []),
        ("tubes", "target", "source", []),
    ],
)
def test_no_stage_mixes_a_real_root_with_the_synthetic_world(
    tmp_path: Path, tiny_world: Path, capsys: pytest.CaptureFixture, stage: str, given: str, missing: str,
    extra: list[str],
) -> None:
    cache, run = tmp_path / "cache", tmp_path / "run"
    argv = ["--config", str(SMOKE), *_roots(tmp_path, tiny_world, given), f"run_dir={run}", f"data.cache_dir={cache}",
            *extra]
    code = guarded_main(STAGES[stage], argv)
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2
    assert f"config key 'data.{missing}.root' is not set, but data.{given}.root=" in line
    assert not cache.exists() and not run.exists()


def _model_pt(path: Path, labelmap_path: Path) -> Path:
    """A model.pt as a stage exports it: weights plus the class ids and names it was trained on."""
    from seal_transfer.models.config import ModelConfig
    from seal_transfer.models.slowfast import build_detector

    labelmap = read_labelmap(labelmap_path)
    model = build_detector(ModelConfig(preset="tiny"), len(labelmap))
    meta = {"class_ids": list(labelmap.ids), "class_names": [labelmap.names[c] for c in labelmap.ids],
            "model": {"preset": "tiny"}}
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "seal_transfer": meta}, path)
    return path


def test_adapt_refuses_a_checkpoint_trained_on_other_class_names(
    tmp_path: Path, tiny_world: Path, capsys: pytest.CaptureFixture
) -> None:
    """Same class count, one class renamed: the head's shape fits, the label space does not."""
    roots = _roots(tmp_path, tiny_world, "source", "target")
    init = _model_pt(tmp_path / "model.pt", tiny_world / "seal" / "seal_atomic_actions.pbtxt")
    labelmap_path = tmp_path / "seal" / "seal_atomic_actions.pbtxt"
    labelmap = read_labelmap(labelmap_path)
    third = labelmap.ids[2]
    old_name = labelmap.names[third]
    labelmap.names[third] = "juggle"
    write_labelmap(labelmap_path, labelmap)
    run = tmp_path / "run"
    argv = ["--config", str(SMOKE), *roots, f"run_dir={run}", f"data.cache_dir={tmp_path / 'cache'}",
            f"init={init}", "data.num_workers=0"]
    code = guarded_main(adapt.main, argv)
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2
    assert line.startswith(f"error: {init}: was trained on other classes than the source label map {labelmap_path}")
    assert f"column 2 is '{old_name}' there and 'juggle' here" in line
    assert not list(run.rglob("pseudo_labels.csv")) and not list(run.rglob("*.ckpt"))
    assert not (tmp_path / "cache").exists()


def test_label_space_check_compares_names_and_counts(tmp_path: Path, tiny_world: Path) -> None:
    labelmap_path = tiny_world / "seal" / "seal_atomic_actions.pbtxt"
    labelmap = read_labelmap(labelmap_path)
    same = _model_pt(tmp_path / "same.pt", labelmap_path)
    check_source_label_space(same, labelmap)  # the names it records are the label map's: accepted
    fewer = labelmap.subset(labelmap.ids[:-1])
    with pytest.raises(UserError, match=rf"{len(labelmap)} classes there, {len(fewer)} here"):
        check_source_label_space(same, fewer)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": torch.load(same, weights_only=True)["state_dict"]}, foreign)
    check_source_label_space(foreign, fewer)  # records no names: only the head's shape is checked, later
