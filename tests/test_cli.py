"""CLI plumbing that every stage shares: `key=value` overrides arrive in the key's declared type (no omegaconf
FutureWarning about implicit conversions), and output into a pipe whose reader has gone (`| head`) ends quietly."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

from seal_transfer.config import Config
from seal_transfer.config.loader import load_config

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_overrides_take_the_declared_type_without_future_warnings() -> None:
    overrides = ["trainer.devices=2", "trainer.precision=16", "optim.lr=1", "data.target.fps=30",
                 "trainer.gradient_clip_val=1", "sweep.note=0.10", "trainer.devices=[0,1]"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = load_config(Config, [], overrides[:-1])
        listed = load_config(Config, [], overrides[-1:])
    assert not [w for w in caught if issubclass(w.category, FutureWarning)], [str(w.message) for w in caught]
    assert cfg.trainer.devices == "2" and cfg.trainer.precision == "16" and cfg.sweep.note == "0.10"
    assert isinstance(cfg.optim.lr, float) and cfg.optim.lr == 1.0 and cfg.trainer.gradient_clip_val == 1.0
    assert listed.trainer.devices == "[0,1]"  # a device list (it used to fail: "Cannot convert 'list' to string")


def test_readme_torchrun_devices_override_prints_no_warning() -> None:
    """`trainer.devices=N` as in the README's torchrun line, through the real CLI with warnings shown."""
    result = subprocess.run(
        [sys.executable, "-W", "default", "-m", "seal_transfer.finetune", "--config", "configs/finetune_ava_r50.yaml",
         "data.target.root=/data/ava", "trainer.devices=8", "--print-config"],
        capture_output=True, text=True, cwd=REPO, env=_env(), timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    assert "devices: '8'" in result.stdout


def test_help_into_a_closed_pipe_ends_without_a_traceback() -> None:
    """The reader goes away before the first write, as `| head` does after its lines: exit 141, stderr empty."""
    proc = subprocess.Popen([sys.executable, "-m", "seal_transfer.adapt", "--help"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert err == "", err


def test_help_piped_into_head_shows_the_head_and_nothing_else() -> None:
    script = f"{sys.executable} -m seal_transfer.adapt --help | head -3; echo rc=${{PIPESTATUS[0]}} >&2"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=_env(), timeout=120)
    assert result.stdout.startswith("usage: python -m seal_transfer.adapt")
    assert len(result.stdout.splitlines()) == 3
    assert result.stderr.strip() in ("rc=0", "rc=141"), result.stderr  # 0 when all of it fit the pipe before head left
