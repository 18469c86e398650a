"""The one training runner behind train_clip.py, train_prior.py and train_decoder.py.

Each entry point composes its Hydra config and calls :func:`train` with the root key that holds
its LightningModule config (``clip``, ``prior`` or ``decoder``). Everything else is shared: seeds,
the data module (``cfg.data``), callbacks (``cfg.callbacks``), loggers (``cfg.logger``), the
Trainer (``cfg.trainer``), resumption from the run directory's ``last.ckpt``, and a
``final.ckpt`` written once training has run to its end (the file later stages and the demo
look for).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.trainer.states import TrainerStatus

from unclip.callbacks.atomic_io import AtomicCheckpointIO
from unclip.config_check import check_config

log = logging.getLogger(__name__)

FINAL_CHECKPOINT = "final.ckpt"


def instantiate_group(cfg: DictConfig | None, group: str) -> list[Any]:
    """Instantiate every ``_target_`` entry of a dict-of-configs group (callbacks, logger)."""
    if not cfg:
        return []
    if not isinstance(cfg, DictConfig):
        raise TypeError(f"config group '{group}' must be a mapping of name -> config, got {cfg!r}")
    objects = []
    for name, conf in cfg.items():
        if conf is None:
            continue
        if not isinstance(conf, DictConfig) or "_target_" not in conf:
            raise ValueError(f"'{group}.{name}' has no _target_: every entry must be instantiable")
        objects.append(hydra.utils.instantiate(conf))
    return objects


def resolve_resume_path(cfg: DictConfig) -> str | None:
    """Checkpoint to resume from: ``ckpt_path`` if given, else the run's ``last.ckpt`` if any.

    ``ckpt_path=null`` (default) resumes automatically when the run directory already holds a
    ``checkpoints/last.ckpt`` (a rerun of the same command with the same ``run_name``);
    ``resume=false`` starts fresh regardless.
    """
    explicit = cfg.get("ckpt_path")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"ckpt_path={explicit!r}: no such checkpoint file")
        return str(path)
    if not cfg.get("resume", True):
        return None
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    return str(last) if last.is_file() else None


def train(cfg: DictConfig, module_key: str) -> dict[str, float]:
    """Fit ``cfg[module_key]`` on ``cfg.data`` with the configured trainer; return final metrics."""
    if module_key not in cfg:
        raise KeyError(f"the config has no '{module_key}' section (the LightningModule to train)")
    check_config(cfg)  # unknown keys, wrong types: fail before any data or model is touched
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)

    log.info("instantiating data <%s>", cfg.data.get("_target_"))
    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data)
    log.info("instantiating model <%s>", cfg[module_key].get("_target_"))
    model: pl.LightningModule = hydra.utils.instantiate(cfg[module_key])
    callbacks = instantiate_group(cfg.get("callbacks"), "callbacks")
    loggers = instantiate_group(cfg.get("logger"), "logger")
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    run_config = {k: v for k, v in OmegaConf.to_container(cfg).items() if k != "hydra"}
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(OmegaConf.create(run_config), resolve=True))

    ckpt_path = resolve_resume_path(cfg)
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    if trainer.state.status == TrainerStatus.FINISHED and not trainer.interrupted:
        final = Path(cfg.paths.output_dir) / "checkpoints" / FINAL_CHECKPOINT
        trainer.save_checkpoint(final)  # atomic (temp file + rename); marks the run as complete
        log.info("final checkpoint: %s", final)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    log.info("finished: %s", metrics)
    return metrics
