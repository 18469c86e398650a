"""This project's stages, built from the shipped Hydra configs, for the benchmarks.

The modules are the real ones (``DecoderModule``, ``PriorModule``) with the optimizer, scheduler
and trainer settings of ``configs/``; only the CLIP identity is a stand-in record of the
``shapes-clip`` widths, so no embedding shards are needed. Their training is timed through a real
``pytorch_lightning.Trainer`` (``training_step``, closure, gradient clipping, optimizer and
scheduler steps), on one fixed in-memory batch so that data loading is off the measurement
(``data_vs_training.py`` measures it separately).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import hydra.utils
import pytorch_lightning as pl
import torch
from _bench import PeakMemory, sync
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, IterableDataset

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `unclip` from this checkout, whatever the working directory
    sys.path.insert(0, str(ROOT))
CONFIGS = ROOT / "configs"
# widths of unclip/clip_configs/shapes-clip.json, as FrozenCLIP("shapes-clip").identity has them
IDENTITY = {"model_name": "shapes-clip", "config_sha256": "benchmark", "pretrained": None,
            "weights_sha256": None, "embed_dim": 256, "token_dim": 192, "context_length": 32,
            "image_size": [64, 64]}


def stage_config(group: str, name: str, **overrides: Any) -> dict[str, Any]:
    """A ``configs/<group>/<name>.yaml`` LightningModule config (its ``defaults`` merged: other
    configs of the group, and nested groups such as ``{scheduler: constant}``)."""
    path = CONFIGS / group / f"{name}.yaml"
    cfg = OmegaConf.load(path)
    defaults = cfg.pop("defaults", None) or []
    base = OmegaConf.create()
    for entry in defaults:
        if entry == "_self_":
            continue
        if isinstance(entry, str):
            part = OmegaConf.create(stage_config(group, entry))
        else:  # a nested group: {subgroup: option} -> configs/<group>/<subgroup>/<option>.yaml
            ((sub, option),) = entry.items()
            part = OmegaConf.create({sub: stage_config(f"{group}/{sub}", option)})
        base = OmegaConf.merge(base, part)
    cfg = OmegaConf.merge(base, cfg, OmegaConf.create(overrides))
    return _drop_interpolations(OmegaConf.to_container(cfg, resolve=False))


def _drop_interpolations(node: Any) -> Any:
    """Interpolations into the root config (``${data...}``, ``${trainer...}``) become None;
    the builders below fill in what they stand for."""
    if isinstance(node, dict):
        return {k: _drop_interpolations(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_drop_interpolations(v) for v in node]
    return None if isinstance(node, str) and "${" in node else node


def trainer_config() -> dict[str, Any]:
    """``configs/trainer/default.yaml`` as a dict (gradient clipping, precision...)."""
    return OmegaConf.to_container(OmegaConf.load(CONFIGS / "trainer" / "default.yaml"))


def build_decoder(name: str = "base32", identity: Mapping[str, Any] | None = None,
                  **overrides: Any) -> pl.LightningModule:
    """A ``DecoderModule`` from ``configs/decoder/<name>.yaml`` (random weights)."""
    cfg = stage_config("decoder", name, **overrides)
    cfg["clip_identity"] = dict(identity or IDENTITY)
    torch.manual_seed(0)
    return hydra.utils.instantiate(cfg, _convert_="all")


def build_prior(name: str = "small", identity: Mapping[str, Any] | None = None,
                max_steps: int = 10_000, **overrides: Any) -> pl.LightningModule:
    """A ``PriorModule`` from ``configs/prior/<name>.yaml`` (random weights)."""
    cfg = stage_config("prior", name, **overrides)
    cfg["clip_identity"] = dict(identity or IDENTITY)
    if "scheduler" in cfg and "total_steps" in cfg["scheduler"]:
        cfg["scheduler"]["total_steps"] = max_steps
    torch.manual_seed(0)
    return hydra.utils.instantiate(cfg, _convert_="all")


class FixedBatches(IterableDataset):
    """The same batch forever (the loader is off the critical path of this measurement)."""

    def __init__(self, batch: Mapping[str, Any]) -> None:
        self.batch = dict(batch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            yield self.batch


def decoder_batch(batch: int, resolution: int, generator_seed: int = 0) -> dict[str, Any]:
    """An embedding-shard batch with images (``image``, ``image_emb``, caption tokens)."""
    g = torch.Generator().manual_seed(generator_seed)
    length = IDENTITY["context_length"]
    mask = torch.arange(length)[None] < torch.randint(4, 12, (batch, 1), generator=g)
    return {
        "image": 2 * torch.rand(batch, 3, resolution, resolution, generator=g) - 1,
        "image_emb": torch.randn(batch, IDENTITY["embed_dim"], generator=g),
        "text_emb": torch.randn(batch, IDENTITY["embed_dim"], generator=g),
        "text_tokens": torch.randn(batch, length, IDENTITY["token_dim"], generator=g).half(),
        "text_mask": mask,
    }


class StepTimer(pl.Callback):
    """Wall-clock time of each training batch after ``warmup`` batches; peak memory of them."""

    def __init__(self, device: torch.device, warmup: int, memory: PeakMemory) -> None:
        self.device, self.warmup, self.memory = device, warmup, memory
        self.ends: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        sync(self.device)
        self.ends.append(time.perf_counter())
        if len(self.ends) == self.warmup:
            self.memory.start()

    def step_times(self) -> list[float]:
        ends = self.ends[self.warmup - 1:] if self.warmup else self.ends
        return [b - a for a, b in zip(ends[:-1], ends[1:], strict=False)]


def fit_steps(module: pl.LightningModule, batch: Mapping[str, Any], device: torch.device,
              precision: str, steps: int, warmup: int, memory: PeakMemory,
              callbacks: list[pl.Callback] | None = None,
              datamodule: Mapping[str, Any] | None = None) -> list[float]:
    """Train ``warmup + steps`` steps with a fresh Trainer; the times of the last ``steps``.

    Batches are ``batch`` over and over, or, with ``datamodule`` (a data config with
    ``_target_``), what that data module's train loader delivers.
    """
    warmup = max(warmup, 1)  # the first interval starts at the end of a warm-up step
    timer = StepTimer(device, warmup, memory)
    tcfg = trainer_config()
    trainer = pl.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
        precision="bf16-mixed" if precision == "bf16" else "32-true",
        max_steps=warmup + steps, gradient_clip_val=tcfg["gradient_clip_val"],
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        callbacks=[timer, *(callbacks or [])], log_every_n_steps=tcfg["log_every_n_steps"],
    )
    if datamodule is not None:
        trainer.fit(module, datamodule=hydra.utils.instantiate(dict(datamodule), _convert_="all"))
    else:
        trainer.fit(module, train_dataloaders=DataLoader(FixedBatches(batch), batch_size=None))
    return timer.step_times()


def default_callbacks() -> list[pl.Callback]:
    """The callbacks of ``configs/callbacks/default.yaml`` that act on every step."""
    from pytorch_lightning.callbacks import EMAWeightAveraging

    from unclip.callbacks import NonFiniteGuard

    return [EMAWeightAveraging(decay=0.999, update_every_n_steps=1), NonFiniteGuard()]


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def manual_step_fn(module: pl.LightningModule, batch: Mapping[str, Any], device: torch.device,
                   precision: str) -> Any:
    """One training step without a Trainer (for FLOP counting and kernel profiles).

    The module's own ``training_step`` under autocast, backward, gradient clipping at the
    trainer config's value and its optimizer's step: the work the Trainer does, minus
    Lightning's bookkeeping (``self.log`` without a trainer is a no-op).
    """
    import warnings

    from _bench import autocast

    module.to(device).train()
    batch = to_device(module.on_before_batch_transfer(batch, 0), device)  # e.g. the prior's cut
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    clip = trainer_config()["gradient_clip_val"]

    def step() -> None:
        module.trainer = None  # detached from any earlier fit: self.log is then a no-op
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with autocast(device, precision):
                loss = module.training_step(batch, 0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step
