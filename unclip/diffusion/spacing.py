"""Sampling time grids: ``steps`` network evaluation times from t = 1 down, then t = 0.

- ``"uniform"``: evenly spaced from 1 to ``t_min``, both included (diffusers "linspace").
  (A single step is always ``[1, 0]``.)
- ``"trailing"``: ``1, 1 - 1/N, ..., 1/N`` (Lin et al. 2305.08891 table 2), always starting at 1.
- ``"logsnr"``: evenly spaced in log-SNR between ``t = 1`` and ``t_min`` (DPM-Solver's
  "logSNR" skip type, 2206.00927 sec. 3.3).

On a discrete T-step schedule "uniform" and "trailing" are rounded to the grid ``(i+1)/T``
exactly as diffusers rounds its integer timesteps; "logsnr" times stay continuous.
"""

from __future__ import annotations

import math

import torch

from .schedules import NoiseSchedule

SPACINGS = ("uniform", "trailing", "logsnr")


def _check(schedule: NoiseSchedule, steps: int, spacing: str) -> None:
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    T = schedule.timesteps
    if T is not None and spacing != "logsnr" and steps > T:
        raise ValueError(
            f"steps={steps} exceeds the {T} grid times of the discrete schedule "
            f"for spacing={spacing!r}; use steps <= {T} or spacing='logsnr'"
        )


def make_timesteps(schedule: NoiseSchedule, steps: int, spacing: str = "uniform") -> torch.Tensor:
    """Decreasing float64 times of length ``steps + 1``, ending with 0 (the clean sample)."""
    _check(schedule, steps, spacing)
    T = schedule.timesteps
    k = torch.arange(steps, dtype=torch.float64)
    if steps == 1:  # one step from pure noise, whatever the spacing
        times = torch.ones(1, dtype=torch.float64)
    elif spacing == "uniform":
        if T is not None:  # diffusers: np.linspace(0, T - 1, N).round()[::-1]
            grid = torch.linspace(0, T - 1, steps, dtype=torch.float64).round().flip(0)
            times = (grid + 1) / T
        else:
            times = torch.linspace(1.0, schedule.t_min, steps, dtype=torch.float64)
    elif spacing == "trailing":
        if T is not None:  # diffusers: np.round(np.arange(T, 0, -T / N)) - 1
            times = (T - k * (T / steps)).round() / T
        else:
            times = 1.0 - k / steps
    else:
        lam_max = schedule.log_snr(schedule.t_min)
        lam_min = schedule.log_snr(1.0)
        if not math.isfinite(float(lam_min)):
            raise ValueError(
                "spacing='logsnr' needs a finite log-SNR at t = 1, but this schedule has zero "
                "terminal SNR; use spacing='trailing' (Lin et al. 2305.08891 sec. 3.3)"
            )
        lam = torch.linspace(float(lam_min), float(lam_max), steps, dtype=torch.float64)
        times = schedule.t_from_log_snr(lam)
        times[0], times[-1] = 1.0, schedule.t_min  # exact endpoints despite round-off
    return torch.cat([times, times.new_zeros(1)])
