"""Non-finite gradients skip the update, are counted, and a run of them stops training."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from tests.toy_modules import ToyData, ToyModule
from unclip.callbacks.nonfinite import NonFiniteGradientError, NonFiniteGuard


class WeightRecorder(pl.Callback):
    def __init__(self) -> None:
        self.after_step: dict[int, torch.Tensor] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.after_step[trainer.global_step] = pl_module.net.weight.detach().clone()


def _trainer(guard: NonFiniteGuard, recorder: WeightRecorder, steps: int) -> pl.Trainer:
    return pl.Trainer(max_steps=steps, callbacks=[guard, recorder], logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, limit_val_batches=0)


def test_nonfinite_steps_are_skipped_and_counted() -> None:
    guard, rec = NonFiniteGuard(max_consecutive=5), WeightRecorder()
    _trainer(guard, rec, 6).fit(ToyModule(nan_steps=(2, 3)), ToyData())
    assert guard.skipped_total == 2
    # steps 2 and 3 (global_step 3 and 4 after them) left the weights as they were after step 1
    assert torch.equal(rec.after_step[2], rec.after_step[3])
    assert torch.equal(rec.after_step[3], rec.after_step[4])
    assert not torch.equal(rec.after_step[4], rec.after_step[5])
    assert torch.isfinite(rec.after_step[6]).all()


def test_run_of_nonfinite_steps_stops_with_the_step() -> None:
    guard, rec = NonFiniteGuard(max_consecutive=3), WeightRecorder()
    with pytest.raises(NonFiniteGradientError, match="global step 4"):
        _trainer(guard, rec, 10).fit(ToyModule(nan_steps=(2, 3, 4, 5)), ToyData())
