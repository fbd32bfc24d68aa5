"""Run one supervised training job for a stage: Trainer with checkpoints and loggers, resume, final evaluation,
and the files every stage leaves behind (checkpoints/{last,best}.ckpt, model.pt, metrics.csv, TensorBoard)."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.plugins.io import TorchCheckpointIO

from seal_transfer.errors import UserError
from seal_transfer.rundir import BEST_CHECKPOINT, CHECKPOINTS, LAST_CHECKPOINT
from seal_transfer.utils.fileio import atomic_path


def trainer_kwargs(trainer_cfg: Any) -> dict[str, Any]:
    """`trainer.*` config keys → lightning.Trainer keyword arguments (devices '2' → 2, '[0,1]' → [0, 1])."""
    kwargs = (
        dataclasses.asdict(trainer_cfg) if not isinstance(trainer_cfg, dict) else dict(trainer_cfg)
    )
    devices = str(kwargs.get("devices", "auto"))
    if devices.isdigit() or (devices.startswith("-") and devices[1:].isdigit()):
        kwargs["devices"] = int(devices)
    elif devices.startswith("["):
        kwargs["devices"] = [int(d) for d in devices.strip("[]").split(",") if d.strip()]
    for key in ("limit_train_batches", "limit_val_batches"):
        value = kwargs.get(key)
        if isinstance(value, float) and value > 1 and value.is_integer():
            kwargs[key] = int(value)  # a whole number above 1 means a batch count, as in Lightning
    return kwargs


def build_trainer(cfg: Any, out_dir: Path, monitor: Optional[str], mode: str = "max",
                  extra_callbacks: Sequence[Any] = (), **overrides: Any) -> L.Trainer:
    """Lightning Trainer with the project's callbacks: last+best checkpoints, CSV and TensorBoard logs (+ the
    job's own, e.g. an EMA of the weights)."""
    ckpt_dir = out_dir / CHECKPOINTS
    callbacks: list[Any] = list(extra_callbacks)
    if monitor:
        callbacks.append(
            ModelCheckpoint(
                dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode, save_top_k=1,
                enable_version_counter=False,
            )
        )
    # last.ckpt after every epoch from its own callback: Lightning's `save_last` only refreshes it in an epoch
    # whose top-k checkpoint was saved too (never without a monitor), so a kill would lose more than one epoch.
    callbacks.append(
        ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1, enable_version_counter=False)
    )
    callbacks.append(EpochSeed(int(cfg.seed)))
    callbacks.append(TrainThroughput())
    callbacks.append(LastValidation())
    csv_logger = (AppendingCSVLogger if resume_checkpoint(out_dir) is not None else CSVLogger)(
        out_dir, name="logs", version="")
    loggers = [csv_logger, TensorBoardLogger(out_dir, name="logs", version="")]
    kwargs = trainer_kwargs(cfg.trainer)
    kwargs.update(overrides)
    # Fresh loaders each epoch: Lightning builds the first train iterator before a resumed run's loop state is
    # restored (estimated_stepping_batches), so without a reload that epoch would replay epoch 0's order and views.
    kwargs.setdefault("reload_dataloaders_every_n_epochs", 1)
    if kwargs.get("enable_progress_bar", True):
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return L.Trainer(
            default_root_dir=out_dir, callbacks=callbacks, logger=loggers, plugins=[AtomicCheckpointIO()], **kwargs
        )


class _AppendingWriter(ExperimentWriter):
    """Lightning's writer deletes an existing metrics.csv; a resumed run keeps the interrupted run's rows (rows of
    the epoch that was cut short appear twice: once from the killed attempt, once from the resumed one)."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
                self.metrics_keys = sorted(next(csv.reader(handle), []))


class AppendingCSVLogger(CSVLogger):
    """CSVLogger for a run resumed from last.ckpt: appends to logs/metrics.csv instead of starting it over."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class EpochSeed(Callback):
    """Reseed torch's global RNG (dropout) from (seed, epoch) at every epoch start, so a run resumed from
    last.ckpt draws the same random numbers as an uninterrupted one (bit-identical on CPU)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.manual_seed(self.seed * 1_000_003 + int(trainer.current_epoch))


class LastValidation(Callback):
    """The global step of the last full validation pass (sanity checks excluded): the fit template skips its final
    pass when the weights were validated at that very step, since it would only repeat the same numbers."""

    def __init__(self) -> None:
        self.step: Optional[int] = None
        self.metrics: dict[str, float] = {}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.step = int(trainer.global_step)
            self.metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}


class TrainThroughput(Callback):
    """Training samples per second of wall time, data loading included and validation excluded: from an epoch's
    start to its last training batch. Logged per epoch (`train/samples_per_s`); `summary()` gives the run's total,
    which stages put in metrics.json so a benchmark can compare the stage with a bare loop."""

    def __init__(self) -> None:
        self.samples = 0
        self.seconds = 0.0
        self._start: Optional[float] = None
        self._last: Optional[float] = None
        self._epoch_samples = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import time

        self._start = self._last = time.perf_counter()
        self._epoch_samples = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        import time

        self._last = time.perf_counter()
        self._epoch_samples += len(batch["index"]) if isinstance(batch, dict) and "index" in batch else 0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._start is None or self._last is None or self._last <= self._start:
            return
        seconds = self._last - self._start
        self.samples += self._epoch_samples
        self.seconds += seconds
        pl_module.log("train/samples_per_s", self._epoch_samples / seconds, on_epoch=True, on_step=False)

    def summary(self) -> dict[str, float]:
        if self.seconds <= 0:
            return {}
        return {"train_samples_per_s": round(self.samples / self.seconds, 2),
                "train_loop_seconds": round(self.seconds, 1)}


def throughput_of(trainer: L.Trainer) -> dict[str, float]:
    """The `TrainThroughput` summary of a trainer built by `build_trainer` (empty if it has none)."""
    for callback in trainer.callbacks:
        if isinstance(callback, TrainThroughput):
            return callback.summary()
    return {}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints go to a temporary file beside the target and are renamed: a kill mid-write never leaves a
    truncated last.ckpt (Lightning's own transaction writes to the system temp dir, then copies across disks)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def resume_checkpoint(out_dir: Path, announce: Optional[str] = None) -> Optional[Path]:
    """`checkpoints/last.ckpt` of an interrupted run, so re-running the same command continues from it; with
    `announce`, says so as `[announce] resuming from ...`."""
    last = out_dir / CHECKPOINTS / LAST_CHECKPOINT
    if not last.is_file():
        return None
    if announce:
        print(f"[{announce}] resuming from {last}")
    return last


def best_or_last(out_dir: Path) -> Optional[Path]:
    for name in (BEST_CHECKPOINT, LAST_CHECKPOINT):
        path = out_dir / CHECKPOINTS / name
        if path.is_file():
            return path
    return None


def ensure_best_checkpoint(out_dir: Path) -> None:
    """Stages promise `best.ckpt`; without validation there is no 'best', so it is the last one."""
    best = out_dir / CHECKPOINTS / BEST_CHECKPOINT
    last = out_dir / CHECKPOINTS / LAST_CHECKPOINT
    if not best.exists() and last.exists():
        with atomic_path(best) as tmp:
            tmp.write_bytes(last.read_bytes())


def export_weights(module: torch.nn.Module, path: Path, meta: dict[str, Any]) -> None:
    """Plain weights for the next stage: Lightning layout (`state_dict` with `model.` keys) + plain-data metadata,
    loadable with `torch.load(weights_only=True)`."""
    export_state(module.model.state_dict(), path, meta)


def export_state(model_state: dict[str, torch.Tensor], path: Path, meta: dict[str, Any]) -> None:
    """`export_weights` for a bare model state_dict (e.g. an EMA of the weights)."""
    state = {f"model.{k}": v.detach().cpu() for k, v in model_state.items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "seal_transfer": meta}, tmp)


def quiet_lightning() -> None:
    """Lightning's info banners (GPU available, LOCAL_RANK…) drown the stage's own summary on CPU runs."""
    import logging

    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*The number of training batches.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*torch.jit.script.*")
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")


@contextlib.contextmanager
def translate_training_errors() -> Any:
    """A NaN loss or an unreadable file inside the loop is the user's to fix: say so in one line (exit 2)."""
    try:
        yield
    except FloatingPointError as exc:
        raise UserError(str(exc)) from None


def silence_stdout() -> contextlib.AbstractContextManager[Any]:
    return contextlib.redirect_stdout(io.StringIO())


def run_fit(trainer: L.Trainer, module: L.LightningModule, datamodule: Any, out_dir: Path,
            resume: Optional[Path], *, validate: bool = False) -> Optional[list[dict[str, float]]]:
    """The one fit template every trained model goes through: fit (continuing from `resume`, an interrupted run's
    `last.ckpt`, when given), optionally a final validation pass (not repeated when the last epoch's pass already
    validated the same weights), all inside the one-line error translation;
    then the `best.ckpt` the stages promise. Returns the final validation's results (None without one).

    Callers own what differs: the module, the data, the trainer's monitor, and what they export afterwards."""
    with translate_training_errors():
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume else None)
        result = None
        if validate:
            last = next((c for c in trainer.callbacks if isinstance(c, LastValidation)), None)
            if last is not None and last.step == int(trainer.global_step):
                result = [dict(last.metrics)]  # the last epoch's pass validated these very weights
            else:  # e.g. check_val_every_n_epoch skipped the last epoch, or a finished run resumed
                result = trainer.validate(module, datamodule=datamodule, verbose=False)
    ensure_best_checkpoint(out_dir)
    return result
