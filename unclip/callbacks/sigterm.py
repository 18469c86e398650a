"""Save ``last.ckpt`` when asked to stop (SIGTERM, as SLURM sends before preemption)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class CheckpointOnSigterm(pl.Callback):
    """On SIGTERM, write the run's ``last.ckpt`` after the current step and exit cleanly.

    Lightning notices SIGTERM, finishes the running batch and raises ``SIGTERMException``; this
    callback's ``on_exception`` then saves the full training state (model, optimizer, schedulers,
    EMA, loops) where ``ModelCheckpoint`` keeps ``last.ckpt``, so rerunning the same command resumes
    from the step the signal arrived at.
    """

    def __init__(self, dirpath: str | None = None) -> None:
        self.dirpath = dirpath

    def _last_path(self, trainer: pl.Trainer) -> Path:
        if self.dirpath:
            return Path(self.dirpath) / "last.ckpt"
        ckpt_cb = trainer.checkpoint_callback
        if isinstance(ckpt_cb, ModelCheckpoint) and ckpt_cb.dirpath:
            name = ckpt_cb.CHECKPOINT_NAME_LAST + ckpt_cb.FILE_EXTENSION
            return Path(ckpt_cb.dirpath) / name
        return Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        path = self._last_path(trainer)
        log.warning("SIGTERM at global step %d: saving %s", trainer.global_step, path)
        trainer.save_checkpoint(path)
