"""UnCLIPPipeline: caption -> CLIP -> prior -> decoder -> upsamplers, and the paper's image edits.

``text_to_image`` is unCLIP's generation (2204.06125 sec. 2); ``variations``, ``interpolate``
and ``text_diff`` are the manipulations of sec. 3.1-3.3; ``invert``/``reconstruct`` are the DDIM
inversion they rely on. Every call is seeded: each stage draws from its own generator derived
from ``(seed, stage)`` (see ``stage_generator``), so the same seed gives the same images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch

from unclip.clip import FrozenCLIP, TextEncoding
from unclip.lit.decoder import DecoderModule, resize
from unclip.lit.prior import PriorModule
from unclip.rerank import best_of

from .geometry import slerp, text_diff_direction, text_diff_path
from .inversion import ddim_invert
from .loading import (
    CheckpointRecord,
    ClipSpec,
    StageMismatchError,
    check_resolutions,
    check_same_clip_models,
    clip_identity_to_check,
    load_stages,
)
from .settings import (
    DecoderSettings,
    InversionSettings,
    PriorSettings,
    UpsamplerSettings,
)
from .stages import (
    autocast_for,
    low_pass_sigma,
    run_image_stage,
    run_prior,
    stage_condition,
    stage_generator,
)

UpsamplerArg = UpsamplerSettings | Sequence[UpsamplerSettings] | None
# 2204.06125 sec. 3.1: variations sample the decoder with DDIM and eta > 0; 1 is the DDPM posterior.
VARIATION_ETA = 1.0


@dataclass
class PipelineOutput:
    """Final images (N, 3, H, W) in [-1, 1], the CLIP image embeddings decoded (N, D), and the
    stage settings actually used."""

    images: torch.Tensor
    image_embeds: torch.Tensor
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Inversion:
    """DDIM-inverted decoder noise ``x_T`` (B, 3, R, R) of images and their CLIP embeddings."""

    x_T: torch.Tensor
    image_embeds: torch.Tensor
    settings: InversionSettings


class UnCLIPPipeline:
    """The unCLIP stack: frozen CLIP, prior, base decoder and zero or more upsamplers.

    Build it with :meth:`from_checkpoints`. The device is the one the stages are on; nothing is
    moved to an accelerator behind the caller's back (:meth:`to` moves every stage).
    ``autocast`` runs the networks under bf16 autocast where the stage modules allow it (sampler
    state stays float32); ``None`` turns it on for CUDA only: on CPU bf16 was 7x slower than
    float32 for the tiny test decoder (AVX512-BF16 machine).
    """

    def __init__(
        self,
        clip: FrozenCLIP,
        prior: PriorModule,
        decoder: DecoderModule,
        upsamplers: Sequence[DecoderModule] = (),
        *,
        checkpoints: Sequence[CheckpointRecord] = (),
        autocast: bool | None = None,
    ) -> None:
        ups = list(upsamplers)
        stages = [("the prior", prior), ("the decoder", decoder)]
        stages += [(f"upsampler {k}", u) for k, u in enumerate(ups)]
        if decoder.is_upsampler or not all(u.is_upsampler for u in ups):
            raise StageMismatchError("the decoder must be a base decoder and every upsampler an "
                                     "upsampler (a stage with low_res)")
        check_same_clip_models([("the CLIP", clip.identity)]
                               + [(w, clip_identity_to_check(m)) for w, m in stages])
        check_resolutions(stages[1:])
        self.clip, self.prior, self.decoder, self.upsamplers = clip, prior, decoder, ups
        self.checkpoints = list(checkpoints)
        self._autocast = autocast

    @classmethod
    def from_checkpoints(
        cls,
        prior: str | Path,
        decoder: str | Path,
        upsamplers: Sequence[str | Path] = (),
        clip: ClipSpec = None,
        device: str | torch.device = "cpu",
        autocast: bool | None = None,
    ) -> UnCLIPPipeline:
        """Load every stage from its checkpoint (``weights_only``, EMA weights) onto ``device``.

        ``clip`` (a ``FrozenCLIP`` or its keyword arguments) is needed only when the recorded
        CLIP is not an open_clip pretrained tag. Raises when a checkpoint is missing or of the
        wrong kind, or the stages do not fit together (CLIP model, resolutions).
        """
        clip_model, p, d, ups, records = load_stages(prior, decoder, upsamplers, clip, device)
        return cls(clip_model, p, d, ups, checkpoints=records, autocast=autocast)

    # ------------------------------------------------------------------ description
    @property
    def device(self) -> torch.device:
        return self.decoder.device

    @property
    def autocast(self) -> bool:
        """Whether the networks run under bf16 autocast (``None`` at construction: CUDA only)."""
        return self.device.type == "cuda" if self._autocast is None else self._autocast

    @autocast.setter
    def autocast(self, value: bool | None) -> None:
        self._autocast = value

    def to(self, device: str | torch.device) -> UnCLIPPipeline:
        """Move every stage (CLIP, prior, decoder, upsamplers) to ``device``; returns self."""
        for module in (self.clip, self.prior, self.decoder, *self.upsamplers):
            module.to(device)
        return self

    @property
    def resolution(self) -> int:
        """Side length of the final images."""
        return (self.upsamplers[-1] if self.upsamplers else self.decoder).hparams["resolution"]

    def describe(self) -> dict[str, Any]:
        """Checkpoints (path, sha256), CLIP identity and resolutions, for run records."""
        return {
            "checkpoints": [c.to_dict() for c in self.checkpoints],
            "clip_identity": dict(self.clip.identity),
            "resolutions": [self.decoder.hparams["resolution"]]
            + [u.hparams["resolution"] for u in self.upsamplers],
            "device": str(self.device),
            "autocast": self.autocast,
        }

    # ---------------------------------------------------------------- building blocks
    def encode_text(self, prompts: Sequence[str]) -> TextEncoding:
        """CLIP text encodings; over-long prompts are truncated with a warning."""
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompts must be a list of strings")
        if not prompts:
            raise ValueError("no prompts given")
        with torch.no_grad():
            enc = self.clip.encode_text(list(prompts))
        return TextEncoding(enc.pooled.float(), enc.tokens.float(), enc.mask)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """CLIP image embeddings (B, D) float32 of images (B, 3, H, W) in [-1, 1]."""
        images = self._check_images(images)
        with torch.no_grad():
            return self.clip.encode_image(images).float()

    def image_embeddings(
        self, prompts: Sequence[str], prior_settings: PriorSettings | None = None,
        seed: int = 0, progress: bool = False,
    ) -> tuple[torch.Tensor, TextEncoding]:
        """The prior's CLIP image embeddings (B, D) of ``prompts`` and their text encodings.

        An empty (or all-whitespace) prompt is an unconditional request: its row is sampled from
        the prior's null text condition.
        """
        text = self.encode_text(prompts)
        empty = [not p.strip() for p in prompts]
        z = run_prior(self.prior, text, empty, prior_settings or PriorSettings(),
                      stage_generator(seed, "prior", self.device),
                      use_autocast=self.autocast, progress=progress)
        return z, text

    def decode(
        self,
        image_embeds: torch.Tensor,
        *,
        text: TextEncoding | None = None,
        decoder_settings: DecoderSettings | None = None,
        upsampler_settings: UpsamplerArg = None,
        seed: int = 0,
        x_T: torch.Tensor | None = None,
        upsample: bool = True,
        progress: bool = False,
        rank_targets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] from CLIP image embeddings (B, D): decoder, upsamplers.

        ``text`` (caption encodings) conditions caption-conditioned stages; ``x_T`` fixes the
        base decoder's initial noise (e.g. a DDIM inversion); ``upsample=False`` stops at the
        base decoder. With ``decoder_settings.best_of = k > 1`` each image is decoded ``k``
        times and the candidate whose CLIP image embedding is closest to its row of
        ``rank_targets`` (B, D) is upsampled (default: the caption's text embedding when
        ``text`` is given, else ``image_embeds``; ``unclip.rerank``).
        """
        batch = image_embeds.shape[0]
        image_embeds = image_embeds.to(self.device, torch.float32)
        settings = self._decoder_settings(decoder_settings or DecoderSettings(), text)
        stage_settings = self._upsampler_settings(upsampler_settings)  # checked before sampling
        n = settings.best_of  # decoded candidates per image
        if n > 1 and x_T is not None:
            raise ValueError("DecoderSettings.best_of > 1 draws each candidate's own noise; "
                             "pass x_T only with best_of=1")
        cond = stage_condition(self.decoder, image_embeds.repeat_interleave(n, dim=0),
                               _repeat_text(text, n))
        x = run_image_stage(self.decoder, cond, settings, stage_generator(seed, "decoder",
                            self.device), batch * n, x_T=x_T, use_autocast=self.autocast,
                            progress=progress)
        if n > 1:
            if rank_targets is None:
                rank_targets = text.pooled if text is not None else image_embeds
            x, _ = best_of(x, self.encode_images(x), rank_targets, n)
        ups = self.upsamplers if upsample else []
        for k, (up, s) in enumerate(zip(ups, stage_settings[:len(ups)], strict=True)):
            gen = stage_generator(seed, f"upsampler{k}", self.device)
            cond = stage_condition(up, image_embeds, text, low_res=x, aug_level=s.aug_level,
                                   generator=gen)
            x = run_image_stage(up, cond, s, gen, batch, use_autocast=self.autocast,
                                progress=progress, name=f"upsampler{k}", low_res=x)
        return x

    # --------------------------------------------------------------------------- modes
    def text_to_image(
        self,
        prompts: Sequence[str],
        *,
        num_images_per_prompt: int = 1,
        prior_settings: PriorSettings | None = None,
        decoder_settings: DecoderSettings | None = None,
        upsampler_settings: UpsamplerArg = None,
        seed: int = 0,
        progress: bool = False,
    ) -> PipelineOutput:
        """unCLIP generation (2204.06125 sec. 2): ``num_images_per_prompt`` images per prompt,
        prompt-major (rows ``p * n .. p * n + n - 1`` belong to prompt ``p``)."""
        n = _positive_int(num_images_per_prompt, "num_images_per_prompt")
        if isinstance(prompts, str):
            raise TypeError("prompts must be a list of strings: wrap a single prompt in a list")
        rows = [p for p in prompts for _ in range(n)]
        prior_settings = prior_settings or PriorSettings()
        decoder_settings = decoder_settings or DecoderSettings()
        z, text = self.image_embeddings(rows, prior_settings, seed, progress)
        # an empty prompt's candidates are ranked against its own image embedding
        empty = torch.tensor([not p.strip() for p in rows], device=z.device)[:, None]
        images = self.decode(z, text=text, decoder_settings=decoder_settings,
                             upsampler_settings=upsampler_settings, seed=seed, progress=progress,
                             rank_targets=torch.where(empty, z, text.pooled.to(z.device)))
        record = self.settings_record(prior=prior_settings, decoder=decoder_settings,
                                      upsamplers=upsampler_settings)
        return PipelineOutput(images, z, record)

    def variations(
        self,
        images: torch.Tensor,
        *,
        num_variations: int = 1,
        decoder_settings: DecoderSettings | None = None,
        upsampler_settings: UpsamplerArg = None,
        seed: int = 0,
        progress: bool = False,
    ) -> PipelineOutput:
        """Image variations (2204.06125 sec. 3.1): decode each image's CLIP embedding with fresh
        noise; DDIM with ``eta > 0`` by default (:func:`variation_settings`). Image-major rows."""
        n = _positive_int(num_variations, "num_variations")
        settings = decoder_settings or variation_settings()
        z = self.encode_images(images).repeat_interleave(n, dim=0)
        out = self.decode(z, decoder_settings=settings, upsampler_settings=upsampler_settings,
                          seed=seed, progress=progress)
        record = self.settings_record(decoder=settings, upsamplers=upsampler_settings)
        return PipelineOutput(out, z, record)

    def interpolate(
        self,
        a: torch.Tensor | str,
        b: torch.Tensor | str,
        *,
        frames: int = 8,
        noise: Literal["random", "inverted"] = "random",
        prior_settings: PriorSettings | None = None,
        decoder_settings: DecoderSettings | None = None,
        inversion_settings: InversionSettings | None = None,
        upsampler_settings: UpsamplerArg = None,
        seed: int = 0,
        progress: bool = False,
    ) -> PipelineOutput:
        """Interpolate two images (3, H, W) or two prompts (2204.06125 sec. 3.2, fig. 4).

        Frame ``k`` decodes ``slerp(z_a, z_b, k / (frames - 1))`` with the decoder noise held
        fixed across frames: frames are decoded one at a time with the same seed, so each sees
        identical noise (initial, sampler and upsampler augmentation noise alike), and frame 0
        is ``variations(a, seed=seed)`` with the same settings. ``noise="inverted"`` (images
        only) starts the decoder from the DDIM-inverted latents instead, slerped from ``x_T(a)``
        to ``x_T(b)``, decoded with deterministic DDIM on the inversion's grid
        (``inversion_settings``; ``decoder_settings`` is then unused), so the end frames
        reconstruct the inputs. Prompts are decoded without their captions, so that only the
        image embedding moves.
        """
        frames = _positive_int(frames, "frames")
        if frames < 2:
            raise ValueError(f"frames must be >= 2 (the two end points), got {frames}")
        _one_candidate(decoder_settings, "interpolate")
        if noise not in ("random", "inverted"):
            raise ValueError(f"noise must be 'random' or 'inverted', got {noise!r}")
        ts = torch.linspace(0, 1, frames).tolist()
        used: dict[str, Any] = {}
        if isinstance(a, str) and isinstance(b, str):
            if noise == "inverted":
                raise ValueError("noise='inverted' needs two images; prompts have no image to "
                                 "invert")
            prior_settings = prior_settings or PriorSettings()
            z_ab, _ = self.image_embeddings([a, b], prior_settings, seed, progress)
            used["prior"] = prior_settings
        elif isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            pair = torch.stack([_single(a, "a"), _single(b, "b")])
            z_ab = self.encode_images(pair)
        else:
            raise TypeError("interpolate takes two images (tensors) or two prompts (str)")
        z = slerp(z_ab[0], z_ab[1], ts)
        x_T: list[torch.Tensor | None] = [None] * frames
        if noise == "inverted":
            inv = self.invert(pair, settings=inversion_settings, progress=progress)
            flat = slerp(inv.x_T[0].flatten(), inv.x_T[1].flatten(), ts)
            x_T = list(flat.view(frames, 1, *inv.x_T.shape[1:]))
            decoder_settings = inv.settings.decoder_settings()
            used["inversion"] = inv.settings
        decoder_settings = decoder_settings or DecoderSettings()
        images = torch.cat([
            self.decode(z[k:k + 1], decoder_settings=decoder_settings,
                        upsampler_settings=upsampler_settings, seed=seed, x_T=x_T[k],
                        progress=progress)
            for k in range(frames)
        ])
        record = self.settings_record(**used, decoder=decoder_settings,
                                      upsamplers=upsampler_settings)
        return PipelineOutput(images, z, record)

    def text_diff(
        self,
        image: torch.Tensor,
        source: str,
        target: str,
        angles: Sequence[float],
        *,
        noise: Literal["inverted", "random"] = "inverted",
        decoder_settings: DecoderSettings | None = None,
        inversion_settings: InversionSettings | None = None,
        upsampler_settings: UpsamplerArg = None,
        seed: int = 0,
        progress: bool = False,
    ) -> PipelineOutput:
        """Text diff (2204.06125 sec. 3.3, fig. 5): move an image toward a caption change.

        ``z_d = norm(z_t(target) - z_t(source))``; frame ``k`` decodes
        ``slerp(z_i, z_d, angles[k])`` (the paper's theta: 0 is the image, ~0.25-0.5 the edit),
        with the decoder noise fixed across frames (decoded one at a time with the same seed):
        the image's DDIM inversion (paper; ``noise="inverted"``, decoded with deterministic DDIM
        on the inversion's grid, ``decoder_settings`` unused) or the seed's noise
        (``noise="random"``, where angle 0 is exactly ``variations(image, seed=seed)`` with the
        same decoder settings).
        """
        if noise not in ("random", "inverted"):
            raise ValueError(f"noise must be 'random' or 'inverted', got {noise!r}")
        _one_candidate(decoder_settings, "text_diff")
        angles = [float(x) for x in angles]
        if not angles or any(not 0.0 <= x <= 1.0 for x in angles):
            raise ValueError(f"angles must be a non-empty list of values in [0, 1], got {angles}")
        image = _single(image, "image")[None]
        z_i = self.encode_images(image)[0]
        text = self.encode_text([source, target]).pooled
        z = text_diff_path(z_i, text_diff_direction(text[0], text[1]), angles)
        x_T, used = None, {}
        if noise == "inverted":
            inv = self.invert(image, settings=inversion_settings, progress=progress)
            x_T, decoder_settings = inv.x_T, inv.settings.decoder_settings()
            used["inversion"] = inv.settings
        decoder_settings = decoder_settings or DecoderSettings()
        images = torch.cat([
            self.decode(z[k:k + 1], decoder_settings=decoder_settings,
                        upsampler_settings=upsampler_settings, seed=seed, x_T=x_T,
                        progress=progress)
            for k in range(len(angles))
        ])
        record = self.settings_record(**used, decoder=decoder_settings,
                                      upsamplers=upsampler_settings)
        return PipelineOutput(images, z, record)

    def invert(
        self,
        images: torch.Tensor,
        *,
        settings: InversionSettings | None = None,
        progress: bool = False,
    ) -> Inversion:
        """DDIM-invert images (B, 3, H, W) in [-1, 1] with the base decoder, conditioned on their
        own CLIP image embeddings (2204.06125 sec. 3.2): returns ``x_T`` at the decoder's
        resolution (images are resized to it)."""
        settings = settings or InversionSettings()
        images = self._check_images(images)
        z = self.encode_images(images)
        x0 = resize(images.float(), self.decoder.hparams["resolution"])
        cond = stage_condition(self.decoder, z, None)
        with autocast_for(self.decoder, self.autocast):
            x_T = ddim_invert(self.decoder.diffusion, self.decoder.net, x0, steps=settings.steps,
                              spacing=settings.spacing, cond=cond,
                              guidance_scale=settings.guidance_scale, progress=progress)
        return Inversion(x_T.float(), z, settings)

    def reconstruct(
        self,
        inversion: Inversion,
        *,
        upsampler_settings: UpsamplerArg = None,
        upsample: bool = False,
        seed: int = 0,
        progress: bool = False,
    ) -> torch.Tensor:
        """Decode inverted latents back with deterministic DDIM on the inversion's grid.

        Returns the base decoder's images (B, 3, R, R); ``upsample=True`` runs the upsamplers too.
        """
        settings = inversion.settings.decoder_settings()
        return self.decode(inversion.image_embeds, decoder_settings=settings,
                           upsampler_settings=upsampler_settings, seed=seed, x_T=inversion.x_T,
                           upsample=upsample, progress=progress)

    # ------------------------------------------------------------------------ helpers
    def _decoder_settings(self, settings: DecoderSettings,
                          text: TextEncoding | None) -> DecoderSettings:
        """``settings``, checked against the decoder: a caption's own guidance scale needs a
        caption-conditioned decoder; without a caption it has nothing to guide by and is dropped
        (two-condition guidance then equals the image embedding's guidance alone)."""
        if settings.text_guidance_scale is None:
            return settings
        if not self.decoder.hparams["text_condition"]:
            raise ValueError("DecoderSettings.text_guidance_scale needs a caption-conditioned "
                             "decoder (decoder.text_condition: true); this one reads the image "
                             "embedding only: set it to null")
        return settings if text is not None else replace(settings, text_guidance_scale=None)

    def _upsampler_settings(self, value: UpsamplerArg) -> list[UpsamplerSettings]:
        if value is None or isinstance(value, UpsamplerSettings):
            return [value or UpsamplerSettings()] * len(self.upsamplers)
        value = list(value)
        if len(value) != len(self.upsamplers):
            raise ValueError(f"{len(value)} upsampler settings for {len(self.upsamplers)} "
                             "upsamplers")
        return value

    def settings_record(self, upsamplers: UpsamplerArg = None, **stages: Any) -> dict[str, Any]:
        """``{stage: settings dict}`` for ``stages`` (name -> settings) and every upsampler,
        whose default ``aug_level`` is filled in with the checkpoint's: what ``run.json`` keeps."""
        out = {name: s.to_dict() for name, s in stages.items()}
        out["upsamplers"] = []
        for up, s in zip(self.upsamplers, self._upsampler_settings(upsamplers), strict=True):
            level = s.aug_level if s.aug_level is not None else up.augment.sample_level
            out["upsamplers"].append({**s.to_dict(), "aug_level": level,
                                      "low_pass_sigma": low_pass_sigma(up, s)})
        return out

    def _check_images(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images)
            raise ValueError(f"images must be a (B, 3, H, W) tensor, got {shape}")
        if not images.is_floating_point() or not bool(torch.isfinite(images).all()):
            raise ValueError("images must be finite floating-point values in [-1, 1]")
        lo, hi = float(images.min()), float(images.max())
        if lo < -1.001 or hi > 1.001:
            raise ValueError(f"images must lie in [-1, 1], got values in [{lo:.3g}, {hi:.3g}] "
                             "(from uint8: x / 127.5 - 1)")
        return images.to(self.device)


def variation_settings(base: DecoderSettings | None = None) -> DecoderSettings:
    """``base`` (default ``DecoderSettings()``) sampled with DDIM at ``eta = VARIATION_ETA``."""
    return replace(base or DecoderSettings(), sampler="ddim", eta=VARIATION_ETA)


def _repeat_text(text: TextEncoding | None, k: int) -> TextEncoding | None:
    """Each caption's encodings repeated for its ``k`` decoder candidates (row-major)."""
    if text is None or k == 1:
        return text
    return TextEncoding(*(t.repeat_interleave(k, dim=0) for t in text))


def _one_candidate(settings: DecoderSettings | None, mode: str) -> None:
    """Frames of ``mode`` share their decoder noise: reranking would pick different noise."""
    if settings is not None and settings.best_of != 1:
        raise ValueError(f"{mode} holds the decoder noise fixed across frames; "
                         f"DecoderSettings.best_of must be 1, got {settings.best_of}")


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _single(image: torch.Tensor, name: str) -> torch.Tensor:
    """One image (3, H, W), also accepted as (1, 3, H, W)."""
    if isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if not isinstance(image, torch.Tensor) or image.ndim != 3:
        raise ValueError(f"{name} must be one image (3, H, W)")
    return image


__all__ = ["VARIATION_ETA", "Inversion", "PipelineOutput", "UnCLIPPipeline", "variation_settings"]
