"""LightningModule of the unCLIP decoder and upsamplers, and loading one from a checkpoint.

One module serves both stages (2204.06125 sec. 2.1-2.2): a base decoder ``p(x | z_i[, y])`` at
``resolution``, conditioned on the CLIP image embedding (and optionally the caption tokens); and,
with ``low_res`` set, an upsampler ``p(x | x_low)`` that takes the image at
``low_res.resolution``, corrupted by :class:`~unclip.augment.LowResAugment`. The training step
is the shared diffusion loss (``GaussianDiffusion.training_loss``); sampling goes through
``unclip.diffusion.sample``. Batches are image-caption batches (CLIP runs on the fly) or
embedding-shard batches with images.

Hyperparameters are plain containers, so a checkpoint records everything needed to rebuild
the stage: the CLIP identity, resolution(s), diffusion, network, augmentation and sampling
configs. ``load_decoder(path)`` rebuilds it with ``weights_only=True``; with Lightning's
``EMAWeightAveraging`` the checkpoint's ``state_dict`` holds the EMA weights, which are used.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from unclip.augment import LowResAugment
from unclip.checkpoint import load_checkpoint
from unclip.clip.identity import check_same_clip
from unclip.diffusion import GaussianDiffusion, sample
from unclip.diffusion.consistency import LowPassConsistency
from unclip.lit.decoder_config import (
    plain,
    read_identity,
    resolve_low_res,
    resolve_network,
    resolve_sampling,
)
from unclip.lit.decoder_logging import bucket_losses, bucket_means, log_grid, sample_grid
from unclip.lit.scene_loss_weights import same_color_pair_weights, weighted_mean
from unclip.models.unet import UNet


class _Unowned:
    """Holds a frozen module outside the module tree: not in state_dict, EMA or deep copies."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    def __deepcopy__(self, memo: dict) -> _Unowned:
        return self


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Square-resize (B, C, H, W) images; antialiased when shrinking."""
    if images.shape[-2:] == (size, size):
        return images
    shrink = images.shape[-1] > size
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=shrink)


class DecoderModule(pl.LightningModule):
    """Diffusion decoder or upsampler of unCLIP (see the module docstring).

    Args:
        network: ``UNet`` keyword arguments; ``resolution``, ``image_emb_dim``,
            ``text_token_dim`` and ``low_res_channels`` are filled in from the arguments below.
        diffusion: ``GaussianDiffusion`` config ``{schedule: {name, timesteps}, prediction, ...}``.
        resolution: output side length in pixels.
        clip_identity: CLIP identity dict or ``clip_identity.json`` path (embedding widths and
            the record every checkpoint keeps); taken from ``clip`` when that is given.
        image_condition, text_condition: condition on the CLIP image embedding / caption tokens.
        low_res: upsampler settings ``{resolution, blur_prob, blur_kernel, blur_sigma,
            max_level, sample_level}``; ``None`` for a base decoder.
        sampling: ``unclip.diffusion.sample`` defaults for validation grids and :meth:`sample`.
        lr: peak learning rate.
        optimizer, scheduler: ``_partial_`` factories (``(params, lr=) -> optimizer``,
            ``optimizer -> LR scheduler`` stepped every step, e.g. a linear warmup).
        clip: a ``FrozenCLIP`` that encodes images (and captions) of batches lacking embeddings.
        channels_last: train on channels_last tensors (fast bf16 convolutions on CPU and GPU).
        num_val_samples: rows of the fixed validation grid (first validation batch, fixed seed).
        val_seed: seed of the validation grid's noise.
        loss_buckets: timestep buckets of the logged loss.
        same_color_pair_weight: the training loss weight of a scene of two objects of one
            colour, read from the batch's ``meta`` (:mod:`unclip.lit.scene_loss_weights`); 1
            weights every sample alike and needs no ``meta``.
    """

    def __init__(
        self,
        network: Mapping[str, Any],
        diffusion: Mapping[str, Any],
        resolution: int,
        clip_identity: Mapping[str, Any] | str | None = None,
        image_condition: bool = True,
        text_condition: bool = False,
        low_res: Mapping[str, Any] | None = None,
        sampling: Mapping[str, Any] | None = None,
        lr: float = 1e-4,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        clip: torch.nn.Module | None = None,
        channels_last: bool = True,
        num_val_samples: int = 8,
        val_seed: int = 0,
        loss_buckets: int = 4,
        same_color_pair_weight: float = 1.0,
    ) -> None:
        super().__init__()
        identity = read_identity(clip_identity)
        if clip is not None:
            if identity is not None:
                check_same_clip(identity, clip.identity, what="decoder.clip_identity")
            identity = dict(clip.identity)
        low_res_cfg = resolve_low_res(low_res, resolution)
        net_cfg = resolve_network(network, resolution, identity, image_condition,
                                  text_condition, low_res_cfg)
        diffusion_obj = GaussianDiffusion.from_config(plain(diffusion))
        if loss_buckets < 1 or num_val_samples < 0:
            raise ValueError("loss_buckets must be >= 1 and num_val_samples >= 0")
        if not 0.0 < float(same_color_pair_weight) < float("inf"):
            raise ValueError(f"decoder.same_color_pair_weight = {same_color_pair_weight}: a "
                             f"finite weight > 0")
        # logger=False: the runner logs the whole composed config; Lightning's own merge with
        # the data module's hparams would clash on `resolution` (data vs. output size)
        self.save_hyperparameters({
            "network": net_cfg,
            "diffusion": diffusion_obj.config,
            "resolution": int(resolution),
            "clip_identity": identity,
            "image_condition": bool(image_condition),
            "text_condition": bool(text_condition),
            "low_res": low_res_cfg,
            "sampling": resolve_sampling(sampling),
            "lr": float(lr),
            "channels_last": bool(channels_last),
            "num_val_samples": int(num_val_samples),
            "val_seed": int(val_seed),
            "loss_buckets": int(loss_buckets),
            "same_color_pair_weight": float(same_color_pair_weight),
        }, logger=False)
        self.net = UNet(**net_cfg)
        self.diffusion = diffusion_obj
        self.augment = (LowResAugment(**{k: v for k, v in low_res_cfg.items() if k != "resolution"})
                        if low_res_cfg else None)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self._clip = _Unowned(clip) if clip is not None else None
        self._val_fixed: dict[str, torch.Tensor] | None = None
        self._last_step_time: float | None = None
        self.last_samples: torch.Tensor | None = None  # the latest validation grid's samples

    @property
    def is_upsampler(self) -> bool:
        """Whether this stage takes a low-resolution image."""
        return self.augment is not None

    @property
    def uses_clip(self) -> bool:
        """Whether the network takes CLIP input (image embedding or caption tokens); an
        upsampler that takes neither fits under any CLIP (its ``clip_identity`` is a record)."""
        return bool(self.hparams["image_condition"] or self.hparams["text_condition"])

    # ----------------------------------------------------------------------------- data
    def embed_batch(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The batch with the CLIP tensors this stage needs, running ``clip`` where missing."""
        if "image" not in batch:
            raise KeyError(f"decoder batches need 'image' (the training target), got "
                           f"{sorted(batch)}; embedding shards must be written with images")
        out = dict(batch)
        need_image = self.hparams["image_condition"] and "image_emb" not in batch
        need_text = self.hparams["text_condition"] and "text_tokens" not in batch
        if need_image or need_text:
            if self._clip is None:
                raise ValueError("this batch lacks CLIP embeddings: give the module a `clip` "
                                 "(FrozenCLIP) or train from embedding shards")
            clip = self._clip.module.to(self.device)
            with torch.no_grad():
                if need_image:
                    out["image_emb"] = clip.encode_image(batch["image"]).float()
                if need_text:
                    enc = clip.encode_text(list(batch["caption"]))
                    out["text_tokens"], out["text_mask"] = enc.tokens, enc.mask
        return out

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        """Training images at the output resolution, channels_last when configured."""
        x0 = resize(images.float(), self.hparams["resolution"])
        return x0.contiguous(memory_format=torch.channels_last) if self.hparams[
            "channels_last"] else x0

    def low_res_of(self, images: torch.Tensor) -> torch.Tensor:
        """The upsampler's clean input: the images at ``low_res.resolution``."""
        return resize(images.float(), self.hparams["low_res"]["resolution"])

    def train_condition(
        self, b: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Network keyword conditioning of a training/validation batch (augmented low-res)."""
        cond: dict[str, torch.Tensor] = {}
        if self.hparams["image_condition"]:
            cond["image_emb"] = b["image_emb"].float()
        if self.hparams["text_condition"]:
            cond["text_tokens"], cond["text_mask"] = b["text_tokens"], b["text_mask"].bool()
        if self.is_upsampler:
            cond["low_res"], cond["aug_level"] = self.augment.train(
                self.low_res_of(b["image"]), self.diffusion, generator)
        return cond

    # ------------------------------------------------------------------------- training
    def on_fit_start(self) -> None:
        """Refuse embedding shards computed with a CLIP other than this stage's."""
        datamodule = self.trainer.datamodule
        found = getattr(datamodule, "clip_identity", None) if datamodule is not None else None
        expected = self.hparams["clip_identity"]
        if isinstance(found, Mapping) and expected is not None:
            check_same_clip(expected, found, what="this decoder (decoder.clip_identity)")

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        b = self.embed_batch(batch)
        x0 = self.targets(b["image"])
        loss, t = self.diffusion.training_loss(self.net, x0, self.train_condition(b))
        n = len(x0)
        # train/loss stays the plain mean, comparable across runs; the objective may weight it
        objective = self.training_objective(batch, loss)
        self.log("train/loss", loss.mean(), prog_bar=True, batch_size=n)
        # no host reads in the step: an empty bucket logs NaN rather than stall the GPU
        for name, value in bucket_means(loss, t, self.hparams["loss_buckets"]).items():
            self.log(f"train/loss_{name}", value, batch_size=n)
        now = time.perf_counter()
        if self._last_step_time is not None:
            self.log("train/images_per_sec", n / max(now - self._last_step_time, 1e-9),
                     batch_size=n)
        self._last_step_time = now
        return objective

    def training_objective(self, batch: Mapping[str, Any], loss: torch.Tensor) -> torch.Tensor:
        """The per-sample loss (B,) reduced to the training objective: its mean, or with
        ``same_color_pair_weight != 1`` its weighted mean over the batch's scenes."""
        weight = self.hparams["same_color_pair_weight"]
        if weight == 1.0:
            return loss.mean()
        if "meta" not in batch:
            raise KeyError(f"decoder.same_color_pair_weight = {weight} needs each batch's "
                           f"'meta' (the json ground truth), got {sorted(batch)}")
        keys = batch.get("key") or [str(i) for i in range(len(loss))]
        weights = same_color_pair_weights(batch["meta"], keys, weight)
        objective = weighted_mean(loss, weights)
        self.log("train/loss_weighted", objective, batch_size=len(loss))
        return objective

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise ValueError("DecoderModule needs an `optimizer` factory to train")
        decay, no_decay = [], []
        for p in self.net.parameters():
            # weight decay on weight matrices and kernels only: not on biases, norms, nulls
            (decay if p.ndim >= 2 else no_decay).append(p)
        opt = self.optimizer_factory(
            [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], lr=self.hparams["lr"])
        if self.scheduler_factory is None:
            return opt
        sched = self.scheduler_factory(opt)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------------- sampling
    def condition(
        self,
        image_emb: torch.Tensor | None = None,
        text_tokens: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        low_res: torch.Tensor | None = None,
        aug_level: float | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Sampling conditioning: raw CLIP tensors; the low-res image noised to ``aug_level``.

        ``aug_level`` defaults to ``low_res.sample_level`` of the config.
        """
        cond: dict[str, torch.Tensor] = {}
        if image_emb is not None:
            cond["image_emb"] = image_emb
        if text_tokens is not None:
            cond["text_tokens"] = text_tokens
            if text_mask is not None:
                cond["text_mask"] = text_mask.bool()
        if self.is_upsampler:
            size = self.hparams["low_res"]["resolution"]
            if low_res is None:
                raise ValueError(f"this stage is an upsampler: pass low_res (B, 3, {size}, {size})")
            if tuple(low_res.shape[-2:]) != (size, size):
                raise ValueError(f"this upsampler takes {size} px inputs, got low_res of shape "
                                 f"{tuple(low_res.shape)}")
            cond["low_res"], cond["aug_level"] = self.augment.sample(
                low_res.float(), self.diffusion, aug_level, generator)
        elif low_res is not None:
            raise ValueError("low_res given, but this stage is a base decoder")
        return cond

    def consistency(
        self, low_res: torch.Tensor | None, sigma: float | None
    ) -> LowPassConsistency | None:
        """The x0 transform tying an upsampler's samples to its clean ``low_res`` input below
        ``sigma`` output px (``unclip.diffusion.consistency``); ``None`` when sigma is 0/None."""
        if not sigma:
            return None
        if low_res is None:
            raise ValueError("sampling.low_pass_sigma applies to upsamplers only; set it to "
                             "null for a base decoder")
        return LowPassConsistency(low_res, self.hparams["resolution"], sigma)

    @torch.no_grad()
    def sample(
        self,
        image_emb: torch.Tensor | None = None,
        *,
        text_tokens: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        low_res: torch.Tensor | None = None,
        aug_level: float | None = None,
        x_T: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
        **overrides: Any,
    ) -> torch.Tensor:
        """Images (B, 3, R, R) in [-1, 1] through ``unclip.diffusion.sample``.

        ``overrides`` replace the ``sampling`` defaults (sampler, steps, spacing,
        guidance_scale, text_guidance_scale, threshold, autocast, low_pass_sigma). ``x_T``
        defaults to Gaussian noise from ``generator``.
        """
        opts = resolve_sampling({**self.hparams["sampling"], **overrides})
        use_autocast = opts.pop("autocast")
        sigma = opts.pop("low_pass_sigma")
        given = [v for v in (image_emb, low_res, text_tokens, x_T) if v is not None]
        if not given:
            raise ValueError("pass image_emb, low_res or x_T: they set the batch size")
        first = given[0]
        batch, device = first.shape[0], first.device
        cond = self.condition(image_emb, text_tokens, text_mask, low_res, aug_level, generator)
        r = self.hparams["resolution"]
        transform = self.consistency(low_res, sigma)
        if x_T is None:
            x_T = torch.randn(batch, 3, r, r, generator=generator, device=device)
        ctx = (torch.autocast(device.type, dtype=torch.bfloat16) if use_autocast
               else contextlib.nullcontext())
        with ctx:
            x = sample(self.diffusion, self.net, x_T.float(), cond=cond, generator=generator,
                       progress=progress, x0_transform=transform, **opts)
        return x.clamp(-1, 1)

    # ----------------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        self._last_step_time = None  # throughput counts training steps only

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        b = self.embed_batch(batch)
        x0 = self.targets(b["image"])
        gen = torch.Generator(device=self.device).manual_seed(self.hparams["val_seed"] + batch_idx)
        loss, t = self.diffusion.training_loss(self.net, x0, self.train_condition(b, gen),
                                               generator=gen)
        n = len(x0)
        self.log("val/loss", loss.mean(), prog_bar=True, batch_size=n, sync_dist=True)
        for name, value in bucket_losses(loss, t, self.hparams["loss_buckets"]).items():
            self.log(f"val/loss_{name}", value, batch_size=n, sync_dist=True)
        if batch_idx == 0 and self.hparams["num_val_samples"] > 0:
            # validation runs with the EMA weights swapped in by EMAWeightAveraging
            self.log_val_samples(b)

    def log_val_samples(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Sample the fixed validation rows with fixed seeds; log the grid next to the sources."""
        if self._val_fixed is None:  # first validation: keep these rows for the whole run
            k = self.hparams["num_val_samples"]
            keys = ("image", "image_emb", "text_tokens", "text_mask")
            self._val_fixed = {key: batch[key][:k].detach().cpu() for key in keys if key in batch}
        fixed = {k: v.to(self.device) for k, v in self._val_fixed.items()}
        gen = torch.Generator(device=self.device).manual_seed(self.hparams["val_seed"])
        cond_in: dict[str, Any] = {}
        if self.hparams["image_condition"]:
            cond_in["image_emb"] = fixed["image_emb"]
        if self.hparams["text_condition"]:
            cond_in["text_tokens"], cond_in["text_mask"] = fixed["text_tokens"], fixed["text_mask"]
        rows = [self.targets(fixed["image"])]
        if self.is_upsampler:
            cond_in["low_res"] = self.low_res_of(fixed["image"])
            rows.insert(0, cond_in["low_res"])
        samples = self.sample(**cond_in, generator=gen)
        self.last_samples = samples.detach().cpu()
        trainer = self._trainer
        if trainer is not None and trainer.is_global_zero:
            grid = sample_grid([*rows, samples], self.hparams["resolution"])
            out_dir = Path(trainer.default_root_dir) / "samples"
            caption = ("rows: low-res input, source, sample" if self.is_upsampler
                       else "rows: source, sample from its CLIP image embedding")
            log_grid(grid, trainer.loggers, out_dir, "val/samples", self.global_step, caption)
        return samples


def load_decoder(path: str | Path, map_location: str | torch.device = "cpu") -> DecoderModule:
    """Rebuild a trained decoder or upsampler (network, diffusion, augmentation) from a checkpoint.

    Loads with ``torch.load(weights_only=True)`` (or a safetensors export). With Lightning's
    ``EMAWeightAveraging`` the checkpoint's ``state_dict`` holds the EMA weights (the raw ones
    are under ``current_model_state``), so the EMA weights are used. Returned in eval mode;
    ``module.hparams`` holds the CLIP identity, resolution and configs.
    """
    ckpt = load_checkpoint(path, map_location)
    hp = ckpt.get("hyper_parameters")
    if not hp or "network" not in hp or "resolution" not in hp:
        raise ValueError(f"{path} is not a decoder checkpoint (no decoder hyperparameters)")
    module = DecoderModule(**hp)
    module.load_state_dict(ckpt["state_dict"])
    module.ema_weights = "current_model_state" in ckpt
    return module.to(map_location).eval()
