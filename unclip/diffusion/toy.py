"""Gaussian-mixture data whose exact denoiser ``E[x0 | x_t]`` is known in closed form.

For ``x0 ~ sum_k w_k N(mu_k, diag(s_k^2))`` and ``x_t = alpha x0 + sigma eps``:
``x_t | k ~ N(alpha mu_k, diag(alpha^2 s_k^2 + sigma^2))``, so with responsibilities
``r_k(x_t) ∝ w_k N(x_t; alpha mu_k, alpha^2 s_k^2 + sigma^2)``,
``E[x0 | x_t] = sum_k r_k (mu_k + alpha s_k^2 / (alpha^2 s_k^2 + sigma^2) (x_t - alpha mu_k))``
(Gaussian conditioning, Bishop PRML eq. 2.116). Used by the sampler tests and benchmarks: a
sampler driven by this denoiser must reproduce the mixture.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .schedules import NoiseSchedule

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class GaussianMixture:
    """Mixture of Gaussians with diagonal covariances over ``D`` flattened dimensions.

    Args:
        weights: (K,) mixture weights (normalised here).
        means: (K, D) component means.
        stds: (K, D) component standard deviations.
    """

    def __init__(
        self,
        weights: Sequence[float] | torch.Tensor,
        means: Sequence[Sequence[float]] | torch.Tensor,
        stds: Sequence[Sequence[float]] | torch.Tensor,
    ) -> None:
        w = torch.as_tensor(weights, dtype=torch.float64)
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.stds = torch.as_tensor(stds, dtype=torch.float64)
        if self.means.ndim != 2 or self.means.shape != self.stds.shape or w.shape != (
            self.means.shape[0],
        ):
            raise ValueError("expected weights (K,), means (K, D) and stds (K, D)")
        if (w <= 0).any() or (self.stds <= 0).any():
            raise ValueError("weights and stds must be positive")
        self.weights = w / w.sum()

    @property
    def dim(self) -> int:
        """Number of (flattened) data dimensions D."""
        return self.means.shape[1]

    def mean(self) -> torch.Tensor:
        """Mixture mean (D,)."""
        return self.weights @ self.means

    def variance(self) -> torch.Tensor:
        """Per-dimension mixture variance (D,) (law of total variance)."""
        second = self.weights @ (self.stds**2 + self.means**2)
        return second - self.mean() ** 2

    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` float64 draws (n, D) and their component labels (n,)."""
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[labels] + self.stds[labels] * noise, labels

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Most likely component (n,) of samples ``x`` (n, ...) under the clean data."""
        flat_t = x.reshape(x.shape[0], -1).double().T.contiguous()
        return self._log_joint(flat_t, 1.0, 0.0).argmax(dim=0)

    # Internals work on transposed (D, B) data: reductions over K or D then run along
    # contiguous memory, many times faster than softmax over a trailing dim of size K.

    def _log_joint(self, x_t: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """``log w_k + log N(x; alpha mu_k, alpha^2 s_k^2 + sigma^2)`` for x^T (D, B): (K, B)."""
        prec = 1.0 / (alpha**2 * self.stds**2 + sigma**2)  # (K, D)
        mean = alpha * self.means
        quad = prec @ x_t**2 - 2 * (mean * prec) @ x_t + (mean**2 * prec).sum(dim=1, keepdim=True)
        log_det = -torch.log(prec).sum(dim=1, keepdim=True) + self.dim * math.log(2 * math.pi)
        return self.weights.log()[:, None] - 0.5 * (quad + log_det)

    def _posterior_mean(self, x_t: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """``E[x0 | x_t = x]`` for x^T (D, B) at one noise level, transposed: (D, B)."""
        resp = torch.softmax(self._log_joint(x_t, alpha, sigma), dim=0)  # (K, B)
        gain = alpha * self.stds**2 / (alpha**2 * self.stds**2 + sigma**2)  # (K, D)
        # sum_k r_k (mu_k + gain_k (x - alpha mu_k)) = (mu (1 - alpha gain))^T r + x * gain^T r
        return (self.means * (1 - alpha * gain)).T @ resp + x_t * (gain.T @ resp)

    def denoiser(self, schedule: NoiseSchedule) -> Denoiser:
        """Exact ``E[x0 | x_t]`` as a denoiser ``(x (B, ...), t (B,)) -> x0`` (float64 inside)."""

        def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            flat_t = x.reshape(x.shape[0], -1).to(torch.float64).T.contiguous()
            if flat_t.shape[0] != self.dim:
                raise ValueError(f"expected {self.dim} dims per sample, got {flat_t.shape[0]}")
            times = t.to(torch.float64)
            first = times[0].item()
            if bool((times == first).all()):  # samplers pass one time for the whole batch
                groups = [(first, None)]
            else:
                groups = [(time, times == time) for time in times.unique().tolist()]
            out = torch.empty_like(flat_t)
            for time, rows in groups:
                alpha, sigma = float(schedule.alpha(time)), float(schedule.sigma(time))
                if rows is None:
                    out = self._posterior_mean(flat_t, alpha, sigma)
                else:
                    out[:, rows] = self._posterior_mean(flat_t[:, rows], alpha, sigma)
            return out.T.reshape(x.shape).to(x.dtype)

        return denoise


def gaussian(mean: Sequence[float], std: Sequence[float]) -> GaussianMixture:
    """A single diagonal Gaussian as a one-component mixture."""
    return GaussianMixture([1.0], [list(mean)], [list(std)])


def toy_mixture() -> GaussianMixture:
    """The 2-D, 3-component mixture of the sampler tests and ``benchmarks/sampler_accuracy.py``.

    Unequal weights, anisotropic components and means about 3 units apart: well separated (the
    Bayes error of ``classify`` is about 1e-4) yet close enough to the origin that the
    probability-flow ODE must bend trajectories towards the right mode.
    """
    return GaussianMixture(
        weights=[0.5, 0.3, 0.2],
        means=[[-2.0, 0.0], [1.5, 1.5], [1.0, -2.0]],
        stds=[[0.5, 0.3], [0.3, 0.6], [0.4, 0.4]],
    )
