"""The config machinery: YAML + key=value layering, one-line errors naming the key, --help text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

from seal_transfer.config.loader import describe_keys, load_config, to_yaml
from seal_transfer.errors import UserError


@dataclass
class Inner:
    lr: float = 0.1  # learning rate
    name: str = "sgd"


@dataclass
class Schema:
    run_dir: str = "runs/x"  # where to write
    epochs: int = 3
    init: Optional[str] = None
    inner: Inner = field(default_factory=Inner)


def test_layering_files_then_overrides(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    a.write_text("epochs: 5\ninner:\n  lr: 0.5\n")
    b = tmp_path / "b.yaml"
    b.write_text("inner:\n  lr: 0.7\n")
    cfg = load_config(Schema, [a, b], ["inner.name=adamw", "init=/w.pt"], base={"epochs": 4})
    assert cfg.epochs == 5 and cfg.inner.lr == 0.7 and cfg.inner.name == "adamw" and cfg.init == "/w.pt"
    assert "lr: 0.7" in to_yaml(cfg)


def test_unknown_key_fails_with_suggestion(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown config key 'inner.lrr' \(did you mean 'inner.lr'\?\)"):
        load_config(Schema, [], ["inner.lrr=3"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("epoch: 3\n")
    with pytest.raises(UserError, match=r"bad.yaml: unknown config key 'epoch'"):
        load_config(Schema, [bad])


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"config key 'epochs'"):
        load_config(Schema, [], ["epochs=many"])
    bad = tmp_path / "t.yaml"
    bad.write_text("inner:\n  lr: fast\n")
    with pytest.raises(UserError, match=r"t.yaml: config key 'inner.lr'"):
        load_config(Schema, [bad])


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(UserError, match=r"broken.yaml:\d+: not valid YAML"):
        load_config(Schema, [broken])
    with pytest.raises(UserError, match="file not found"):
        load_config(Schema, [tmp_path / "nope.yaml"])
    with pytest.raises(UserError, match="expected key=value"):
        load_config(Schema, [], ["epochs"])
    with pytest.raises(UserError, match="is a section"):
        load_config(Schema, [], ["inner=3"])


def test_describe_keys_lists_defaults_and_comments() -> None:
    text = describe_keys(Schema)
    assert "inner.lr = 0.1    # learning rate" in text
    assert "run_dir = runs/x    # where to write" in text
    assert "init = null" in text
    assert "epochs" not in describe_keys(Schema, ["inner"])
