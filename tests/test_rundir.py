from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from seal_transfer.errors import UserError
from seal_transfer.rundir import stage_dir, stage_lock, upstream_weights


def _finish(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.pt").write_bytes(b"x")
    (directory / "metrics.json").write_text("{}")


def test_chain_prefers_adapt_then_pretrain(tmp_path: Path) -> None:
    weights, reason = upstream_weights(tmp_path, "finetune")
    assert weights is None and "no finished earlier stage" in reason
    _finish(stage_dir(tmp_path, "pretrain"))
    assert upstream_weights(tmp_path, "finetune") == (tmp_path / "pretrain" / "model.pt", "pretrain")
    # An unfinished adapt (no metrics.json) is not used.
    (stage_dir(tmp_path, "adapt")).mkdir()
    (stage_dir(tmp_path, "adapt") / "model.pt").write_bytes(b"x")
    assert upstream_weights(tmp_path, "finetune")[1] == "pretrain"
    _finish(stage_dir(tmp_path, "adapt"))
    assert upstream_weights(tmp_path, "finetune")[1] == "adapt"


def _try_lock(directory: str, queue: mp.Queue) -> None:
    try:
        with stage_lock(Path(directory)):
            queue.put("locked")
    except UserError as exc:
        queue.put(str(exc))


def test_lock_refuses_a_second_writer(tmp_path: Path) -> None:
    with stage_lock(tmp_path / "pretrain"):
        queue: mp.Queue = mp.get_context("fork").Queue()
        proc = mp.get_context("fork").Process(target=_try_lock, args=(str(tmp_path / "pretrain"), queue))
        proc.start()
        proc.join(10)
        assert "another run is writing" in queue.get(timeout=5)
    with stage_lock(tmp_path / "pretrain"):
        pass  # released on exit


def test_lock_released_when_holder_dies(tmp_path: Path) -> None:
    import os
    import signal

    ctx = mp.get_context("fork")
    ready = ctx.Event()

    def hold() -> None:
        with stage_lock(tmp_path / "s"):
            ready.set()
            signal.pause()

    proc = ctx.Process(target=hold)
    proc.start()
    assert ready.wait(10)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    with stage_lock(tmp_path / "s"):
        pass
    with pytest.raises(UserError):
        with stage_lock(tmp_path / "t"):
            with stage_lock(tmp_path / "t"):
                pass
