"""``SampleLedger``: a per-rank record of what each process trained on, for checking scale-out.

Each rank writes ``<dirpath>/rank<r>.json`` at the end of training: the sample keys of every
training batch it saw (in order), the batch sizes (per device, and global: per device x devices
x nodes x gradient accumulation), and SHA-256 checksums of the module's parameters at the start
and at the end of training. Under DDP the ranks' key lists must be disjoint and their final
checksums equal. Enable with ``callbacks=[default,sample_ledger]``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch


def parameter_checksum(module: torch.nn.Module) -> str:
    """SHA-256 of every parameter (name, dtype, shape, bytes) in ``named_parameters`` order."""
    digest = hashlib.sha256()
    for name, param in module.named_parameters():
        tensor = param.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}:{param.dtype}:{tuple(param.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class SampleLedger(pl.Callback):
    """Record the training keys, batch sizes and parameter checksums of this rank.

    Args:
        dirpath: directory for the ``rank<r>.json`` files (created when missing).
        key_field: the batch entry holding the sample keys (a list of strings).
    """

    def __init__(self, dirpath: str, key_field: str = "key") -> None:
        super().__init__()
        self.dirpath = Path(dirpath)
        self.key_field = key_field
        self.keys: list[list[str]] = []
        self.initial_checksum: str | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.keys = []
        self.initial_checksum = parameter_checksum(pl_module)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        keys = batch.get(self.key_field) if isinstance(batch, Mapping) else None
        self.keys.append([str(k) for k in keys] if keys is not None else [])

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        per_device = max((len(k) for k in self.keys), default=0)
        devices = trainer.num_devices * trainer.num_nodes
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "global_step": trainer.global_step,
            "batch_size": {
                "per_device": per_device,
                "global": per_device * devices * trainer.accumulate_grad_batches,
            },
            "initial_checksum": self.initial_checksum,
            "final_checksum": parameter_checksum(pl_module),
            "keys": self.keys,
        }
        self.dirpath.mkdir(parents=True, exist_ok=True)
        path = self.dirpath / f"rank{trainer.global_rank}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(path)
