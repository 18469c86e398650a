"""The denoiser samplers consume, built from a network: output -> guidance -> x0 -> threshold."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from .gaussian import GaussianDiffusion
from .guidance import apply_threshold, check_threshold, guided
from .parameterization import broadcast_to


class ModelDenoiser:
    """``denoiser(x_t, t) -> x0_hat`` for a network ``model(x_t, t, **cond)``.

    The network output (of type ``diffusion.prediction``) is guided with classifier-free guidance
    at ``guidance_scale`` (one batched forward; skipped at 1; with a ``text_guidance_scale``,
    two-condition guidance: ``guidance.TwoConditionGuidance``), converted to x0 by the diffusion's
    parameterisation, thresholded (``None``, ``"static"`` or ``"dynamic"``), and finally passed
    through ``x0_transform`` when given (e.g. ``consistency.LowPassConsistency``). The conversion
    runs in the dtype of ``x_t`` even when the network runs under bf16 autocast.
    """

    def __init__(
        self,
        diffusion: GaussianDiffusion,
        model: Callable[..., torch.Tensor],
        cond: Mapping[str, Any] | None = None,
        guidance_scale: float = 1.0,
        threshold: str | None = None,
        threshold_ratio: float = 0.995,
        x0_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        text_guidance_scale: float | None = None,
    ) -> None:
        check_threshold(threshold)
        self.x0_transform = x0_transform
        self.diffusion = diffusion
        self.model = guided(model, guidance_scale, text_guidance_scale)
        self.cond = dict(cond or {})
        self.threshold = threshold
        self.threshold_ratio = threshold_ratio

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.model(x, t, **self.cond).to(x.dtype)
        x0 = self.diffusion.pred_to_x0(out, x, t)
        x0 = apply_threshold(x0, self.threshold, self.threshold_ratio)
        return x0 if self.x0_transform is None else self.x0_transform(x0)

    def eps(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The eps implied by the (guided, thresholded) x0 prediction at ``(x, t)``."""
        schedule = self.diffusion.schedule
        alpha, sigma = broadcast_to(schedule.alpha(t), x), broadcast_to(schedule.sigma(t), x)
        return (x - alpha * self(x, t)) / sigma
