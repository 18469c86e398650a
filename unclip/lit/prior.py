"""LightningModule of the unCLIP diffusion prior, and loading a trained prior from a checkpoint.

The module owns the network (``PriorTransformer``), the parameter-free diffusion
(``unclip.diffusion``) and the CLIP embedding normalisers (``EmbeddingNorm``). Its
hyperparameters are plain containers, so a checkpoint holds everything needed to rebuild it:
the CLIP identity, the normalisation with its statistics, the diffusion, network and sampling
configs. ``load_prior(path)`` rebuilds it with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from unclip.checkpoint import load_checkpoint
from unclip.clip.identity import check_same_clip
from unclip.data.shards import expand_shards, shard_directory
from unclip.diffusion import GaussianDiffusion, sample
from unclip.embedding_norm import EmbeddingNorm
from unclip.lit.prior_metrics import CaptionMeans, prior_metrics
from unclip.models.prior_transformer import PriorTransformer, trim_padding
from unclip.rerank import best_of

DEFAULT_SAMPLING = {
    "sampler": "ddpm",
    "steps": 64,  # 2204.06125: 64 sampling steps for the prior
    "spacing": "uniform",
    "eta": 0.0,
    "guidance_scale": 1.0,  # the paper uses no guidance for the prior
    "best_of": 2,  # 2204.06125 sec. 2.1: keep the best of 2 samples by text similarity
    "clamp_l2norm": False,  # x0 predictions projected onto the l2 sphere (DALLE2-pytorch)
}


def plain(value: Any) -> Any:
    """OmegaConf containers -> plain dicts/lists (checkpoints must load with weights_only)."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def read_json(value: Mapping | str | Path, name: str) -> dict[str, Any]:
    """A mapping as is; else the JSON file ``name`` found from ``value``.

    ``value`` may be the file itself, a directory holding ``name``, or a shard pattern (e.g.
    ``${data.train_shards}``) whose shards' directory holds it (written by the precompute step).
    """
    if isinstance(value, Mapping):
        return dict(plain(value))
    path = Path(value)
    if path.is_dir():
        path = path / name
    if not path.is_file():
        try:
            directory = shard_directory(expand_shards(str(value)))
        except ValueError as err:
            raise FileNotFoundError(f"{name}: {value!r} is no file, directory or shard pattern "
                                    f"that exists ({err})") from err
        if directory is None or not (directory / name).is_file():
            raise FileNotFoundError(f"no {name} beside the shards of {value!r}")
        path = directory / name
    return json.loads(path.read_text())


class _Unowned:
    """Holds a frozen module without registering it: not in state_dict, EMA or deep copies."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    def __deepcopy__(self, memo: dict) -> _Unowned:
        return self


def resolve_norm(norm: Mapping[str, Any], dim: int) -> dict[str, dict[str, Any]]:
    """``{kind, stats}`` -> ``{image: cfg, text: cfg}``; ``stats`` (read for ``meanstd`` only) is
    a dict or where ``stats.json`` is (see ``read_json``).

    Already-resolved ``{image, text}`` configs (as stored in checkpoints) pass through.
    """
    norm = dict(plain(norm))
    if set(norm) == {"image", "text"}:
        return norm
    unknown = set(norm) - {"kind", "stats"}
    if unknown or "kind" not in norm:
        raise ValueError(
            f"norm must be {{kind, stats}} or {{image, text}}, got keys {sorted(norm)}"
        )
    kind, stats = norm["kind"], norm.get("stats")
    if kind == "meanstd":
        if stats is None:
            raise ValueError("norm.kind='meanstd' needs norm.stats (the precompute stats.json)")
        stats = read_json(stats, "stats.json")
        sides = {w: EmbeddingNorm.from_stats(kind, stats, which=w) for w in ("image", "text")}
    else:
        sides = {w: EmbeddingNorm(kind, dim) for w in ("image", "text")}
    for side, n in sides.items():
        if n.dim != dim:
            raise ValueError(f"{side} statistics have width {n.dim}, CLIP embeddings have {dim}")
    return {w: n.config() for w, n in sides.items()}


def resolve_network(
    network: Mapping[str, Any], identity: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Fill ``dim``, ``token_dim``, ``text_context`` left null from the CLIP identity; check
    given values against it."""
    net = dict(plain(network))
    allowed = set(inspect.signature(PriorTransformer).parameters)
    unknown = set(net) - allowed
    if unknown:
        raise ValueError(
            f"unknown prior network keys {sorted(unknown)}; allowed: {sorted(allowed)}"
        )
    for key, id_key in (("dim", "embed_dim"), ("token_dim", "token_dim")):
        known = identity.get(id_key) if identity else None
        if net.get(key) is None:
            if known is None:
                raise ValueError(f"network.{key} is null and the CLIP identity has no {id_key!r}")
            net[key] = int(known)
        elif known is not None and int(known) != int(net[key]):
            raise ValueError(f"network.{key}={net[key]} but the CLIP model has {id_key}={known}")
    context = identity.get("context_length") if identity else None
    if net.get("text_context") is None:
        if context is None:
            raise ValueError("network.text_context is null and the CLIP identity has no "
                             "'context_length'")
        net["text_context"] = int(context)
    elif context is not None and int(net["text_context"]) < int(context):
        raise ValueError(f"network.text_context={net['text_context']} is shorter than the CLIP "
                         f"context_length={context}")
    return net


class PriorModule(pl.LightningModule):
    """Diffusion prior p(z_i | y) of unCLIP (2204.06125 sec. 2.1) as a LightningModule.

    Args:
        network: ``PriorTransformer`` keyword arguments; ``dim``, ``token_dim`` and
            ``text_context`` may be null and are then read from the CLIP identity.
        diffusion: ``GaussianDiffusion`` config: ``{schedule: {name, timesteps, ...},
            prediction, loss_weighting, ...}``.
        norm: ``{kind: l2 | meanstd | none, stats: where stats.json is (meanstd only)}``.
        clip_identity: the CLIP identity dict, or where ``clip_identity.json`` is: the file, its
            directory or the embedding shard pattern (``${data.train_shards}``); taken from
            ``clip`` when that is given.
        sampling: defaults of ``sample`` (sampler, steps, spacing, eta, guidance_scale, best_of).
        lr: peak learning rate, passed to ``optimizer`` (``prior.lr=3e-4`` on the command line).
        optimizer, scheduler: ``_partial_`` factories (``(params, lr=) -> optimizer``,
            ``optimizer -> LR scheduler`` stepped every step).
        clip: a ``FrozenCLIP`` to encode image-caption batches on the fly (no embedding shards).
        val_sample: sample and log the embedding metrics in validation (else only the loss).
        ceiling_batches: training batches averaged per caption for the same-caption ceiling
            (0: no ceiling).
    """

    def __init__(
        self,
        network: Mapping[str, Any],
        diffusion: Mapping[str, Any],
        norm: Mapping[str, Any],
        clip_identity: Mapping[str, Any] | str | None = None,
        sampling: Mapping[str, Any] | None = None,
        lr: float = 1e-4,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        clip: torch.nn.Module | None = None,
        val_sample: bool = True,
        ceiling_batches: int = 0,
    ) -> None:
        super().__init__()
        identity = None
        if clip_identity is not None:
            try:
                identity = read_json(clip_identity, "clip_identity.json")
            except FileNotFoundError:
                if clip is None:
                    raise  # with `clip`, image-caption shards carry no identity: use clip's
        if clip is not None:
            if identity is not None:
                check_same_clip(identity, clip.identity, what="the prior's clip_identity")
            identity = dict(clip.identity)
        net_cfg = resolve_network(network, identity)
        norm_cfg = resolve_norm(norm, net_cfg["dim"])
        sampling_cfg = {**DEFAULT_SAMPLING, **(plain(sampling) or {})}
        unknown = set(sampling_cfg) - set(DEFAULT_SAMPLING)
        if unknown:
            raise ValueError(f"unknown sampling options {sorted(unknown)}")
        diffusion_obj = GaussianDiffusion.from_config(plain(diffusion))
        self.save_hyperparameters(
            {
                "network": net_cfg,
                "diffusion": diffusion_obj.config,
                "norm": norm_cfg,
                "clip_identity": identity,
                "sampling": sampling_cfg,
                "lr": float(lr),
                "val_sample": val_sample,
                "ceiling_batches": ceiling_batches,
            }
        )
        self.net = PriorTransformer(**net_cfg)
        self.diffusion = diffusion_obj
        self.image_norm = EmbeddingNorm.from_config(norm_cfg["image"])
        self.text_norm = EmbeddingNorm.from_config(norm_cfg["text"])
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self._clip = _Unowned(clip) if clip is not None else None
        self._caption_means: dict[str, torch.Tensor] | None = None

    # ----------------------------------------------------------------------------- data
    def embed_batch(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Raw CLIP tensors of a batch: from embedding shards, or CLIP run on images/captions."""
        if "image_emb" in batch:
            return dict(batch)
        if "image" not in batch or "caption" not in batch:
            raise KeyError(f"prior batch needs image_emb or image+caption, got {sorted(batch)}")
        if self._clip is None:
            raise ValueError("image-caption batches need the module's `clip` (a FrozenCLIP)")
        clip = self._clip.module.to(self.device)
        with torch.no_grad():
            enc = clip.encode_text(list(batch["caption"]))
            image_emb = clip.encode_image(batch["image"])
        tokens, mask = trim_padding(enc.tokens, enc.mask)  # once per batch, as for shards
        return {
            **batch,
            "image_emb": image_emb.float(),
            "text_emb": enc.pooled.float(),
            "text_tokens": tokens,
            "text_mask": mask,
        }

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Cut the caption padding that no row of the batch uses, on the host (no GPU sync)."""
        if isinstance(batch, Mapping) and "text_tokens" in batch and "text_mask" in batch:
            tokens, mask = trim_padding(batch["text_tokens"], batch["text_mask"])
            batch = {**batch, "text_tokens": tokens, "text_mask": mask}
        return batch

    def condition(
        self,
        text_emb: torch.Tensor,
        text_tokens: torch.Tensor,
        text_mask: torch.Tensor,
        trim: bool = True,
    ) -> dict[str, torch.Tensor]:
        """The network's keyword conditioning from raw CLIP text outputs.

        ``trim`` cuts the padding no row uses (:func:`trim_padding`, one host read); training
        and validation batches were cut before they reached the device.
        """
        if trim:
            text_tokens, text_mask = trim_padding(text_tokens, text_mask)
        return {
            "text_emb": self.text_norm.normalize(text_emb),
            "text_tokens": text_tokens,
            "text_mask": text_mask.bool(),
        }

    # ------------------------------------------------------------------------- training
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        b = self.embed_batch(batch)
        x0 = self.image_norm.normalize(b["image_emb"])
        cond = self.condition(b["text_emb"], b["text_tokens"], b["text_mask"], trim=False)
        loss, _ = self.diffusion.training_loss(self.net, x0, cond)
        loss = loss.mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(x0))
        return loss

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise ValueError("PriorModule needs an `optimizer` factory to train")
        decay, no_decay = [], []
        for name, p in self.net.named_parameters():
            # weight decay on matrices only: not on biases, norms, nulls, queries, positions
            (decay if p.ndim >= 2 and not name.startswith("pos_") else no_decay).append(p)
        opt = self.optimizer_factory(
            [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], lr=self.hparams["lr"]
        )
        if self.scheduler_factory is None:
            return opt
        sched = self.scheduler_factory(opt)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(
        self,
        text_emb: torch.Tensor,
        text_tokens: torch.Tensor,
        text_mask: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        progress: bool = False,
        **overrides: Any,
    ) -> torch.Tensor:
        """Sample CLIP image embeddings (B,D), raw CLIP space, for raw CLIP text outputs.

        ``overrides`` replace the ``sampling`` defaults (sampler, steps, spacing, eta,
        guidance_scale, best_of, clamp_l2norm). Best-of-n (2204.06125 sec. 2.1) draws n
        candidates per caption in one batched call and keeps the one most cosine-similar to the
        text embedding. ``clamp_l2norm`` projects every (guided) x0 prediction onto the sphere
        the ``l2``-normalised training embeddings lie on (``EmbeddingNorm.project``).
        """
        unknown = set(overrides) - set(DEFAULT_SAMPLING)
        if unknown:
            raise ValueError(f"unknown sampling options {sorted(unknown)}")
        opts = {**self.hparams["sampling"], **overrides}
        n = int(opts.pop("best_of"))
        transform = self.x0_transform(bool(opts.pop("clamp_l2norm")))
        if n < 1:
            raise ValueError(f"best_of must be >= 1, got {n}")
        b, dim = text_emb.shape
        cond = self.condition(text_emb, text_tokens, text_mask)
        cond = {k: v.repeat_interleave(n, dim=0) for k, v in cond.items()}
        x_T = torch.randn(b * n, dim, generator=generator, device=text_emb.device)
        z = sample(
            self.diffusion, self.net, x_T, cond=cond, generator=generator, progress=progress,
            x0_transform=transform, **opts,
        )
        candidates = self.image_norm.denormalize(z)
        return best_of(candidates, candidates, text_emb, n)[0]

    def x0_transform(self, clamp_l2norm: bool) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The sampler's x0 transform: the sphere projection when ``clamp_l2norm``, else none
        (refused, naming the setting, for a prior whose normalisation has no sphere)."""
        if not clamp_l2norm:
            return None
        if self.image_norm.kind != "l2":
            raise ValueError(f"sampling clamp_l2norm=true needs a prior trained with norm.kind="
                             f"'l2'; this prior's is {self.image_norm.kind!r}")
        return self.image_norm.project

    # ----------------------------------------------------------------------- validation
    def _val_generator(self, batch_idx: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(1234 + batch_idx)

    def on_validation_epoch_start(self) -> None:
        n = self.hparams["ceiling_batches"]
        if n and self._caption_means is None and self.trainer.datamodule is not None:
            acc = CaptionMeans()
            for i, batch in enumerate(self.trainer.datamodule.train_dataloader()):
                if i >= n:
                    break
                b = self.embed_batch(batch)
                acc.update(b["image_emb"], b["caption"])
            self._caption_means = acc.means()

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        b = self.embed_batch(batch)
        size = len(b["image_emb"])
        gen = self._val_generator(batch_idx)
        x0 = self.image_norm.normalize(b["image_emb"])
        cond = self.condition(b["text_emb"], b["text_tokens"], b["text_mask"], trim=False)
        loss, _ = self.diffusion.training_loss(self.net, x0, cond, generator=gen)
        self.log("val/loss", loss.mean(), prog_bar=True, batch_size=size, sync_dist=True)
        if not self.hparams["val_sample"]:
            return
        pred = self.sample(b["text_emb"], b["text_tokens"], b["text_mask"], generator=gen)
        metrics = prior_metrics(
            pred, b["image_emb"], b["text_emb"], list(b["caption"]), self._caption_means
        )
        for name, values in metrics.items():
            valid = ~values.isnan()
            if valid.any():
                self.log(
                    f"val/{name}", values[valid].mean(), batch_size=int(valid.sum()),
                    sync_dist=True,
                )


def load_prior(path: str | Path, map_location: str | torch.device = "cpu") -> PriorModule:
    """Rebuild a trained prior (network, diffusion, normalisers) from a Lightning checkpoint.

    Loads with ``weights_only=True`` (or a safetensors export, see ``unclip.checkpoint``).
    With Lightning's ``EMAWeightAveraging`` the checkpoint's ``state_dict`` already holds the
    averaged weights (the raw ones are under ``current_model_state``), so those are used.
    Returned in eval mode on ``map_location``.
    """
    ckpt = load_checkpoint(path, map_location)
    hp = ckpt.get("hyper_parameters")
    if not hp or "network" not in hp or "norm" not in hp:
        raise ValueError(f"{path} is not a prior checkpoint (no prior hyperparameters)")
    module = PriorModule(**hp)
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()

