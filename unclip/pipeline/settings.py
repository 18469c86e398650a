"""Per-stage sampling settings of the unCLIP pipeline (2204.06125 sec. 2, Table 3).

Each stage (prior, decoder, every upsampler) samples with its own sampler, step count, spacing,
guidance and thresholding; the settings are small frozen dataclasses validated on construction,
so a bad value fails before any network runs. ``to_dict()`` is what ``run.json`` records.

Defaults favour quality per second: DPM-Solver++(2M) on a trailing grid (2211.01095) needs ~20
steps where the paper's samplers use 64-250 (2204.06125 Table 3); ``configs/sample.yaml`` repeats
them so a run records them explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from unclip.diffusion import SAMPLERS, SPACINGS, THRESHOLDS


def _check_positive_int(settings: StageSettings, field: str) -> None:
    """``settings.<field>`` must be a positive integer (named with the settings class)."""
    value = getattr(settings, field)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{type(settings).__name__}.{field} must be a positive integer, "
                         f"got {value!r}")


@dataclass(frozen=True)
class StageSettings:
    """What every diffusion stage shares: the ``unclip.diffusion.sample`` arguments.

    Args:
        sampler: ``"ddpm"``, ``"ddim"``, ``"dpmpp_2m"`` or ``"heun"``.
        steps: sampling steps.
        spacing: ``"uniform"``, ``"trailing"`` or ``"logsnr"``.
        eta: DDIM stochasticity (``sampler="ddim"`` only); 0 is the deterministic DDIM.
        guidance_scale: classifier-free guidance scale (1 disables guidance).
    """

    sampler: str = "dpmpp_2m"
    steps: int = 20
    spacing: str = "trailing"
    eta: float = 0.0
    guidance_scale: float = 1.0

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.sampler not in SAMPLERS:
            raise ValueError(f"{name}.sampler={self.sampler!r}; "
                             f"choose one of {', '.join(SAMPLERS)}")
        if self.spacing not in SPACINGS:
            raise ValueError(f"{name}.spacing={self.spacing!r}; "
                             f"choose one of {', '.join(SPACINGS)}")
        _check_positive_int(self, "steps")
        if not _finite(self.eta) or self.eta < 0:
            raise ValueError(f"{name}.eta must be a finite number >= 0, got {self.eta!r}")
        if self.eta != 0 and self.sampler != "ddim":
            raise ValueError(f"{name}.eta={self.eta} applies only to sampler='ddim', "
                             f"not {self.sampler!r}")
        if not _finite(self.guidance_scale) or self.guidance_scale < 0:
            raise ValueError(f"{name}.guidance_scale must be a finite number >= 0, "
                             f"got {self.guidance_scale!r}")

    def sample_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``unclip.diffusion.sample`` (stage-specific keys excluded)."""
        return {f.name: getattr(self, f.name) for f in fields(StageSettings)}

    def to_dict(self) -> dict[str, Any]:
        """Every field, as plain values (for ``run.json``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> StageSettings:
        """Build from a mapping (e.g. a Hydra node); unknown keys are refused by name."""
        return _from_dict(cls, values)


@dataclass(frozen=True)
class PriorSettings(StageSettings):
    """Prior sampling; the paper keeps the best of 2 samples (2204.06125 sec. 2.1).

    Defaults: 10 DDIM steps, guidance 2, best of 2: cheap, and close to the true embedding (cos
    0.95-0.96 of the same-caption ceiling, against 0.91 for the paper's DDPM-64). Fewer steps
    land closer still (DDIM 5 at guidance 3: 0.986, but two draws for one caption have cosine
    0.94 where two training images have 0.71), and the decoder renders those near-mean
    embeddings less faithfully (README, prior figures). Near the mean of a caption whose objects
    may stand in several arrangements, an embedding blends them: the shapes_full stack of
    session 15 renders a third or a lost object there, and scores better with
    ``sampler="ddpm", steps=250``, which keeps the prior's own variation (colour attribution
    84.7% against 69.4% over 3 seeds; docs/results_history.md, session 15).

    Args:
        best_of: candidates per caption; the one most similar to the text embedding is kept.
        clamp_l2norm: project every x0 prediction onto the sphere the ``l2``-normalised
            embeddings lie on (DALLE2-pytorch's ``sampling_clamp_l2norm``); a prior of another
            normalisation refuses it.
    """

    sampler: str = "ddim"
    steps: int = 10
    guidance_scale: float = 2.0

    best_of: int = 2
    clamp_l2norm: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive_int(self, "best_of")
        if not isinstance(self.clamp_l2norm, bool):
            raise ValueError(f"PriorSettings.clamp_l2norm must be true or false, "
                             f"got {self.clamp_l2norm!r}")


@dataclass(frozen=True)
class ImageStageSettings(StageSettings):
    """Settings of a stage that samples images: adds x0 thresholding.

    Args:
        threshold: ``None``, ``"static"`` (clip x0 to [-1, 1]) or ``"dynamic"`` (Imagen
            2205.11487 sec. 2.3).
    """

    threshold: str | None = "static"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.threshold is not None and self.threshold not in THRESHOLDS:
            raise ValueError(f"{type(self).__name__}.threshold={self.threshold!r}; choose null "
                             f"or one of {', '.join(THRESHOLDS)}")

    def sample_kwargs(self) -> dict[str, Any]:
        return {**super().sample_kwargs(), "threshold": self.threshold}


@dataclass(frozen=True)
class DecoderSettings(ImageStageSettings):
    """Base decoder sampling; guided on the image embedding (and caption) (2204.06125 sec. 2.1).

    Args:
        best_of: candidates decoded per image; the one whose CLIP image embedding is closest to
            the caption's text embedding (without a caption: to the conditioning image
            embedding) goes on to the upsamplers (``unclip.rerank``). 1: no reranking.
        text_guidance_scale: ``None``: ``guidance_scale`` guides the image embedding and the
            caption together. A number: two-condition guidance (2211.09800 eq. 3,
            ``unclip.diffusion.TwoConditionGuidance``), ``guidance_scale`` on the image embedding
            and this on the caption on top of it; three network evaluations per step instead of
            two. Needs a caption-conditioned decoder; without a caption (variations) there is
            nothing to guide it by, and the image embedding's guidance alone applies.
    """

    guidance_scale: float = 3.0
    best_of: int = 1
    text_guidance_scale: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive_int(self, "best_of")
        scale = self.text_guidance_scale
        if scale is not None and (not _finite(scale) or scale < 0):
            raise ValueError("DecoderSettings.text_guidance_scale must be null or a finite "
                             f"number >= 0, got {scale!r}")

    def sample_kwargs(self) -> dict[str, Any]:
        return {**super().sample_kwargs(), "text_guidance_scale": self.text_guidance_scale}


@dataclass(frozen=True)
class UpsamplerSettings(ImageStageSettings):
    """Upsampler sampling (2204.06125 sec. 2.2, Table 3: few steps, no guidance).

    Args:
        aug_level: noise-augmentation level in [0, 1] applied to the low-res input and told to
            the network (cascaded diffusion 2106.15282 sec. 4.1); ``None``: the upsampler
            checkpoint's own ``low_res.sample_level``.
        low_pass_sigma: sigma (output pixels) of the low-pass consistency of every x0 prediction
            with the low-res input (``unclip.diffusion.consistency``); ``None``: the
            checkpoint's ``sampling.low_pass_sigma``; 0 disables it.
    """

    steps: int = 10
    aug_level: float | None = None
    low_pass_sigma: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.low_pass_sigma is not None and (not _finite(self.low_pass_sigma)
                                                or self.low_pass_sigma < 0):
            raise ValueError(f"UpsamplerSettings.low_pass_sigma must be a finite number >= 0 or "
                             f"null, got {self.low_pass_sigma!r}")
        if self.aug_level is None:
            return
        if not _finite(self.aug_level) or not 0.0 <= self.aug_level <= 1.0:
            raise ValueError(f"UpsamplerSettings.aug_level must be in [0, 1], "
                             f"got {self.aug_level!r}")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class InversionSettings:
    """DDIM inversion of the base decoder (2204.06125 sec. 3.2-3.3; 2010.02502 sec. 4.3).

    Reconstruction must run the same deterministic DDIM grid back: :meth:`decoder_settings`.
    Guidance above 1 makes inversion much less exact, hence the default of 1.

    Args:
        steps, spacing: the time grid (as ``unclip.diffusion.make_timesteps``).
        guidance_scale: classifier-free guidance of the decoder during inversion and decoding.
    """

    steps: int = 50
    spacing: str = "uniform"
    guidance_scale: float = 1.0

    def __post_init__(self) -> None:
        self.decoder_settings()  # validates steps, spacing and guidance_scale

    def decoder_settings(self) -> DecoderSettings:
        """The settings that decode an inverted ``x_T`` back: DDIM, eta 0, no thresholding."""
        return DecoderSettings(sampler="ddim", steps=self.steps, spacing=self.spacing, eta=0.0,
                               guidance_scale=self.guidance_scale, threshold=None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> InversionSettings:
        """Build from a mapping (e.g. a Hydra node); unknown keys are refused by name."""
        return _from_dict(cls, values)


def _from_dict(cls: type, values: Mapping[str, Any] | None) -> Any:
    values = dict(values or {})
    allowed = {f.name for f in fields(cls)}
    if unknown := set(values) - allowed:
        raise ValueError(f"unknown {cls.__name__} keys {sorted(unknown)}; "
                         f"allowed: {sorted(allowed)}")
    return cls(**values)
