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
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import WandbLogger
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


def batch_sizes(datamodule: Any, trainer: pl.Trainer) -> dict[str, int] | None:
    """Per-device and global batch size (samples per optimizer step over every device, node and
    accumulated batch); None when the data module has no integer ``batch_size``."""
    per_device = getattr(datamodule, "batch_size", None)
    if not isinstance(per_device, int) or isinstance(per_device, bool):
        return None
    devices = trainer.num_devices * trainer.num_nodes
    accumulate = trainer.accumulate_grad_batches
    return {"per_device": per_device, "devices": devices, "accumulate_grad_batches": accumulate,
            "global": per_device * devices * accumulate}


def scaled_lr(lr: float, global_batch: int, scaling: Mapping[str, Any] | None) -> float:
    """``lr`` scaled to the global batch, only when asked: ``scaling`` is ``None`` (keep ``lr``)
    or ``{rule: linear|sqrt|none, base_batch_size: B}`` (``lr`` was tuned at global batch B;
    linear: x global/B (Goyal et al. 2017), sqrt: x sqrt(global/B))."""
    if not scaling or scaling.get("rule", "none") == "none":
        return lr
    rule, base = scaling.get("rule"), scaling.get("base_batch_size")
    if not isinstance(base, int) or base < 1:
        raise ValueError(f"lr_scaling.base_batch_size must be a positive int, got {base!r}")
    ratio = global_batch / base
    if rule == "linear":
        return lr * ratio
    if rule == "sqrt":
        return lr * math.sqrt(ratio)
    raise ValueError(f"lr_scaling.rule must be linear, sqrt or none, got {rule!r}")


def finish_wandb(loggers: list[Any]) -> None:
    """Close the W&B run, so the next job of a multirun (same process) starts its own run."""
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        wandb.finish()


def train(cfg: DictConfig, module_key: str) -> dict[str, float]:
    """Fit ``cfg[module_key]`` on ``cfg.data`` with the configured trainer; return final metrics."""
    if module_key not in cfg:
        raise KeyError(f"the config has no '{module_key}' section (the LightningModule to train)")
    check_config(cfg)  # unknown keys, wrong types: fail before any data or model is touched
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    if torch.cuda.is_available():  # TF32 matmuls (cuDNN convolutions use TF32 by default)
        torch.set_float32_matmul_precision("high")

    log.info("instantiating data <%s>", cfg.data.get("_target_"))
    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data)
    callbacks = instantiate_group(cfg.get("callbacks"), "callbacks")
    loggers = instantiate_group(cfg.get("logger"), "logger")
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    sizes = batch_sizes(datamodule, trainer)
    if sizes is not None:
        log.info("batch size: %(per_device)d per device x %(devices)d devices x "
                 "%(accumulate_grad_batches)d accumulated = %(global)d global", sizes)
        lr = cfg[module_key].get("lr")
        new_lr = scaled_lr(lr, sizes["global"], cfg.get("lr_scaling")) if lr is not None else lr
        if new_lr != lr:
            log.info("lr scaled to the global batch (%s): %g -> %g", cfg.lr_scaling, lr, new_lr)
            cfg[module_key].lr = new_lr
    log.info("instantiating model <%s>", cfg[module_key].get("_target_"))
    model: pl.LightningModule = hydra.utils.instantiate(cfg[module_key])
    run_config = {k: v for k, v in OmegaConf.to_container(cfg).items() if k != "hydra"}
    if sizes is not None:
        run_config["batch_sizes"] = sizes  # not "batch_size": the data module logs that
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(OmegaConf.create(run_config), resolve=True))

    ckpt_path = resolve_resume_path(cfg)
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        if trainer.state.status == TrainerStatus.FINISHED and not trainer.interrupted:
            final = Path(cfg.paths.output_dir) / "checkpoints" / FINAL_CHECKPOINT
            trainer.save_checkpoint(final)  # atomic (temp file + rename); marks the run complete
            log.info("final checkpoint: %s", final)
    finally:
        finish_wandb(trainer.loggers)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    log.info("finished: %s", metrics)
    return metrics
