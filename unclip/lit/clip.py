"""LightningModule training an open_clip CLIP on image-caption shards (the domain CLIP).

The model is any open_clip architecture (``open_clip.create_model``), trained with open_clip's
own ``ClipLoss`` (gathered across ranks under DDP) and logit-scale clamp. Images arrive in the
project convention and go through :func:`unclip.clip.preprocess_images`, the preprocessing
``FrozenCLIP`` applies later, so train and use see the same input.

The open_clip model is the attribute ``module``: Lightning checkpoints then hold
``state_dict = {"module.<open_clip key>": ...}``, a layout open_clip's own loader accepts
(it strips a ``module.`` prefix), so ``open_clip.create_model_and_transforms(name,
pretrained="last.ckpt")`` works on them too. At the end of training the weights are also
released as a plain open_clip state dict at ``export_path``.

Validation logs the contrastive loss and, on shapes data, zero-shot attribute accuracy
(``val/zero_shot/{color_shape,position,relation,color_binding}``; :mod:`unclip.clip.zero_shot`).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import open_clip
import pytorch_lightning as pl
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.optim.swa_utils import update_bn
from torchmetrics import MeanMetric

from unclip.checkpoint import atomic_write
from unclip.clip.hard_negatives import batch_alternatives, batch_color_swaps, hard_negative_loss
from unclip.clip.mirror import mirror_pairs
from unclip.clip.model_configs import model_config as registered_config
from unclip.clip.model_configs import (
    register_config_dict,
    register_config_file,
    register_project_configs,
)
from unclip.clip.preprocess import preprocess_images
from unclip.clip.resolution_augment import degrade_resolution
from unclip.clip.tokenize import tokenize
from unclip.clip.zero_shot import TASKS, zero_shot_correct

log = logging.getLogger(__name__)

MODULE_PREFIX = "module."
ATTENTION_BACKENDS = (None, "auto", "math", "flash_attention", "efficient_attention",
                      "cudnn_attention")


def open_clip_state_dict(lightning_state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The open_clip state dict inside a ``CLIPModule`` state dict (strips ``module.``)."""
    return {
        k[len(MODULE_PREFIX) :]: v.detach().cpu().clone()
        for k, v in lightning_state_dict.items()
        if k.startswith(MODULE_PREFIX)
    }


def vision_positional_embedding(model: torch.nn.Module) -> torch.nn.Parameter:
    """The positional embedding of an open_clip vision tower (ViT or ModifiedResNet)."""
    visual = model.visual
    owner = getattr(visual, "attnpool", None) or visual
    embedding = getattr(owner, "positional_embedding", None)
    if not isinstance(embedding, torch.nn.Parameter):
        raise ValueError(f"{type(visual).__name__} has no positional embedding to re-initialise")
    return embedding


class CLIPModule(pl.LightningModule):
    """Contrastive training of an open_clip CLIP.

    Args:
        model_name: open_clip architecture (built in, or a project config such as
            ``shapes-clip``).
        model_config: path of an open_clip model-config JSON of your own (registered under its
            file stem, which then is the model name).
        model_cfg: the config itself, as checkpoints store it (registered under ``model_name``
            when that name is unknown, so a checkpoint reloads on another machine).
        pretrained: open_clip tag or weights file to start from (null: random init).
        lr: peak learning rate, passed to ``optimizer``.
        optimizer, scheduler: ``_partial_`` factories (``(params, lr=) -> optimizer``,
            ``optimizer -> LR scheduler`` stepped every step).
        weight_decay: decay of matrices; gains, biases and the logit scale are not decayed
            (open_clip's ``main.py`` convention).
        mirror_fraction: share of each batch replaced by mirrored copies with swapped spatial
            words (:mod:`unclip.clip.mirror`); 0 turns it off.
        hard_negatives: per caption with one spatial phrase, this many copies with the phrase
            replaced (:mod:`unclip.clip.hard_negatives`, NegCLIP) are extra negatives of its
            image in an added image-to-text loss; 0 turns it off.
        color_swaps: per caption naming two different colours, the caption with the colours
            exchanged is one more negative of its image, in a loss of its own (NegCLIP's
            attribute swap, :func:`unclip.clip.hard_negatives.color_swap`): it makes the
            embeddings bind each colour to its shape.
        hard_negative_weight: the weight of each of those losses next to open_clip's
            contrastive loss.
        max_logit_scale: the learned temperature is clamped to ``[0, ln max_logit_scale]``.
        position_init_std: when training from scratch, re-initialise the vision tower's
            positional embedding (ResNet attention pool, or ViT tokens) with this std. The
            default init (``1/sqrt(width)``) makes the pooled embedding nearly blind to where
            things are, and mirrored hard negatives then sit at a saddle that takes long to
            leave; a scale like the features' lets position reach the loss from step one.
            null: open_clip's init.
        low_res_prob: share of training images seen at a lower resolution: shrunk to a random
            side in ``[low_res_min_size, side)`` and enlarged back
            (:mod:`unclip.clip.resolution_augment`), so the CLIP reads the 32 px samples of a
            base decoder and soft upsampled ones; 0 turns it off.
        low_res_min_size: the smallest side of that augmentation, in pixels.
        bn_recalibration_batches: for vision towers with BatchNorm (ResNets): the last this many
            training batches are kept and the BatchNorm statistics recomputed from them at the
            current weights before each validation and before release (running averages lag
            behind weights that move fast; ``torch.optim.swa_utils.update_bn``). 0: off.
        export_path: where the trained weights are released as a plain open_clip state dict
            (null: not released).
        zero_shot: compute shapes zero-shot accuracy in validation (needs shapes ``meta``).
        channels_last: keep the vision tower's weights and its input images channels_last (the
            fast bf16 convolution layout on CPU and GPU; the same numbers, about 1.9x faster
            for the shapes ResNet tower on a 2-core CPU).
        attention_backend: the scaled-dot-product attention kernel for the training step
            (``torch.nn.attention.SDPBackend`` name, lower case). ``auto``: ``math`` on the CPU,
            where the flash kernel's backward is slow for short sequences (77 or fewer text
            tokens: the shapes CLIP's step 1.7 s -> 1.2 s), PyTorch's own choice on GPUs;
            null: PyTorch's own choice everywhere.
    """

    def __init__(
        self,
        model_name: str | None = "shapes-clip",
        model_config: str | None = None,
        model_cfg: dict[str, Any] | None = None,
        pretrained: str | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        mirror_fraction: float = 0.0,
        hard_negatives: int = 0,
        hard_negative_weight: float = 1.0,
        color_swaps: bool = False,
        max_logit_scale: float = 100.0,
        position_init_std: float | None = None,
        low_res_prob: float = 0.0,
        low_res_min_size: int = 24,
        bn_recalibration_batches: int = 8,
        export_path: str | None = None,
        zero_shot: bool = True,
        channels_last: bool = True,
        attention_backend: str | None = "auto",
    ) -> None:
        super().__init__()
        register_project_configs()
        if model_config is not None:
            stem = register_config_file(model_config)
            if model_name not in (None, stem):
                raise ValueError(
                    f"clip.model_name={model_name!r} disagrees with clip.model_config "
                    f"{model_config} (registered as {stem!r})"
                )
            model_name = stem
        if model_name is None:
            raise ValueError("CLIPModule needs clip.model_name or clip.model_config")
        if model_cfg is not None:
            register_config_dict(model_name, dict(model_cfg))
        if not 0.0 <= mirror_fraction <= 0.5:
            raise ValueError(f"clip.mirror_fraction must be in [0, 0.5], got {mirror_fraction}")
        if not 0.0 <= low_res_prob <= 1.0:
            raise ValueError(f"clip.low_res_prob must be in [0, 1], got {low_res_prob}")
        if attention_backend not in ATTENTION_BACKENDS:
            raise ValueError(f"clip.attention_backend must be one of {ATTENTION_BACKENDS}, "
                             f"got {attention_backend!r}")
        if low_res_min_size < 1:
            raise ValueError(f"clip.low_res_min_size must be >= 1, got {low_res_min_size}")
        self.save_hyperparameters(
            {
                "model_name": model_name,
                "model_cfg": registered_config(model_name),
                "pretrained": pretrained,
                "lr": float(lr),
                "weight_decay": float(weight_decay),
                "mirror_fraction": float(mirror_fraction),
                "hard_negatives": int(hard_negatives),
                "hard_negative_weight": float(hard_negative_weight),
                "color_swaps": bool(color_swaps),
                "max_logit_scale": float(max_logit_scale),
                "position_init_std": position_init_std,
                "low_res_prob": float(low_res_prob),
                "low_res_min_size": int(low_res_min_size),
                "bn_recalibration_batches": int(bn_recalibration_batches),
                "export_path": export_path,
                "zero_shot": bool(zero_shot),
                "channels_last": bool(channels_last),
                "attention_backend": attention_backend,
            }
        )
        self.module = open_clip.create_model(model_name, pretrained=pretrained, output_dict=True)
        if position_init_std is not None and pretrained is None:
            with torch.no_grad():
                vision_positional_embedding(self.module).normal_(0.0, position_init_std)
        if channels_last:
            self.module.visual.to(memory_format=torch.channels_last)
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.preprocess_cfg = dict(open_clip.get_model_preprocess_cfg(self.module))
        self.context_length = int(self.module.context_length)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.loss_fn = self._make_loss(rank=0, world_size=1)
        self.val_loss = MeanMetric()
        self.val_zero_shot = torch.nn.ModuleDict({task: MeanMetric() for task in TASKS})
        has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                     for m in self.module.visual.modules())
        self._recent_inputs: deque[torch.Tensor] = deque(
            maxlen=bn_recalibration_batches if has_bn else 0)

    # ----------------------------------------------------------------- training
    def setup(self, stage: str) -> None:
        """open_clip's loss gathers features across ranks itself (all negatives, local grads)."""
        if self.trainer is not None and self.trainer.world_size > 1:
            self.loss_fn = self._make_loss(self.trainer.global_rank, self.trainer.world_size)

    def _make_loss(self, rank: int, world_size: int) -> torch.nn.Module:
        """open_clip's loss for the model: ``SigLipLoss`` with a logit bias, else ``ClipLoss``."""
        if getattr(self.module, "logit_bias", None) is not None:
            return open_clip.SigLipLoss(rank=rank, world_size=world_size)
        return open_clip.ClipLoss(
            local_loss=world_size > 1, gather_with_grad=world_size > 1,
            rank=rank, world_size=world_size,
        )

    def _loss(self, pixels: torch.Tensor, captions: list[str],
              hard_negatives: int = 0, color_swaps: bool = False) -> torch.Tensor:
        """open_clip's loss of preprocessed images and their captions, plus the weighted
        hard-negative losses: spatial alternatives when ``hard_negatives`` > 0, colour swaps
        when ``color_swaps`` (their captions encoded in one pass)."""
        tokens, _ = tokenize(self.tokenizer, captions, self.context_length)
        out = self.module(pixels, tokens.to(self.device))
        loss = self.loss_fn(**{k: v.float() for k, v in out.items()})
        sets = {}
        if hard_negatives > 0:
            sets["hard_negative_loss"] = batch_alternatives(captions, hard_negatives)
        if color_swaps:
            sets["color_swap_loss"] = batch_color_swaps(captions)
        sets = {name: (rows, texts) for name, (rows, texts) in sets.items() if rows}
        if not sets:
            return loss
        texts = [t for _, group in sets.values() for t in group]
        negative_tokens, _ = tokenize(self.tokenizer, texts, self.context_length)
        negatives = self.module.encode_text(negative_tokens.to(self.device), normalize=True)
        start = 0
        for name, (rows, group) in sets.items():
            extra = hard_negative_loss(out["image_features"].float(), out["text_features"].float(),
                                       negatives[start:start + len(group)].float(), rows,
                                       out["logit_scale"].float())
            start += len(group)
            self.log(f"train/{name}", extra, batch_size=len(rows))
            loss = loss + self.hparams.hard_negative_weight * extra
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        images, captions = batch["image"], list(batch["caption"])
        if self.hparams.mirror_fraction > 0:
            images, captions = mirror_pairs(
                images, captions, batch.get("meta"), self.hparams.mirror_fraction
            )
        if self.hparams.get("low_res_prob", 0.0) > 0:
            images = degrade_resolution(images, self.hparams.low_res_prob,
                                        self.hparams.low_res_min_size)
        pixels = self._pixels(images)
        if self._recent_inputs.maxlen:
            self._recent_inputs.append(pixels.detach())
        with self._attention():
            loss = self._loss(pixels, captions, self.hparams.hard_negatives,
                              self.hparams.get("color_swaps", False))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(captions))
        self.log("train/logit_scale", self.module.logit_scale.detach().exp(),
                 batch_size=len(captions))
        return loss

    def _attention(self) -> contextlib.AbstractContextManager:
        """The configured scaled-dot-product attention kernel, as a context."""
        name = self.hparams.get("attention_backend")
        if name == "auto":
            name = "math" if self.device.type == "cpu" else None
        if not name:
            return contextlib.nullcontext()
        return sdpa_kernel([getattr(SDPBackend, name.upper())])

    def _pixels(self, images: torch.Tensor) -> torch.Tensor:
        """The vision tower's input: preprocessed, channels_last when configured."""
        pixels = preprocess_images(images, self.preprocess_cfg)
        if self.hparams.get("channels_last", False):
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        return pixels

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Clamp the temperature after each step, as open_clip's training loop does."""
        with torch.no_grad():
            self.module.logit_scale.clamp_(0, math.log(self.hparams.max_logit_scale))

    def recalibrate_batch_norm(self) -> None:
        """Recompute BatchNorm statistics of the vision tower from the kept training batches."""
        if self._recent_inputs:
            update_bn(list(self._recent_inputs), self.module.visual)

    # ---------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        self.recalibrate_batch_norm()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        captions = list(batch["caption"])
        pixels = self._pixels(batch["image"])
        self.val_loss.update(self._loss(pixels, captions), weight=len(captions))
        metas = batch.get("meta")
        if not self.hparams.zero_shot or not metas or not any(m.get("objects") for m in metas):
            return
        image_emb = self.module.encode_image(pixels)
        correct = zero_shot_correct(image_emb, metas, self._encode_prompts)
        for task, right in correct.items():
            if right.numel():
                self.val_zero_shot[task].update(right.float().to(self.device))

    def _encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        tokens, _ = tokenize(self.tokenizer, prompts, self.context_length)
        return self.module.encode_text(tokens.to(self.device))

    def on_validation_epoch_end(self) -> None:
        if self.val_loss.update_count:
            self.log("val/loss", self.val_loss.compute(), prog_bar=True)
        self.val_loss.reset()
        for task, metric in self.val_zero_shot.items():
            if metric.update_count:
                self.log(f"val/zero_shot/{task}", metric.compute(), prog_bar=True)
            metric.reset()

    # ----------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> Any:
        decay, no_decay = [], []
        for name, p in self.module.named_parameters():
            if not p.requires_grad:
                continue
            exclude = p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name \
                or "logit_scale" in name
            (no_decay if exclude else decay).append(p)
        groups = [
            {"params": no_decay, "weight_decay": 0.0},
            {"params": decay, "weight_decay": self.hparams.weight_decay},
        ]
        factory = self.optimizer_factory or torch.optim.AdamW
        optimizer = factory(groups, lr=self.hparams.lr)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        schedule = {"scheduler": scheduler, "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    # ------------------------------------------------------------------- release
    def export(self, path: str | Path) -> Path:
        """Write the weights as a plain open_clip state dict (``pretrained=<path>`` loads it)."""
        state = open_clip_state_dict(self.state_dict())
        return atomic_write(path, lambda tmp: torch.save(state, tmp))

    def on_train_end(self) -> None:
        path = self.hparams.export_path
        self.recalibrate_batch_norm()
        if not path or self.trainer.fast_dev_run or self.trainer.global_rank != 0:
            return
        written = self.export(path)
        log.info("released the CLIP weights (open_clip state dict) at %s", written)
