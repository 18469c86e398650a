"""``sample()``: the front door that turns a network and noise into data."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from .denoiser import ModelDenoiser
from .gaussian import GaussianDiffusion
from .guidance import check_threshold
from .samplers import Callback, get_sampler
from .spacing import make_timesteps


def sample(
    diffusion: GaussianDiffusion,
    model: Callable[..., torch.Tensor],
    x_T: torch.Tensor,
    sampler: str = "ddim",
    steps: int = 50,
    spacing: str = "trailing",
    eta: float = 0.0,
    cond: Mapping[str, Any] | None = None,
    guidance_scale: float = 1.0,
    threshold: str | None = None,
    threshold_ratio: float = 0.995,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
    x0_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    text_guidance_scale: float | None = None,
) -> torch.Tensor:
    """Sample from ``model`` starting at pure noise ``x_T`` (any shape (B, ...)).

    Args:
        diffusion: schedule and parameterisation the network was trained with.
        model: network called as ``model(x_t, t, **cond)``; see ``ModelDenoiser``.
        x_T: initial noise, e.g. ``torch.randn(shape, generator=g)``; sets dtype and device.
        sampler: ``"ddpm"``, ``"ddim"``, ``"dpmpp_2m"`` or ``"heun"`` (see ``samplers``).
        steps: number of steps (Heun uses 2 * steps - 1 network evaluations).
        spacing: ``"uniform"``, ``"trailing"`` or ``"logsnr"`` (see ``spacing``).
        eta: DDIM stochasticity (``sampler="ddim"`` only).
        cond: conditioning keyword arguments of the network.
        guidance_scale: classifier-free guidance scale; 1 disables guidance.
        threshold: ``None``, ``"static"`` or ``"dynamic"`` thresholding of x0 (image stages).
        threshold_ratio: quantile of dynamic thresholding.
        generator: makes the sampler noise reproducible.
        callback: called once per step with ``{"i", "t", "x", "denoised"}``.
        progress: show a progress bar.
        x0_transform: applied to every (guided, thresholded) x0 prediction, e.g. the upsampler's
            ``consistency.LowPassConsistency``.
        text_guidance_scale: ``None``: ``guidance_scale`` guides all conditions together; a
            number: ``guidance_scale`` guides the image embedding and this the caption on top of
            it (``guidance.TwoConditionGuidance``; a network with ``text_drop``).

    Returns:
        The sample at ``t = 0``, same shape, dtype and device as ``x_T``.
    """
    sampler_fn = get_sampler(sampler)
    check_threshold(threshold)
    if eta != 0.0 and sampler != "ddim":
        raise ValueError(f"eta={eta} applies only to sampler='ddim', not {sampler!r}")
    timesteps = make_timesteps(diffusion.schedule, steps, spacing)
    denoiser = ModelDenoiser(diffusion, model, cond, guidance_scale, threshold, threshold_ratio,
                             x0_transform, text_guidance_scale)
    extra = {"eta": eta} if sampler == "ddim" else {}
    with torch.no_grad():
        return sampler_fn(
            denoiser, x_T, timesteps, schedule=diffusion.schedule, generator=generator,
            callback=callback, disable=not progress, **extra,
        )
