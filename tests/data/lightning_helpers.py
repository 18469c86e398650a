"""A minimal LightningModule and Trainer for running the data modules through real Lightning."""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class KeyRecorder(pl.LightningModule):
    """Trains a 3->1 linear map on mean colours and records the keys it sees per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.train_keys: dict[int, list[str]] = {}
        self.val_keys: list[str] = []

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.train_keys.setdefault(self.current_epoch, []).extend(batch["key"])
        loss = self.layer(batch["image"].mean(dim=(2, 3))).pow(2).mean()
        self.log("loss", loss, batch_size=len(batch["key"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.val_keys.extend(batch["key"])

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.val_keys.extend(batch["key"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def cpu_trainer(tmp_path, callbacks, **kwargs) -> pl.Trainer:
    options = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False,
                   default_root_dir=tmp_path, callbacks=callbacks)
    return pl.Trainer(**{**options, **kwargs})
