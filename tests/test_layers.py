"""The architecture's promises that a reader relies on: `--help` and config checks never load torch, a config
error stops a stage before it locks or writes anything, and every section validates at load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from seal_transfer.config import Config, load_config, with_overrides
from seal_transfer.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "lightning", "pytorchvideo", "torchvision")


def _imported_modules(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=120)
    names = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return proc, names


@pytest.mark.parametrize("stage", ["pretrain", "adapt", "finetune", "tubes", "sweep", "synth", "evaluate"])
def test_help_imports_no_torch(stage: str) -> None:
    proc, names = _imported_modules("-m", f"seal_transfer.{stage}", "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage" in proc.stdout.lower()
    loaded = sorted(n for n in names if n.split(".")[0] in HEAVY)
    assert not loaded, f"`{stage} --help` imported {loaded[:5]}"


def test_config_error_stops_before_any_lock_or_write(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc, names = _imported_modules("-m", "seal_transfer.pretrain", f"run_dir={run_dir}",
                                    "data.source.clips.box_density=3x")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: data.source.clips.box_density: '3x' is not 'all' or '<rate>fps' (e.g. '4fps')")
    assert not run_dir.exists() and not any(n.split(".")[0] in HEAVY for n in names)


@pytest.mark.parametrize(("override", "message"), [
    ("adapt.lambda_c=1.5", "config key 'adapt.lambda_c': must be in (0, 1]"),
    ("data.augment.crop_size=999", "data.augment.crop_size: must be in (0, min_short_side=256]"),
    ("data.synthetic.preset=huge", "data.synthetic.preset: 'huge' is not one of tiny, small, paper"),
    ("model.depth=34", "model.depth: 34 is not one of (18, 50, 101, 152)"),
    ("tubes.step=nope", "config key 'tubes.step': 'nope' is not one of extract, train, evaluate, all"),
    ("optim.name=lamb", "config key 'optim.name': 'lamb' is not one of sgd, adamw"),
    ("buckets.names=[a]", "config key 'buckets.names': 1 names for 3 ranges"),
])
def test_every_section_validates_at_load(override: str, message: str) -> None:
    with pytest.raises(UserError) as info:
        load_config(Config, [], [override])
    assert message in str(info.value)


def test_loaded_config_is_the_typed_dataclass_tree_and_overrides_are_checked_again() -> None:
    from seal_transfer.data.config import ClipConfig
    from seal_transfer.pseudo.config import AdaptConfig

    cfg = load_config(Config, [ROOT / "configs" / "testbed.yaml"], ["adapt.lambda_c=0.5"])
    assert isinstance(cfg, Config) and isinstance(cfg.adapt, AdaptConfig)
    assert isinstance(cfg.data.source.clips, ClipConfig) and cfg.data.source.clips.assign_rule == "keyframe"
    assert cfg.adapt.lambda_c == 0.5
    child = with_overrides(cfg, {"trainer.max_epochs": 2, "run_dir": "elsewhere"})
    assert (child.trainer.max_epochs, child.run_dir, cfg.trainer.max_epochs) == (2, "elsewhere", 4)
    with pytest.raises(UserError, match="adapt.lambda_c"):
        with_overrides(cfg, {"adapt.lambda_c": 0.0})
    with pytest.raises(UserError, match="unknown config key 'adapt.nope'"):
        with_overrides(cfg, {"adapt.nope": 1})
