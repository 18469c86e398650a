"""Noise schedules: VP identities, log-SNR inverse, and agreement with diffusers' tables."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDPMScheduler

from unclip.diffusion import make_schedule

ALL = [
    (name, T, z)
    for name in ("linear", "cosine")
    for T in (1000, None)
    for z in (False, True)
]


def _id(p) -> str:
    return f"{p[0]}-T{p[1]}-{'ztsnr' if p[2] else 'plain'}"


@pytest.fixture(params=ALL, ids=_id)
def schedule(request):
    name, T, z = request.param
    return make_schedule(name, timesteps=T, zero_terminal_snr=z)


def test_variance_preserving(schedule):
    t = torch.linspace(0, 1, 2001, dtype=torch.float64)
    a, s = schedule.alpha(t), schedule.sigma(t)
    torch.testing.assert_close(a**2 + s**2, torch.ones_like(t), rtol=0, atol=1e-12)


def test_log_snr_is_log_alpha2_over_sigma2(schedule):
    t = torch.linspace(0.001, 0.999, 999, dtype=torch.float64)
    expected = torch.log(schedule.alpha(t) ** 2 / schedule.sigma(t) ** 2)
    torch.testing.assert_close(schedule.log_snr(t), expected, rtol=1e-10, atol=1e-10)


def test_log_snr_strictly_decreasing(schedule):
    t = torch.linspace(0, 1, 4001, dtype=torch.float64)
    lam = schedule.log_snr(t)
    assert bool((lam[1:] < lam[:-1]).all())


def test_log_snr_inverse(schedule):
    t = torch.linspace(schedule.t_min, 0.999, 1500, dtype=torch.float64)
    back = schedule.t_from_log_snr(schedule.log_snr(t))
    torch.testing.assert_close(back, t, rtol=0, atol=1e-9)


def test_endpoints(schedule):
    assert schedule.alpha(0.0).item() == 1.0 and schedule.sigma(0.0).item() == 0.0
    assert schedule.log_snr(0.0).item() == math.inf
    assert schedule.t_from_log_snr(math.inf).item() == 0.0
    assert schedule.t_from_log_snr(-math.inf).item() == 1.0
    lam_end = schedule.log_snr(1.0).item()
    if schedule.zero_terminal_snr:
        assert schedule.alpha(1.0).item() == 0.0 and lam_end == -math.inf
    else:
        assert -25 < lam_end < -9  # the usual terminal log-SNRs: linear -10.1, cosine -19.8 / -9.6


def test_dtype_follows_t(schedule):
    assert schedule.alpha(torch.rand(3)).dtype == torch.float32
    assert schedule.sigma(torch.rand(3, dtype=torch.float64)).dtype == torch.float64
    assert schedule.log_snr(torch.rand(3).bfloat16()).dtype == torch.float32


def test_config_round_trip(schedule):
    rebuilt = make_schedule(**schedule.config)
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    assert torch.equal(rebuilt.log_snr(t), schedule.log_snr(t))


@pytest.mark.parametrize(
    ("name", "beta_schedule", "z"),
    [("linear", "linear", False), ("cosine", "squaredcos_cap_v2", False),
     ("linear", "linear", True), ("cosine", "squaredcos_cap_v2", True)],
)
def test_discrete_tables_match_diffusers(name, beta_schedule, z):
    """alphabar on the grid t_i = (i+1)/T equals diffusers' (float32) alphas_cumprod."""
    ours = make_schedule(name, 1000, zero_terminal_snr=z)
    ref = DDPMScheduler(
        num_train_timesteps=1000, beta_schedule=beta_schedule, rescale_betas_zero_snr=z
    ).alphas_cumprod.double()
    t = (torch.arange(1000, dtype=torch.float64) + 1) / 1000
    # diffusers accumulates 1000 float32 products: relative error ~ 1000 * 6e-8.
    torch.testing.assert_close(ours.alpha(t) ** 2, ref, rtol=1e-4, atol=1e-9)


def test_linear_betas_scale_with_T():
    """T = 100 uses betas 1e-3..0.2 (improved-diffusion's 1000/T scaling)."""
    ref = DDPMScheduler(num_train_timesteps=100, beta_start=1e-3, beta_end=0.2).alphas_cumprod
    ours = make_schedule("linear", 100).alphas_cumprod
    torch.testing.assert_close(ours, ref.double(), rtol=1e-5, atol=1e-9)


def test_discrete_grid_is_exact_and_interpolates_alpha():
    sched = make_schedule("cosine", 50)
    grid = (torch.arange(51, dtype=torch.float64)) / 50
    alpha = sched.alpha(grid)
    torch.testing.assert_close(alpha[1:] ** 2, sched.alphas_cumprod, rtol=1e-14, atol=0)
    mid = (grid[:-1] + grid[1:]) / 2
    torch.testing.assert_close(sched.alpha(mid), (alpha[:-1] + alpha[1:]) / 2, rtol=1e-12, atol=0)


def test_continuous_linear_is_the_limit_of_discrete():
    """Discrete log alpha = sum log(1 - beta_j) / 2 = -sum beta_j / 2 - sum beta_j^2 / 4 - ...

    The first sum is the continuous -int beta / 2 up to one Riemann step, |gap| <= beta_max / 4
    = 0.005; the second is at most T beta_max^2 / 12 = 0.034 at t = 1, shrinking like t^3.
    """
    t = torch.linspace(0.01, 1, 100, dtype=torch.float64)
    disc, cont = make_schedule("linear", 1000), make_schedule("linear", None)
    gap = disc.log_alpha(t) - cont.log_alpha(t)
    assert bool((gap <= 0.005).all()) and bool((gap >= -0.035 * t**3 - 0.005).all())
    assert gap[-1] == pytest.approx(-0.034, abs=0.005)  # the beta^2 term is really there


def test_continuous_cosine_formula():
    """alpha^2 = f(0.9946 t) / f(0), f(u) = cos^2(pi/2 (u + s)/(1 + s)), s = 0.008 (2102.09672)."""
    sched = make_schedule("cosine", None)
    for t in (0.1, 0.5, 0.9, 1.0):
        f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
        assert sched.alpha(t).item() ** 2 == pytest.approx(f(0.9946 * t) / f(0.0), rel=1e-12)


@pytest.mark.parametrize("T", [1000, None])
def test_zero_terminal_snr_is_an_affine_map_of_alpha(T):
    """Lin et al. alg. 1: alpha' = (alpha - alpha_T) alpha_0 / (alpha_0 - alpha_T)."""
    plain, z = make_schedule("linear", T), make_schedule("linear", T, zero_terminal_snr=True)
    first = plain.t_min if T else 0.0  # the first grid point (discrete) or t = 0 is kept
    a0, aT = plain.alpha(first).item(), plain.alpha(1.0).item()
    t = torch.linspace(first, 1, 333, dtype=torch.float64)
    expected = (plain.alpha(t) - aT) * a0 / (a0 - aT)
    torch.testing.assert_close(z.alpha(t), expected, rtol=1e-10, atol=1e-12)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown schedule 'sigmoid'.*linear, cosine"):
        make_schedule("sigmoid")
    with pytest.raises(ValueError, match="timesteps must be an integer"):
        make_schedule("cosine", timesteps=1)
    with pytest.raises(ValueError, match="timesteps must be an integer"):
        make_schedule("cosine", timesteps=10.5)
