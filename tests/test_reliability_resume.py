"""Resume anywhere: real CLI runs are SIGKILLed at several points and re-run with the same command; the final
weights and metrics must equal those of an uninterrupted run bit for bit (CPU, trainer.deterministic=true).

Kill points: pretrain mid-training (after its first epoch checkpoint; SEAL-clip detection and generic-clip
classification), adapt mid pseudo-labelling, adapt mid
round training (after the round's first epoch checkpoint), adapt between rounds, the tubes stage mid feature
extraction and mid temporal-detector training. Fast companions check the
pieces the guarantee rests on: atomic writes under kill -9, the per-stage lock, skipping finished stages.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from seal_transfer import pretrain
from seal_transfer.cli import guarded_main
from seal_transfer.errors import UserError
from seal_transfer.experiment import comparable_metrics
from seal_transfer.rundir import stage_lock

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"
TIMEOUT_S = 600


def _command(stage: str, run_dir: Path, cache: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", f"seal_transfer.{stage}", "--config", str(SMOKE),
        f"run_dir={run_dir}", f"data.cache_dir={cache}",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "trainer.deterministic=true", "trainer.max_epochs=2", "trainer.limit_train_batches=3",
        "adapt.rounds=2", "adapt.epochs_per_round=2", "data.num_workers=0",
        *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def _run(cmd: list[str]) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _children(pid: int) -> list[int]:
    """Live processes whose parent is `pid`: a stage's DataLoader workers."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, IndexError, ValueError):
            continue
        if int(ppid) == pid and state != "Z":
            found.append(int(stat.parent.name))
    return found


def _kill_when(cmd: list[str], condition: Callable[[str], bool], *, amid_workers: bool = False) -> tuple[str, int]:
    """Start `cmd`, SIGKILL it as soon as `condition(stdout so far)` holds (with `amid_workers`: and the stage has
    DataLoader workers alive); fail if it finishes first. Returns the output and how many of those workers were
    still alive right after the kill: orphans that, with an inherited lock, made an immediate re-run fail."""
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"seal_kill_{os.getpid()}_{time.monotonic_ns()}.log"
    orphans: list[int] = []
    with out_path.open("w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=_env())
        deadline = time.monotonic() + TIMEOUT_S
        workers: list[int] = []
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if condition(out_path.read_text()) and (not amid_workers or (workers := _children(proc.pid))):
                    break
                time.sleep(0.05)
            assert proc.poll() is None, f"run ended before the kill point:\n{out_path.read_text()[-3000:]}"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            orphans = [pid for pid in workers if _alive(pid)]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = out_path.read_text()
    out_path.unlink()
    return text, len(orphans)


def _run_until_killed(cmd: list[str], condition: Callable[[str], bool]) -> str:
    return _kill_when(cmd, condition)[0]


def _kill_amid_workers(cmd: list[str], condition: Callable[[str], bool]) -> tuple[str, int]:
    return _kill_when(cmd, condition, amid_workers=True)


def _file_appears(path: Path) -> Callable[[str], bool]:
    return lambda _out: path.exists()


def _line_appears(fragment: str) -> Callable[[str], bool]:
    return lambda out: fragment in out


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def _assert_same_metrics(ref_dir: Path, other_dir: Path, stage: str) -> None:
    ref = json.loads((ref_dir / stage / "metrics.json").read_text())
    other = json.loads((other_dir / stage / "metrics.json").read_text())
    assert comparable_metrics(ref, ref_dir) == comparable_metrics(other, other_dir)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, tiny_world: Path) -> Path:
    """pretrain → adapt without interruption: the results every resumed run must reproduce."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    _run(_command("pretrain", run_dir, tiny_world.parent))
    _run(_command("adapt", run_dir, tiny_world.parent))
    return run_dir


@pytest.mark.e2e
def test_pretrain_killed_mid_training_resumes_bit_identical(reference: Path, tmp_path: Path, tiny_world: Path) -> None:
    run_dir = tmp_path / "run"
    cmd = _command("pretrain", run_dir, tiny_world.parent)
    # Killed once epoch 0 is both checkpointed and in the CSV log: Lightning writes the two at slightly different
    # moments, and the assertion below is about keeping rows that were written, not rows still in memory.
    checkpoint = _file_appears(run_dir / "pretrain" / "checkpoints" / "last.ckpt")
    _run_until_killed(cmd, lambda out: checkpoint(out) and 0 in _logged_epochs_if_any(run_dir / "pretrain"))
    assert not (run_dir / "pretrain" / "metrics.json").exists()
    out = _run(cmd)
    assert "resuming from" in out
    _assert_same_weights(reference / "pretrain" / "model.pt", run_dir / "pretrain" / "model.pt")
    _assert_same_metrics(reference, run_dir, "pretrain")
    # the training log keeps the killed attempt's epoch next to the resumed one
    epochs = _logged_epochs(run_dir / "pretrain")
    assert epochs == _logged_epochs(reference / "pretrain") and {0, 1} <= epochs


def _logged_epochs_if_any(stage_dir: Path) -> set[int]:
    try:
        return _logged_epochs(stage_dir)
    except (OSError, ValueError, KeyError):  # not written yet, or caught mid-write
        return set()


def _logged_epochs(stage_dir: Path) -> set[int]:
    with (stage_dir / "logs" / "metrics.csv").open(newline="") as handle:
        return {int(row["epoch"]) for row in csv.DictReader(handle) if row.get("epoch")}


@pytest.mark.e2e
def test_clip_classification_pretrain_killed_mid_training_resumes_bit_identical(
    tmp_path: Path, tiny_world: Path
) -> None:
    """`pretrain task=classification` (the generic-clip init) resumes like detection: epoch-seeded order and views."""
    ref_dir, run_dir = tmp_path / "reference", tmp_path / "run"
    _run(_command("pretrain", ref_dir, tiny_world.parent, "task=classification"))
    cmd = _command("pretrain", run_dir, tiny_world.parent, "task=classification")
    _run_until_killed(cmd, _file_appears(run_dir / "pretrain" / "checkpoints" / "last.ckpt"))
    assert not (run_dir / "pretrain" / "metrics.json").exists()
    assert "resuming from" in _run(cmd)
    _assert_same_weights(ref_dir / "pretrain" / "model.pt", run_dir / "pretrain" / "model.pt")
    _assert_same_metrics(ref_dir, run_dir, "pretrain")


@pytest.mark.e2e
def test_adapt_killed_at_several_points_ends_bit_identical(reference: Path, tmp_path: Path, tiny_world: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(reference / "pretrain", run_dir / "pretrain")
    cmd = _command("adapt", run_dir, tiny_world.parent)
    round_1 = run_dir / "adapt" / "round_1"
    # 1. mid pseudo-labelling of round 1: nothing of the round is kept, labelling starts over
    _run_until_killed(cmd, _line_appears("round 1/2: pseudo-labelling"))
    assert not (round_1 / "pseudo_labels.csv").exists()
    # 2. mid training of round 1, after its first epoch checkpoint: labels are reused, training resumes
    _run_until_killed(cmd, _file_appears(round_1 / "checkpoints" / "last.ckpt"))
    assert not (round_1 / "metrics.json").exists()
    # 3. between rounds: round 1 is finished and is not redone
    out = _run_until_killed(cmd, _file_appears(round_1 / "metrics.json"))
    assert "pseudo labels already written" in out and "resuming from" in out
    out = _run(cmd)
    assert "round 1: already finished" in out
    _assert_same_weights(reference / "adapt" / "model.pt", run_dir / "adapt" / "model.pt")
    _assert_same_metrics(reference, run_dir, "adapt")
    for r in (1, 2):
        ref_round, new_round = reference / "adapt" / f"round_{r}", run_dir / "adapt" / f"round_{r}"
        assert (ref_round / "pseudo_labels.csv").read_bytes() == (new_round / "pseudo_labels.csv").read_bytes()
        ref_stats = json.loads((ref_round / "stats.json").read_text())
        new_stats = json.loads((new_round / "stats.json").read_text())
        assert comparable_metrics(ref_stats, reference) == comparable_metrics(new_stats, run_dir)


@pytest.mark.e2e
def test_adapt_with_ema_teacher_and_debiased_rule_resumes_bit_identical(reference: Path, tmp_path: Path,
                                                                         tiny_world: Path) -> None:
    """The EMA teacher (a callback's state inside last.ckpt) and the debiased rule's running marginal (carried
    through stats.json) survive a kill mid-training: the teachers and round 2's labels equal an uninterrupted run's."""
    options = ("adapt.teacher=ema", "adapt.ema_momentum=0.5", "adapt.selection=debiased", "adapt.lambda_c=0.05")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    for run_dir in (whole, cut):
        shutil.copytree(reference / "pretrain", run_dir / "pretrain")
    _run(_command("adapt", whole, tiny_world.parent, *options))
    cmd = _command("adapt", cut, tiny_world.parent, *options)
    round_1 = cut / "adapt" / "round_1"
    _run_until_killed(cmd, _file_appears(round_1 / "checkpoints" / "last.ckpt"))  # after epoch 1 of 2
    assert not (round_1 / "teacher.pt").exists()
    assert "resuming from" in _run(cmd)
    for r in (1, 2):
        a, b = whole / "adapt" / f"round_{r}", cut / "adapt" / f"round_{r}"
        _assert_same_weights(a / "teacher.pt", b / "teacher.pt")
        assert (a / "pseudo_labels.csv").read_bytes() == (b / "pseudo_labels.csv").read_bytes()
        stats = [json.loads((d / "stats.json").read_text()) for d in (a, b)]
        assert stats[0]["rule_state"] == stats[1]["rule_state"] and stats[0]["rule_state"]["train"]["marginal"]
    _assert_same_weights(whole / "adapt" / "model.pt", cut / "adapt" / "model.pt")


WORKERS = "data.num_workers=2"  # the kill tests above run without workers; these need them to have orphans


@pytest.mark.e2e
def test_pretrain_restarts_at_once_after_kill_9_amid_its_workers(
    reference: Path, tmp_path: Path, tiny_world: Path
) -> None:
    """Three times: kill -9 while DataLoader workers run, then the same command with no delay (a requeue)."""
    run_dir = tmp_path / "run"
    stage = run_dir / "pretrain"
    cmd = _command("pretrain", run_dir, tiny_world.parent, WORKERS)
    orphans = []
    # 1. first epoch, training: nothing kept yet
    orphans.append(_kill_amid_workers(cmd, lambda _out: not (stage / "val_detections.csv").exists())[1])
    assert not (stage / "checkpoints" / "last.ckpt").exists()
    # 2. once the first validation has written its detections: around the first epoch checkpoint
    orphans.append(_kill_amid_workers(cmd, _file_appears(stage / "val_detections.csv"))[1])
    # 3. after the first epoch checkpoint: second epoch (training or validation)
    orphans.append(_kill_amid_workers(cmd, _file_appears(stage / "checkpoints" / "last.ckpt"))[1])
    assert not (stage / "metrics.json").exists()
    assert "resuming from" in _run(cmd)
    assert any(orphans), "no kill left an orphaned worker behind: the test did not exercise the requeue case"
    _assert_same_weights(reference / "pretrain" / "model.pt", stage / "model.pt")
    _assert_same_metrics(reference, run_dir, "pretrain")


@pytest.mark.e2e
def test_adapt_restarts_at_once_after_kill_9_amid_its_workers(
    reference: Path, tmp_path: Path, tiny_world: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(reference / "pretrain", run_dir / "pretrain")
    cmd = _command("adapt", run_dir, tiny_world.parent, WORKERS)
    round_1 = run_dir / "adapt" / "round_1"
    orphans = []
    # 1. pseudo-labelling of round 1 (the labelling loader's workers)
    orphans.append(_kill_amid_workers(cmd, _line_appears("round 1/2: pseudo-labelling"))[1])
    assert not (round_1 / "pseudo_labels.csv").exists()
    # 2. training of round 1, after its first epoch checkpoint
    orphans.append(_kill_amid_workers(cmd, _file_appears(round_1 / "checkpoints" / "last.ckpt"))[1])
    # 3. round 2 (labelling or training), round 1 finished
    orphans.append(_kill_amid_workers(cmd, _file_appears(round_1 / "metrics.json"))[1])
    assert not (run_dir / "adapt" / "metrics.json").exists()
    _run(cmd)
    assert any(orphans), "no kill left an orphaned worker behind: the test did not exercise the requeue case"
    _assert_same_weights(reference / "adapt" / "model.pt", run_dir / "adapt" / "model.pt")
    _assert_same_metrics(reference, run_dir, "adapt")
    for r in (1, 2):
        ref_round, new_round = reference / "adapt" / f"round_{r}", run_dir / "adapt" / f"round_{r}"
        assert (ref_round / "pseudo_labels.csv").read_bytes() == (new_round / "pseudo_labels.csv").read_bytes()


# Coarse tube windows and a tiny temporal detector (configs/smoke_tubes.yaml); 3 epochs so a kill lands
# mid-training.
TUBES_FAST = ["--config", str(REPO / "configs" / "smoke_tubes.yaml"), "tubes.train.epochs=3",
              "tubes.train.batch_size=2"]


@pytest.fixture(scope="module")
def tubes_reference(reference: Path, tmp_path_factory: pytest.TempPathFactory, tiny_world: Path) -> Path:
    """The tubes stage (extract → train → evaluate) without interruption, from the reference pretrain."""
    run_dir = tmp_path_factory.mktemp("tubes_reference") / "run"
    shutil.copytree(reference / "pretrain", run_dir / "pretrain")
    _run(_command("tubes", run_dir, tiny_world.parent, *TUBES_FAST))
    return run_dir


def _feature_files(run_dir: Path) -> dict[str, bytes]:
    root = run_dir / "tubes" / "features"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.e2e
def test_tubes_killed_mid_extraction_and_mid_training_ends_bit_identical(
    tubes_reference: Path, tmp_path: Path, tiny_world: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(tubes_reference / "pretrain", run_dir / "pretrain")
    cmd = _command("tubes", run_dir, tiny_world.parent, *TUBES_FAST)
    features = run_dir / "tubes" / "features"
    expected = _feature_files(tubes_reference)
    # 1. mid feature extraction: tubes already written stay, the rest are extracted on the re-run
    _run_until_killed(cmd, lambda _out: len(list((features / "slowfast").glob("*.npy"))) >= 2)
    done = {s: len(list((features / s).glob("*.npy"))) for s in ("slowfast", "second")}
    total = {s: sum(n.startswith(f"{s}/") and n.endswith(".npy") for n in expected) for s in ("slowfast", "second")}
    assert 2 <= done["slowfast"] + done["second"] < total["slowfast"] + total["second"]
    # 2. mid training of the first experiment, after its first epoch checkpoint
    aa_dir = run_dir / "tubes" / "aa" / "slowfast"
    out = _run_until_killed(cmd, _file_appears(aa_dir / "checkpoints" / "last.ckpt"))
    for s in ("slowfast", "second"):
        assert f"{s}: {total[s] - done[s]} tubes written, {done[s]} already there" in out
    assert not (aa_dir / "model.pt").exists()
    out = _run(cmd)
    assert "resuming from" in out
    assert not list(features.rglob("*.tmp")), "a killed write left a temporary file among the features"
    assert _feature_files(run_dir) == expected
    for exp in ("aa/slowfast", "ca/second+slowfast"):
        _assert_same_weights(tubes_reference / "tubes" / exp / "model.pt", run_dir / "tubes" / exp / "model.pt")
    ref = json.loads((tubes_reference / "tubes" / "metrics.json").read_text())
    new = json.loads((run_dir / "tubes" / "metrics.json").read_text())
    ref.pop("extraction"), new.pop("extraction")  # written/skipped counts differ by design after a kill
    assert comparable_metrics(ref, tubes_reference) == comparable_metrics(new, run_dir)


# ------------------------------------------------------------------------------------- fast companions


def test_atomic_write_survives_kill_mid_write(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    target.write_text('{"old": true}\n')
    script = (
        "import os, signal, sys\n"
        "from seal_transfer.utils.fileio import atomic_write\n"
        "with atomic_write(sys.argv[1]) as f:\n"
        "    f.write('{\"new\": tr')\n"
        "    f.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(target)], env=_env(), timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert target.read_text() == '{"old": true}\n'  # the reader never sees the half-written file


def test_checkpoint_io_writes_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from seal_transfer.engine.fit import AtomicCheckpointIO

    path = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"epoch": 0, "w": torch.ones(3)}, path)

    def dies_midway(obj: object, f: object) -> None:
        Path(f).write_bytes(b"PK\x03\x04partial")  # type: ignore[arg-type]
        raise KeyboardInterrupt  # stands in for a kill arriving while torch.save writes

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"epoch": 1}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["epoch"] == 0
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def _argv(run_dir: Path, *extra: str) -> list[str]:
    return ["--config", str(SMOKE), f"run_dir={run_dir}", "data.cache_dir=/nonexistent-cache", *extra]


def test_locked_stage_refuses_a_second_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    stage = tmp_path / "run" / "pretrain"
    with stage_lock(stage):
        code = guarded_main(pretrain.main, _argv(tmp_path / "run"))
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "another run is writing this stage" in err and "\n" not in err
    assert not (stage / "metrics.json").exists()


_HOLD_AND_FORK = """
import os, sys, time
from pathlib import Path
from seal_transfer.rundir import stage_lock
from seal_transfer.errors import UserError
with stage_lock(Path(sys.argv[1])):
    child = os.fork()
    if child == 0:  # an orphan-to-be, like a DataLoader worker: it shares every open file of its parent
        time.sleep(120)
        os._exit(0)
    Path(sys.argv[2] + ".tmp").write_text(str(child))
    os.replace(sys.argv[2] + ".tmp", sys.argv[2])
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_stage_lock_is_free_the_moment_its_owner_is_killed(tmp_path: Path) -> None:
    """A forked child that outlives its parent must not keep the stage locked (kill -9 + immediate requeue)."""
    stage, ready = tmp_path / "run" / "pretrain", tmp_path / "child.pid"
    owner = subprocess.Popen([sys.executable, "-c", _HOLD_AND_FORK, str(stage), str(ready)], env=_env())
    child = None
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert owner.poll() is None and time.monotonic() < deadline, "the lock holder did not start"
            time.sleep(0.05)
        child = int(ready.read_text())
        with pytest.raises(UserError, match="another run is writing this stage"):
            with stage_lock(stage):
                pass
        owner.kill()
        owner.wait()
        assert _alive(child)  # the orphan still holds its copies of the parent's descriptors
        with stage_lock(stage):  # at once: no waiting for the orphan
            assert (stage / ".lock").read_text().strip() == str(os.getpid())
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)


def test_refused_second_lock_in_one_process_leaves_the_first_held(tmp_path: Path) -> None:
    """POSIX locks do not exclude their own process and drop on any close of the file: neither may leak through."""
    stage = tmp_path / "run" / "pretrain"
    probe = "import sys; from pathlib import Path; from seal_transfer.rundir import stage_lock\n" \
            "with stage_lock(Path(sys.argv[1])): pass\n"
    with stage_lock(stage):
        with pytest.raises(UserError, match="another run is writing this stage"):
            with stage_lock(stage):
                pass
        other = subprocess.run([sys.executable, "-c", probe, str(stage)], capture_output=True, text=True, env=_env(),
                               timeout=120)
        assert other.returncode != 0 and "another run is writing this stage" in other.stderr
    other = subprocess.run([sys.executable, "-c", probe, str(stage)], capture_output=True, text=True, env=_env(),
                           timeout=120)
    assert other.returncode == 0, other.stderr


def test_finished_stage_is_not_redone(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    stage = tmp_path / "run" / "pretrain"
    stage.mkdir(parents=True)
    (stage / "metrics.json").write_text('{"mAP": 0.5}\n')
    code = guarded_main(pretrain.main, _argv(tmp_path / "run"))
    out = capsys.readouterr().out
    assert code == 0 and "already finished" in out and "force=true" in out
    assert (stage / "metrics.json").read_text() == '{"mAP": 0.5}\n'
    assert not (stage / "config.yaml").exists()  # nothing was rewritten


def test_resumed_csv_log_appends_to_the_interrupted_runs_rows(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger

    from seal_transfer.engine.fit import AppendingCSVLogger

    first = CSVLogger(tmp_path, name="logs", version="")
    first.log_metrics({"train/loss": 1.0, "epoch": 0}, step=0)
    first.save()
    resumed = AppendingCSVLogger(tmp_path, name="logs", version="")
    resumed.log_metrics({"train/loss": 0.5, "val/mAP": 0.2, "epoch": 1}, step=5)  # a new column too
    resumed.save()
    with (tmp_path / "logs" / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["epoch"], r["train/loss"], r["val/mAP"]) for r in rows] == [("0", "1.0", ""), ("1", "0.5", "0.2")]
    fresh = CSVLogger(tmp_path, name="logs", version="")  # a fresh (not resumed) run starts the file over
    fresh.log_metrics({"train/loss": 9.0}, step=0)
    fresh.save()
    assert (tmp_path / "logs" / "metrics.csv").read_text().count("\n") == 2


def test_epoch_sampler_order_is_a_function_of_seed_and_epoch() -> None:
    from seal_transfer.data.datamodules import EpochShuffleSampler

    data = list(range(50))
    a, b = EpochShuffleSampler(data, seed=3), EpochShuffleSampler(data, seed=3)
    a.set_epoch(4)
    first = list(a)
    torch.manual_seed(123)  # the global RNG (reset by a restart) must not matter
    b.set_epoch(4)
    assert list(b) == first and sorted(first) == data
    b.set_epoch(5)
    assert list(b) != first
