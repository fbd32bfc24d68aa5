"""The fit template (engine/fit.run_fit): its final validation pass runs only when the last epoch did not already
validate the same weights."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from seal_transfer.engine.config import TrainerConfig
from seal_transfer.engine.fit import build_trainer, run_fit


class _Counting(L.LightningModule):
    """A one-weight regression that counts its validation passes and logs the weight it was validated with."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.passes = 0

    def training_step(self, batch, batch_idx):
        x, y = batch
        return ((x * self.w - y) ** 2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/w", self.w.detach().clone().squeeze(), on_epoch=True)

    def on_validation_epoch_end(self) -> None:
        self.passes += 1

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Data(L.LightningDataModule):
    def _loader(self) -> DataLoader:
        x = torch.linspace(0, 1, 8)
        return DataLoader(TensorDataset(x, 2 * x), batch_size=4)

    def train_dataloader(self) -> DataLoader:
        return self._loader()

    def val_dataloader(self) -> DataLoader:
        return self._loader()


@pytest.mark.parametrize("every, expected_passes", [(1, 3), (2, 2)])
def test_final_validation_is_not_a_repeat_of_the_last_epoch(tmp_path: Path, every: int, expected_passes: int) -> None:
    cfg = SimpleNamespace(seed=0, trainer=TrainerConfig(max_epochs=3, check_val_every_n_epoch=every,
                                                         accelerator="cpu", devices="1", enable_progress_bar=False,
                                                         enable_model_summary=False, log_every_n_steps=1))
    trainer = build_trainer(cfg, tmp_path, monitor="val/w")
    module = _Counting()
    result = run_fit(trainer, module, _Data(), tmp_path, None, validate=True)
    # every=1: epochs 0, 1, 2 validate and the final pass is skipped (3 passes); every=2: epoch 1 validates, the
    # last epoch does not, so the final pass runs (2 passes).
    assert module.passes == expected_passes
    assert result is not None and result[0]["val/w"] == pytest.approx(float(module.w.detach()))
    assert (tmp_path / "checkpoints" / "best.ckpt").exists()
