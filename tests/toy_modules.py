"""A tiny regression module and data module that exercise the shared training runner."""

from __future__ import annotations

import time

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class ToyData(pl.LightningDataModule):
    """y = 3x + 1 with noise; 64 samples, batch 8."""

    def __init__(self, n: int = 64, batch_size: int = 8) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, 1, generator=g)
        self.data = TensorDataset(x, 3 * x + 1 + 0.01 * torch.randn(n, 1, generator=g))
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=self.batch_size)


class ToyModule(pl.LightningModule):
    """Linear regression trained with SGD."""

    def __init__(
        self, lr: float = 0.1, nan_steps: tuple[int, ...] = (), sleep_per_step: float = 0.0
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(1, 1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        time.sleep(self.hparams.sleep_per_step)  # makes a run long enough to be killed mid-way
        loss = torch.nn.functional.mse_loss(self.net(x).float(), y)
        if self.global_step in self.hparams.nan_steps:
            loss = loss * float("nan")  # fault injection for the non-finite guard
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.net(x).float(), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
