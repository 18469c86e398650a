"""Skip optimizer steps whose gradients are not finite; stop after too many in a row."""

from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch

log = logging.getLogger(__name__)


class NonFiniteGradientError(RuntimeError):
    """Raised when training produced non-finite gradients for too many consecutive steps."""


class NonFiniteGuard(pl.Callback):
    """Drop the update of any step with a NaN/Inf gradient, count it, and log the count.

    Parameters whose ``.grad`` is ``None`` are left untouched by every torch optimizer, so clearing
    all gradients before ``optimizer.step()`` skips that step's update (the step counter still
    advances). ``max_consecutive`` skipped steps in a row stop the run with an error naming the
    step; the last good checkpoint on disk is not touched.
    """

    def __init__(self, max_consecutive: int = 20) -> None:
        if max_consecutive < 1:
            raise ValueError(f"max_consecutive must be >= 1, got {max_consecutive}")
        self.max_consecutive = max_consecutive
        self.skipped_total = 0
        self.consecutive = 0

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        # one reduction (a NaN/Inf anywhere makes the total norm non-finite), one host sync
        finite = not grads or bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))
        if finite:
            self.consecutive = 0
        else:
            self.skipped_total += 1
            self.consecutive += 1
            optimizer.zero_grad(set_to_none=True)
            log.warning(
                "step %d: non-finite gradient, update skipped (%d in a row, %d in total)",
                trainer.global_step, self.consecutive, self.skipped_total,
            )
            if self.consecutive >= self.max_consecutive:
                raise NonFiniteGradientError(
                    f"{self.consecutive} consecutive steps with non-finite gradients ending at "
                    f"global step {trainer.global_step}; stopping. "
                    "The last good checkpoint is kept."
                )
        pl_module.log("train/nonfinite_skipped", float(self.skipped_total), on_step=True)

    def state_dict(self) -> dict[str, int]:
        return {"skipped_total": self.skipped_total}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.skipped_total = int(state_dict.get("skipped_total", 0))
