"""GaussianDiffusion: the forward process, the network's parameterisation and its training loss."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from .parameterization import (
    LOSS_WEIGHTINGS,
    broadcast_to,
    check_prediction,
    eps_from,
    loss_weight,
    target_from,
    x0_from,
)
from .schedules import NoiseSchedule, make_schedule

Model = Callable[..., torch.Tensor]


class GaussianDiffusion:
    """Parameter-free diffusion math shared by the prior, the decoder and the upsamplers.

    Args:
        schedule: a ``NoiseSchedule`` or its ``config`` dict (see ``make_schedule``).
        prediction: what the network predicts: ``"eps"``, ``"x0"`` or ``"v"`` (2202.00512).
        loss_weighting: ``"mse"`` (plain MSE on the target) or ``"min_snr"`` (2303.09556).
        min_snr_gamma: gamma of Min-SNR weighting.

    The network is called as ``model(x_t, t, **cond)`` with ``t`` a float tensor (B,) in [0, 1].
    """

    def __init__(
        self,
        schedule: NoiseSchedule | Mapping[str, Any],
        prediction: str = "eps",
        loss_weighting: str = "mse",
        min_snr_gamma: float = 5.0,
    ) -> None:
        if isinstance(schedule, Mapping):
            schedule = make_schedule(**schedule)
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(
                f"schedule must be a NoiseSchedule or its config dict, got {schedule!r}"
            )
        if loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(
                f"unknown loss weighting {loss_weighting!r}; "
                f"choose one of {', '.join(LOSS_WEIGHTINGS)}"
            )
        if min_snr_gamma <= 0:
            raise ValueError(f"min_snr_gamma must be positive, got {min_snr_gamma}")
        check_prediction(prediction)
        if prediction == "eps" and float(schedule.alpha(1.0)) == 0.0:
            raise ValueError(
                "prediction='eps' cannot give x0 where alpha_t = 0 (zero terminal SNR); "
                "use prediction='v' or 'x0' (Lin et al. 2305.08891 sec. 3.2)"
            )
        self.schedule = schedule
        self.prediction = prediction
        self.loss_weighting = loss_weighting
        self.min_snr_gamma = float(min_snr_gamma)

    # ---- description -------------------------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        """Plain dict (for checkpoints); ``GaussianDiffusion.from_config(config)`` rebuilds it."""
        return {
            "schedule": self.schedule.config,
            "prediction": self.prediction,
            "loss_weighting": self.loss_weighting,
            "min_snr_gamma": self.min_snr_gamma,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> GaussianDiffusion:
        """Rebuild from ``config`` (ignores a Hydra ``_target_`` key)."""
        kwargs = {k: v for k, v in dict(config).items() if k != "_target_"}
        schedule = kwargs.pop("schedule")
        if isinstance(schedule, Mapping):
            schedule = {k: v for k, v in dict(schedule).items() if k != "_target_"}
        return cls(schedule, **kwargs)

    def __repr__(self) -> str:
        return (
            f"GaussianDiffusion({self.schedule!r}, prediction={self.prediction!r}, "
            f"loss_weighting={self.loss_weighting!r}, min_snr_gamma={self.min_snr_gamma})"
        )

    # ---- forward process ---------------------------------------------------------------------

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Sample ``x_t ~ q(x_t | x0) = N(alpha_t x0, sigma_t^2 I)`` (2006.11239 eq. 4)."""
        alpha, sigma = self.schedule.alpha(t), self.schedule.sigma(t)
        return broadcast_to(alpha, x0) * x0 + broadcast_to(sigma, x0) * noise

    def sample_t(
        self, batch: int, device: torch.device | str, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Training times (B,) float32: uniform on the DDPM grid ``(i+1)/T``, or on [t_min, 1]."""
        T = self.schedule.timesteps
        if T is not None:
            i = torch.randint(0, T, (batch,), device=device, generator=generator)
            return (i + 1).float() / T
        u = torch.rand(batch, device=device, generator=generator)
        t_min = self.schedule.t_min
        return t_min + (1 - t_min) * u

    # ---- parameterisation --------------------------------------------------------------------

    def pred_to_x0(self, pred: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x0 implied by the network output ``pred`` at ``(x_t, t)``."""
        return x0_from(pred, x_t, self.schedule.alpha(t), self.schedule.sigma(t), self.prediction)

    def pred_to_eps(self, pred: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """eps implied by the network output ``pred`` at ``(x_t, t)``."""
        return eps_from(pred, x_t, self.schedule.alpha(t), self.schedule.sigma(t), self.prediction)

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Regression target of the network for ``x_t = q_sample(x0, t, noise)``."""
        alpha, sigma = self.schedule.alpha(t), self.schedule.sigma(t)
        return target_from(x0, noise, alpha, sigma, self.prediction)

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """Per-sample loss weight (B,) float32 at times ``t``."""
        log_snr = self.schedule.log_snr(t).float()
        return loss_weight(log_snr, self.prediction, self.loss_weighting, self.min_snr_gamma)

    # ---- training ----------------------------------------------------------------------------

    def training_loss(
        self,
        model: Model,
        x0: torch.Tensor,
        cond: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
        *,
        t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted denoising loss per sample.

        Draws ``t`` (see ``sample_t``) and ``noise ~ N(0, I)`` unless given, calls
        ``model(x_t, t, **cond)`` and returns ``(loss (B,) float32, t (B,))``; the loss is the mean
        over non-batch dims of ``w(t) (pred - target)^2`` computed in float32.
        """
        batch = x0.shape[0]
        if t is None:
            t = self.sample_t(batch, x0.device, generator)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = self.q_sample(x0, t, noise)
        pred = model(x_t, t, **dict(cond or {}))
        if pred.shape != x0.shape:
            raise ValueError(
                f"model output shape {tuple(pred.shape)} != data shape {tuple(x0.shape)}"
            )
        target = self.target(x0.float(), noise.float(), t)
        mse = (pred.float() - target).pow(2).flatten(1).mean(dim=1)
        return self.loss_weight(t) * mse, t
