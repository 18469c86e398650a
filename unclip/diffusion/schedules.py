"""Noise schedules of the variance-preserving process ``x_t = alpha_t x_0 + sigma_t eps``.

Time is continuous, ``t`` in [0, 1], ``alpha_t^2 + sigma_t^2 = 1``. A schedule is defined by
``log alpha_t``; everything else follows:

- ``sigma_t = sqrt(1 - alpha_t^2)``
- log-SNR ``lambda_t = log(alpha_t^2 / sigma_t^2)`` (Kingma et al. 2107.00630 eq. 3), strictly
  decreasing, ``+inf`` at ``t = 0`` and finite at ``t = 1`` unless the terminal SNR is zero.

The discrete T-step DDPM is the special case ``t_i = (i + 1) / T``, ``i = 0..T-1``
(``alpha_{t_i}^2 = alphabar_i`` of Ho et al. 2006.11239), with ``alpha = 1`` at ``t = 0``; between
grid points ``alpha_t`` is interpolated linearly, so networks trained on the grid may be queried
at any ``t`` (as DPM-Solver does, 2206.00927 app. D).

All quantities are computed in float64 (float32 on MPS) whatever the dtype of ``t``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch

SCHEDULES = ("linear", "cosine")

# Linear-beta endpoints of Ho et al. (2006.11239 sec. 4) for T = 1000, and their continuous-time
# limit beta(t) = T * beta_i (the VP SDE of Song et al. 2011.13456 eq. 11).
_LINEAR_BETA_START, _LINEAR_BETA_END = 1e-4, 2e-2
_VP_BETA_0, _VP_BETA_1 = 0.1, 20.0
# Cosine offset of Nichol & Dhariwal (2102.09672 eq. 17) and their clipping of beta_t.
_COSINE_S, _COSINE_MAX_BETA = 0.008, 0.999
# Continuous cosine: alphabar hits 0 at Nichol's t = 1; like DPM-Solver (2206.00927 app. D.2)
# we stop at t = 0.9946 so that lambda stays finite (lambda(1) ~ -9.6, close to the linear -10.0).
_COSINE_CONTINUOUS_T_END = 0.9946
# Smallest sampling time of continuous schedules (DPM-Solver's eps, 2206.00927 sec. 3.4).
_CONTINUOUS_T_MIN = 1e-3


def _hp(t: torch.Tensor | float, device: torch.device | None = None) -> torch.Tensor:
    """``t`` as a high-precision tensor: float64, or float32 where float64 is missing (MPS)."""
    if not isinstance(t, torch.Tensor):  # Python numbers: never through float32
        t = torch.tensor(t, dtype=torch.float64, device=device)
    dtype = torch.float32 if t.device.type == "mps" else torch.float64
    return t.to(dtype)


def _out_dtype(t: torch.Tensor | float) -> torch.dtype:
    """Result dtype: that of a float32/float64 tensor ``t``; float64 for Python numbers."""
    if isinstance(t, torch.Tensor) and t.dtype in (torch.float32, torch.float64):
        return t.dtype
    if isinstance(t, torch.Tensor) and t.dtype.is_floating_point:
        return torch.float32
    return torch.float64


class NoiseSchedule(ABC):
    """A VP noise schedule in continuous time; subclasses define ``log alpha_t`` and its inverse."""

    name: str
    timesteps: int | None
    zero_terminal_snr: bool

    @abstractmethod
    def _log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """``log alpha_t`` for high-precision ``t`` already clamped to [0, 1]."""

    @abstractmethod
    def _t_from_log_alpha(self, log_alpha: torch.Tensor) -> torch.Tensor:
        """Inverse of ``_log_alpha`` (high precision)."""

    @property
    @abstractmethod
    def t_min(self) -> float:
        """Smallest time a sampler evaluates the network at (before the final step to t = 0)."""

    @property
    def discrete(self) -> bool:
        """Whether the schedule is a T-step DDPM grid (``timesteps`` is not None)."""
        return self.timesteps is not None

    def log_alpha(self, t: torch.Tensor | float) -> torch.Tensor:
        """``log alpha_t``."""
        return self._log_alpha(_hp(t).clamp(0.0, 1.0)).to(_out_dtype(t))

    def alpha(self, t: torch.Tensor | float) -> torch.Tensor:
        """Signal scale ``alpha_t`` (``sqrt(alphabar)`` in DDPM notation)."""
        return self._log_alpha(_hp(t).clamp(0.0, 1.0)).exp().to(_out_dtype(t))

    def sigma(self, t: torch.Tensor | float) -> torch.Tensor:
        """Noise scale ``sigma_t = sqrt(1 - alpha_t^2)``, computed without cancellation."""
        la = self._log_alpha(_hp(t).clamp(0.0, 1.0))
        return torch.sqrt(-torch.expm1(2.0 * la)).to(_out_dtype(t))

    def log_snr(self, t: torch.Tensor | float) -> torch.Tensor:
        """Log-SNR ``lambda_t = 2 log alpha_t - log sigma_t^2`` (2107.00630 eq. 3)."""
        la = self._log_alpha(_hp(t).clamp(0.0, 1.0))
        return (2.0 * la - torch.log(-torch.expm1(2.0 * la))).to(_out_dtype(t))

    def t_from_log_snr(self, log_snr: torch.Tensor | float) -> torch.Tensor:
        """Inverse of ``log_snr``: the ``t`` with ``lambda_t = log_snr``.

        ``alpha^2 = sigmoid(lambda)`` for a VP process, so ``log alpha = log sigmoid(lambda) / 2``.
        """
        lam = _hp(log_snr)
        t = self._t_from_log_alpha(0.5 * torch.nn.functional.logsigmoid(lam))
        t = torch.where(lam == -math.inf, 1.0, torch.where(lam == math.inf, 0.0, t))
        return t.clamp(0.0, 1.0).to(_out_dtype(log_snr))

    @property
    def config(self) -> dict[str, Any]:
        """Plain-dict description; ``make_schedule(**config)`` rebuilds the schedule."""
        return {
            "name": self.name,
            "timesteps": self.timesteps,
            "zero_terminal_snr": self.zero_terminal_snr,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"


def _rescale_zero_terminal_snr(alpha: torch.Tensor, alpha_first: float, alpha_last: float):
    """Shift ``alpha`` so the last value is 0 and scale so the first is kept (2305.08891 alg. 1)."""
    return (alpha - alpha_last) * alpha_first / (alpha_first - alpha_last)


class DiscreteSchedule(NoiseSchedule):
    """T-step DDPM schedule from ``alphabar`` on the grid ``t_i = (i + 1) / T``.

    ``alpha_t`` is linear in ``t`` between grid points and equals 1 at ``t = 0``; it is exact on the
    grid, so samplers on grid times reproduce the discrete DDPM (and diffusers) exactly.
    """

    def __init__(self, name: str, alphas_cumprod: torch.Tensor, zero_terminal_snr: bool) -> None:
        alphas_cumprod = alphas_cumprod.to(torch.float64)
        if alphas_cumprod.ndim != 1 or len(alphas_cumprod) < 2:
            raise ValueError("alphas_cumprod must be a 1-D tensor with at least 2 entries")
        self.name = name
        self.timesteps = len(alphas_cumprod)
        self.zero_terminal_snr = zero_terminal_snr
        alpha = alphas_cumprod.sqrt()
        if zero_terminal_snr:
            alpha = _rescale_zero_terminal_snr(alpha, alpha[0].item(), alpha[-1].item())
            alpha[-1] = 0.0
        if not bool((alpha[1:] < alpha[:-1]).all()) or not 0.0 < alpha[0] < 1.0:
            raise ValueError("alphas_cumprod must be strictly decreasing inside (0, 1]")
        # grid[k] = alpha at t = k / T, k = 0..T; alpha = 1 at t = 0.
        self._grid = torch.cat([torch.ones(1, dtype=torch.float64), alpha])
        self._grids: dict[torch.device, torch.Tensor] = {}

    def _grid_on(self, t: torch.Tensor) -> torch.Tensor:
        grid = self._grids.get(t.device)
        if grid is None:
            grid = self._grids[t.device] = self._grid.to(device=t.device, dtype=t.dtype)
        return grid

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """``alphabar_i`` at ``t_i = (i + 1) / T`` (float64, after any zero-terminal-SNR fix)."""
        return self._grid[1:] ** 2

    @property
    def t_min(self) -> float:
        return 1.0 / self.timesteps

    def _log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        grid = self._grid_on(t)
        pos = t * self.timesteps
        lo = pos.floor().clamp(0, self.timesteps - 1)
        w = pos - lo
        lo = lo.long()
        return torch.log(grid[lo] * (1 - w) + grid[lo + 1] * w)

    def _t_from_log_alpha(self, log_alpha: torch.Tensor) -> torch.Tensor:
        grid = self._grid_on(log_alpha)
        alpha = log_alpha.exp()
        ascending = grid.flip(0)  # alpha at t = 1, (T-1)/T, ..., 0
        k = torch.searchsorted(ascending, alpha.contiguous()).clamp(1, self.timesteps)
        a_lo, a_hi = ascending[k - 1], ascending[k]  # a_lo <= alpha <= a_hi
        w = (alpha - a_lo) / (a_hi - a_lo)
        # ascending index k - 1 is time (T - k + 1) / T; moving up by w moves back in time.
        return (self.timesteps - k + 1 - w) / self.timesteps


def linear_alphas_cumprod(timesteps: int) -> torch.Tensor:
    """``alphabar_i = prod_{j<=i} (1 - beta_j)`` with ``beta`` linear in i (2006.11239 sec. 4).

    The endpoints 1e-4..0.02 are scaled by 1000 / T so that every T has the same continuous limit.
    """
    scale = 1000.0 / timesteps
    betas = torch.linspace(
        scale * _LINEAR_BETA_START, scale * _LINEAR_BETA_END, timesteps, dtype=torch.float64
    )
    return torch.cumprod(1.0 - betas, dim=0)


def _cosine_alphabar(t: torch.Tensor) -> torch.Tensor:
    """Unnormalised ``f(t) = cos^2(pi/2 (t + s)/(1 + s))`` (Nichol & Dhariwal 2102.09672 eq. 17)."""
    return torch.cos((t + _COSINE_S) / (1 + _COSINE_S) * math.pi / 2) ** 2


def cosine_alphas_cumprod(timesteps: int) -> torch.Tensor:
    """Cosine ``alphabar`` with ``beta_t`` clipped at 0.999 (2102.09672 eq. 17 and sec. 3.2)."""
    t = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = _cosine_alphabar(t)
    betas = (1 - f[1:] / f[:-1]).clamp(max=_COSINE_MAX_BETA)
    return torch.cumprod(1.0 - betas, dim=0)


class ContinuousLinearSchedule(NoiseSchedule):
    """VP SDE with ``beta(t) = b0 + t (b1 - b0)``: ``log alpha_t = -(b1-b0) t^2/4 - b0 t/2``.

    Song et al. 2011.13456 eq. 33; the T -> infinity limit of the linear-beta DDPM.
    """

    name = "linear"
    timesteps = None

    def __init__(self, zero_terminal_snr: bool = False) -> None:
        self.zero_terminal_snr = zero_terminal_snr
        self._a = (_VP_BETA_1 - _VP_BETA_0) / 4.0
        self._b = _VP_BETA_0 / 2.0
        self._alpha_end = math.exp(-self._a - self._b)

    @property
    def t_min(self) -> float:
        return _CONTINUOUS_T_MIN

    def _log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        log_alpha = -self._a * t**2 - self._b * t
        if not self.zero_terminal_snr:
            return log_alpha
        return torch.log(_rescale_zero_terminal_snr(log_alpha.exp(), 1.0, self._alpha_end))

    def _t_from_log_alpha(self, log_alpha: torch.Tensor) -> torch.Tensor:
        if self.zero_terminal_snr:
            log_alpha = torch.log(log_alpha.exp() * (1 - self._alpha_end) + self._alpha_end)
        # root of a t^2 + b t + log_alpha = 0, cancellation-free: 2c / (b + sqrt(b^2 - 4ac)).
        return -2.0 * log_alpha / (self._b + torch.sqrt(self._b**2 - 4.0 * self._a * log_alpha))


class ContinuousCosineSchedule(NoiseSchedule):
    """``alpha_t^2 = f(0.9946 t) / f(0)`` with Nichol & Dhariwal's ``f`` (2102.09672 eq. 17)."""

    name = "cosine"
    timesteps = None

    def __init__(self, zero_terminal_snr: bool = False) -> None:
        self.zero_terminal_snr = zero_terminal_snr
        self._u0 = _COSINE_S / (1 + _COSINE_S) * math.pi / 2
        self._log_cos_u0 = math.log(math.cos(self._u0))
        end = torch.tensor(_COSINE_CONTINUOUS_T_END, dtype=torch.float64)
        self._alpha_end = math.sqrt((_cosine_alphabar(end) / _cosine_alphabar(end * 0)).item())

    @property
    def t_min(self) -> float:
        return _CONTINUOUS_T_MIN

    def _log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        u = (_COSINE_CONTINUOUS_T_END * t + _COSINE_S) / (1 + _COSINE_S) * math.pi / 2
        log_alpha = (torch.log(torch.cos(u)) - self._log_cos_u0).clamp(max=0.0)
        if not self.zero_terminal_snr:
            return log_alpha
        return torch.log(_rescale_zero_terminal_snr(log_alpha.exp(), 1.0, self._alpha_end))

    def _t_from_log_alpha(self, log_alpha: torch.Tensor) -> torch.Tensor:
        alpha = log_alpha.exp()
        if self.zero_terminal_snr:
            alpha = alpha * (1 - self._alpha_end) + self._alpha_end
        u = torch.arccos((alpha * math.cos(self._u0)).clamp(max=1.0))
        return (u * 2 / math.pi * (1 + _COSINE_S) - _COSINE_S) / _COSINE_CONTINUOUS_T_END


def make_schedule(
    name: str = "cosine", timesteps: int | None = 1000, zero_terminal_snr: bool = False
) -> NoiseSchedule:
    """Build a VP noise schedule.

    Args:
        name: ``"linear"`` (Ho et al. 2006.11239) or ``"cosine"`` (Nichol & Dhariwal 2102.09672).
        timesteps: T of the discrete DDPM grid ``t_i = (i + 1) / T``; ``None`` for the analytic
            continuous-time schedule.
        zero_terminal_snr: rescale ``alpha_t`` to ``alpha_1 = 0`` (Lin et al. 2305.08891 alg. 1).
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    if timesteps is None:
        cls = ContinuousLinearSchedule if name == "linear" else ContinuousCosineSchedule
        return cls(zero_terminal_snr=zero_terminal_snr)
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 2:
        raise ValueError(f"timesteps must be an integer >= 2 or None, got {timesteps!r}")
    builder = linear_alphas_cumprod if name == "linear" else cosine_alphas_cumprod
    return DiscreteSchedule(name, builder(timesteps), zero_terminal_snr=zero_terminal_snr)
