"""Samplers as pure functions over one denoiser contract (in the style of k-diffusion).

A *denoiser* is any callable ``denoiser(x, t) -> x0_hat`` with ``x`` the noisy state of any
shape (B, ...) and ``t`` a float tensor (B,) in (0, 1]; the eps it implies is
``(x - alpha_t x0_hat) / sigma_t``. Every sampler has the signature

    sampler(denoiser, x, timesteps, *, schedule, generator=None, callback=None, disable=True)

with ``x`` the state at ``timesteps[0]`` and ``timesteps`` a strictly decreasing 1-D tensor (see
``spacing.make_timesteps``); it returns the state at ``timesteps[-1]`` (the sample when that is 0).
The state keeps the dtype and device of ``x``; schedule coefficients are float64 Python numbers.
``callback`` receives ``{"i", "t", "x", "denoised"}`` (the state before step i and its x0_hat);
``disable=False`` shows a tqdm progress bar; a ``torch.Generator`` makes the noise reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from tqdm.auto import trange

from .schedules import NoiseSchedule

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[dict[str, Any]], None]


def randn_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn on the generator's device, moved to x's."""
    if generator is None:
        return torch.randn_like(x)
    noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
    return noise.to(x.device)


class _Coefficients:
    """Float64 schedule values at the sampling times, as Python floats."""

    def __init__(self, schedule: NoiseSchedule, timesteps: torch.Tensor) -> None:
        ts = torch.as_tensor(timesteps).detach().to("cpu", torch.float64)
        if ts.ndim != 1 or len(ts) < 2:
            raise ValueError("timesteps must be a 1-D tensor with at least 2 entries")
        if not bool((ts[1:] < ts[:-1]).all()) or ts[0] > 1 or ts[-1] < 0:
            raise ValueError("timesteps must be strictly decreasing inside [0, 1]")
        self.t = ts.tolist()
        self.alpha = schedule.alpha(ts).tolist()
        self.sigma = schedule.sigma(ts).tolist()
        self.log_alpha = schedule.log_alpha(ts).tolist()
        self.log_snr = schedule.log_snr(ts).tolist()

    def __len__(self) -> int:
        return len(self.t) - 1  # number of steps


def _time(x: torch.Tensor, t: float) -> torch.Tensor:
    """Time ``t`` as a (B,) tensor for the denoiser: float64 for float64 states, else float32."""
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return torch.full((x.shape[0],), t, dtype=dtype, device=x.device)


def _denoise(denoiser: Denoiser, x: torch.Tensor, t: float) -> torch.Tensor:
    return denoiser(x, _time(x, t)).to(x.dtype)


@torch.no_grad()
def sample_ddpm(
    denoiser: Denoiser,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    schedule: NoiseSchedule,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    disable: bool = True,
) -> torch.Tensor:
    """Ancestral sampling from ``q(x_s | x_t, x0_hat)`` (Ho et al. 2006.11239 eq. 6-7).

    For any ``s < t`` the posterior is Gaussian with (Kingma et al. 2107.00630 eq. 28-30)
    ``var_{t|s} = 1 - alpha_t^2 / alpha_s^2``,
    ``mean = alpha_{t|s} sigma_s^2 / sigma_t^2 x_t + alpha_s var_{t|s} / sigma_t^2 x0_hat``,
    ``std = sigma_s sqrt(var_{t|s}) / sigma_t``; on the full T-step grid this is the DDPM sampler
    with the "fixed small" variance. No noise is added on the step to ``s = 0``.
    """
    c = _Coefficients(schedule, timesteps)
    for i in trange(len(c), disable=disable):
        x0 = _denoise(denoiser, x, c.t[i])
        if callback is not None:
            callback({"i": i, "t": c.t[i], "x": x, "denoised": x0})
        a_t, s_t, a_s, s_s = c.alpha[i], c.sigma[i], c.alpha[i + 1], c.sigma[i + 1]
        var_ts = -math.expm1(2.0 * (c.log_alpha[i] - c.log_alpha[i + 1]))  # sigma_{t|s}^2
        coef_x = (a_t / a_s) * s_s**2 / s_t**2
        coef_x0 = a_s * var_ts / s_t**2
        x = coef_x * x + coef_x0 * x0
        if s_s > 0:
            x = x + (s_s * math.sqrt(var_ts) / s_t) * randn_like(x, generator)
    return x


@torch.no_grad()
def sample_ddim(
    denoiser: Denoiser,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    schedule: NoiseSchedule,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    disable: bool = True,
) -> torch.Tensor:
    """DDIM (Song et al. 2010.02502 eq. 12): ``x_s = alpha_s x0 + sqrt(sigma_s^2 - c^2) eps + c z``.

    ``c = eta sigma_s / sigma_t sqrt(1 - alpha_t^2 / alpha_s^2)`` (eq. 16); ``eta = 0`` is the
    deterministic DDIM (the Euler step of the probability-flow ODE in x/alpha and sigma/alpha),
    ``eta = 1`` the DDPM posterior.
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    c = _Coefficients(schedule, timesteps)
    for i in trange(len(c), disable=disable):
        x0 = _denoise(denoiser, x, c.t[i])
        if callback is not None:
            callback({"i": i, "t": c.t[i], "x": x, "denoised": x0})
        a_t, s_t, a_s, s_s = c.alpha[i], c.sigma[i], c.alpha[i + 1], c.sigma[i + 1]
        eps = (x - a_t * x0) / s_t
        noise_std = 0.0
        if eta > 0 and s_s > 0:
            var_ts = -math.expm1(2.0 * (c.log_alpha[i] - c.log_alpha[i + 1]))
            noise_std = min(eta * s_s / s_t * math.sqrt(var_ts), s_s)
        x = a_s * x0 + math.sqrt(s_s**2 - noise_std**2) * eps
        if noise_std > 0:
            x = x + noise_std * randn_like(x, generator)
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    denoiser: Denoiser,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    schedule: NoiseSchedule,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    disable: bool = True,
) -> torch.Tensor:
    """DPM-Solver++(2M), multistep data prediction (Lu et al. 2211.01095 alg. 2).

    With ``h = (lambda_s - lambda_t) / 2`` (DPM-Solver's lambda is half the log-SNR) and
    ``r = h_prev / h``:
    ``x_s = sigma_s/sigma_t x_t + alpha_s (1 - e^{-h}) D``,
    ``D = (1 + 1/(2r)) x0_t - 1/(2r) x0_prev`` (first order, ``D = x0_t``, on the first step and
    on the final step to ``t = 0``, as diffusers does with ``final_sigmas_type="zero"``).
    ``generator`` is unused (the solver is deterministic) and accepted for a uniform signature.
    """
    c = _Coefficients(schedule, timesteps)
    x0_prev, h_prev = None, None
    for i in trange(len(c), disable=disable):
        x0 = _denoise(denoiser, x, c.t[i])
        if callback is not None:
            callback({"i": i, "t": c.t[i], "x": x, "denoised": x0})
        s_t, a_s, s_s = c.sigma[i], c.alpha[i + 1], c.sigma[i + 1]
        h = 0.5 * (c.log_snr[i + 1] - c.log_snr[i])  # DPM-Solver's lambda is log(alpha/sigma)
        if s_s == 0:  # lambda_s = inf: the exact limit of the update is x0_hat
            x = x0
            continue
        one_minus_exp = -math.expm1(-h)  # 1 - e^{-h}, exact for inf h too
        d = x0
        if x0_prev is not None:
            r = h_prev / h  # inf when the previous step left lambda = -inf: no correction
            d = x0 + (0.5 / r) * (x0 - x0_prev)
        x = (s_s / s_t) * x + (a_s * one_minus_exp) * d
        x0_prev, h_prev = x0, h
    return x


@torch.no_grad()
def sample_heun(
    denoiser: Denoiser,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    schedule: NoiseSchedule,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    disable: bool = True,
) -> torch.Tensor:
    """EDM's deterministic 2nd-order Heun sampler (Karras et al. 2206.00364 alg. 1).

    The VP probability-flow ODE in ``y = x/alpha`` and ``s = sigma/alpha = e^{-lambda/2}`` is
    ``dy/ds = (y - x0_hat)/s = eps_hat`` (eq. 4 with EDM's scaling); an Euler step (= DDIM) is
    followed by a trapezoidal correction with eps_hat at the Euler point. The step to ``t = 0``
    (and a step from ``alpha_t = 0``, where ``s`` is infinite) is plain Euler. NFE = 2N - 1.
    ``generator`` is unused (no stochastic churn) and accepted for a uniform signature.
    """
    c = _Coefficients(schedule, timesteps)
    for i in trange(len(c), disable=disable):
        x0 = _denoise(denoiser, x, c.t[i])
        if callback is not None:
            callback({"i": i, "t": c.t[i], "x": x, "denoised": x0})
        a_t, s_t, a_s, s_s = c.alpha[i], c.sigma[i], c.alpha[i + 1], c.sigma[i + 1]
        eps = (x - a_t * x0) / s_t
        x_euler = (s_s / s_t) * x + (a_s - a_t * s_s / s_t) * x0  # alpha_s (y + (s'-s) eps)
        if s_s == 0 or a_t == 0:
            x = x_euler
            continue
        x0_euler = _denoise(denoiser, x_euler, c.t[i + 1])
        eps_euler = (x_euler - a_s * x0_euler) / s_s
        x = x_euler + 0.5 * (s_s - a_s * s_t / a_t) * (eps_euler - eps)  # alpha_s (s'-s) / 2
    return x


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "dpmpp_2m": sample_dpmpp_2m,
    "heun": sample_heun,
}


def nfe(sampler: str, steps: int) -> int:
    """Network evaluations of ``sampler`` for ``steps`` steps ending at t = 0."""
    get_sampler(sampler)
    return 2 * steps - 1 if sampler == "heun" else steps


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    """The sampler function called ``name``; a ValueError lists the choices otherwise."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name]
