"""Samplers driven by the exact denoiser E[x0 | x_t] must reproduce the data distribution.

Tolerances. With n draws the Monte-Carlo standard errors are SE(mean) = s / sqrt(n),
SE(var) = sqrt((m4 - s^4) / n) (m4: 4th central moment; sqrt(2/n) s^2 for a Gaussian) and
SE(weight) = sqrt(w (1 - w) / n). Every check allows 4 SE (a false alarm has p ~ 6e-5 per
statistic, and the draws are seeded) plus, for the variance only, the sampler's discretisation
bias at the step count used, measured with 10x more samples (n = 200k, cosine schedule; on the
linear schedule, tested with the mixture only, the biases are smaller):

- DDPM, 1000 steps: bias < 1 SE; allowance 0.
- DDIM, 50 steps: first order, global error ~1.5 / N on the flow map, so the variance shrinks
  by 3-7 %; allowance 8 %.
- DPM-Solver++(2M), 25 steps, and Heun, 50 steps (logsnr spacing): second order, variance
  bias <= 2.5 %; allowance 3 %.

The allowances hide no real bug: ``test_convergence_order`` pins each ODE sampler's error to its
theoretical order on the exact Gaussian flow map, free of Monte-Carlo noise, and the means and
mixture weights get no allowance at all.
"""

from __future__ import annotations

import math

import pytest
import torch

from unclip.diffusion import (
    GaussianDiffusion,
    get_sampler,
    make_schedule,
    make_timesteps,
    nfe,
    sample,
)
from unclip.diffusion.toy import GaussianMixture, gaussian, toy_mixture

N = 20_000
Z = 4.0
# sampler, steps, spacing, allowed relative variance bias
CASES = [
    ("ddpm", 1000, "uniform", 0.0),
    ("ddim", 50, "trailing", 0.08),
    ("dpmpp_2m", 25, "trailing", 0.03),
    ("heun", 50, "logsnr", 0.03),
]
IDS = [f"{c[0]}-{c[1]}" for c in CASES]
GAUSS = gaussian([0.5, -1.0], [0.5, 1.5])


def _central_m4(mix: GaussianMixture) -> torch.Tensor:
    """Per-dim 4th central moment: sum_k w_k (d^4 + 6 d^2 s^2 + 3 s^4), d = mu_k - mean."""
    d = mix.means - mix.mean()
    return mix.weights @ (d**4 + 6 * d**2 * mix.stds**2 + 3 * mix.stds**4)


def check_distribution(mix: GaussianMixture, x: torch.Tensor, var_allowance: float) -> None:
    """Means, variances and mixture weights of samples ``x`` (n, D) against the exact values."""
    n = x.shape[0]
    mean, var = mix.mean(), mix.variance()
    x = x.double()
    se_mean = (var / n).sqrt()
    se_var = ((_central_m4(mix) - var**2) / n).sqrt()
    mean_err = (x.mean(0) - mean).abs()
    var_err = (x.var(0) - var).abs()
    assert bool((mean_err <= Z * se_mean).all()), f"mean error {mean_err} > {Z * se_mean}"
    tol_var = Z * se_var + var_allowance * var
    assert bool((var_err <= tol_var).all()), f"variance error {var_err} > {tol_var}"
    if len(mix.weights) > 1:
        counts = torch.bincount(mix.classify(x), minlength=len(mix.weights)).double()
        se_w = (mix.weights * (1 - mix.weights) / n).sqrt()
        w_err = (counts / n - mix.weights).abs()
        assert bool((w_err <= Z * se_w).all()), f"weight error {w_err} > {Z * se_w}"


def run(name, steps, spacing, mix, schedule, seed=0, n=N, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x_T = torch.randn(n, mix.dim, generator=g, dtype=dtype)
    return get_sampler(name)(mix.denoiser(schedule), x_T, make_timesteps(schedule, steps, spacing),
                             schedule=schedule, generator=g)


@pytest.mark.parametrize(("name", "steps", "spacing", "allowance"), CASES, ids=IDS)
def test_gaussian_data(name, steps, spacing, allowance):
    x = run(name, steps, spacing, GAUSS, make_schedule("cosine", 1000))
    check_distribution(GAUSS, x, allowance)


@pytest.mark.parametrize(("name", "steps", "spacing", "allowance"), CASES, ids=IDS)
def test_mixture_data(name, steps, spacing, allowance):
    mix = toy_mixture()
    x = run(name, steps, spacing, mix, make_schedule("cosine", 1000))
    check_distribution(mix, x, allowance)


@pytest.mark.parametrize(("name", "steps", "spacing", "allowance"),
                         [c for c in CASES if c[0] != "ddpm"], ids=IDS[1:])
def test_linear_schedule(name, steps, spacing, allowance):
    mix = toy_mixture()
    x = run(name, steps, spacing, mix, make_schedule("linear", 1000), seed=1)
    check_distribution(mix, x, allowance)


@pytest.mark.parametrize(("name", "steps", "allowance"),
                         [("ddpm", 1000, 0.0), ("ddim", 50, 0.08), ("dpmpp_2m", 25, 0.03),
                          ("heun", 50, 0.03)])
def test_zero_terminal_snr_with_v_prediction(name, steps, allowance):
    """Through ``sample()``: a v-prediction network on a zero-terminal-SNR schedule (alpha_1 = 0,
    where eps-prediction cannot give x0) with trailing spacing, which starts at t = 1."""
    schedule = make_schedule("cosine", 1000, zero_terminal_snr=True)
    diffusion = GaussianDiffusion(schedule, prediction="v")
    exact = GAUSS.denoiser(schedule)

    def v_model(x, t):
        a, s = schedule.alpha(t)[:, None], schedule.sigma(t)[:, None]
        return (a * x - exact(x, t)) / s  # v = (alpha x_t - x0) / sigma

    g = torch.Generator().manual_seed(2)
    n = N // 4 if name == "ddpm" else N  # 1000 steps through sample(): keep it quick
    x_T = torch.randn(n, 2, generator=g, dtype=torch.float64)
    spacing = "uniform" if name == "ddpm" else "trailing"
    x = sample(diffusion, v_model, x_T, sampler=name, steps=steps, spacing=spacing, generator=g)
    check_distribution(GAUSS, x, allowance)


def _flow_map_error(name: str, steps: int) -> float:
    """Largest relative error of the sampler's map x_1 -> x_0 against the exact PF-ODE map.

    For Gaussian data all marginals are Gaussian, so the ODE map is the monotone affine transport
    x_0 = mu + s (x_1 - alpha_1 mu) / sqrt(alpha_1^2 s^2 + sigma_1^2).
    """
    schedule = make_schedule("cosine", None)
    mu, s = 0.3, 0.5
    data = gaussian([mu], [s])
    x1 = torch.tensor([[-2.0], [-0.7], [0.9], [2.5]], dtype=torch.float64)
    a1, g1 = schedule.alpha(1.0).item(), schedule.sigma(1.0).item()
    exact = mu + s * (x1 - a1 * mu) / math.sqrt(a1**2 * s**2 + g1**2)
    got = get_sampler(name)(data.denoiser(schedule), x1, make_timesteps(schedule, steps, "uniform"),
                            schedule=schedule)
    return ((got - exact) / (exact - mu)).abs().max().item()


@pytest.mark.parametrize(("name", "low", "high"),
                         [("ddim", 0.85, 1.15), ("dpmpp_2m", 1.8, 2.5), ("heun", 1.8, 3.0)])
def test_convergence_order(name, low, high):
    """Error ratio between N and 2N steps is 2^p for an order-p solver (here N = 40, 80)."""
    order = math.log2(_flow_map_error(name, 40) / _flow_map_error(name, 80))
    assert low <= order <= high, f"{name}: empirical order {order:.2f}"


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpmpp_2m", "heun"])
def test_images_and_vectors_are_sampled_alike(name):
    """Samplers are shape-agnostic: (B, C, H, W) gives the flattened (B, D) result."""
    mix = GaussianMixture([0.6, 0.4], [[0.5] * 48, [-0.5] * 48], [[0.3] * 48, [0.2] * 48])
    schedule = make_schedule("linear", 1000)
    ts = make_timesteps(schedule, 8, "trailing")
    kwargs = {"eta": 0.7} if name == "ddim" else {}
    out = []
    for shape in ((16, 48), (16, 3, 4, 4)):
        g = torch.Generator().manual_seed(5)
        x_T = torch.randn(shape, generator=g)
        out.append(get_sampler(name)(mix.denoiser(schedule), x_T, ts, schedule=schedule,
                                     generator=g, **kwargs))
    assert out[1].shape == (16, 3, 4, 4) and out[1].dtype == torch.float32
    torch.testing.assert_close(out[1].reshape(16, 48), out[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpmpp_2m", "heun"])
def test_generator_makes_samples_reproducible(name):
    schedule = make_schedule("cosine", 100)
    kwargs = {"eta": 1.0} if name == "ddim" else {}
    calls = []

    def denoiser(x, t):
        calls.append(t)
        return torch.tanh(x) * (1 - t[:, None])

    def go(seed):
        g = torch.Generator().manual_seed(seed)
        x_T = torch.randn(4, 3, generator=g)
        return get_sampler(name)(denoiser, x_T, make_timesteps(schedule, 10, "uniform"),
                                 schedule=schedule, generator=g, **kwargs)

    a, b = go(0), go(0)
    assert torch.equal(a, b)
    assert len(calls) == 2 * nfe(name, 10)
    assert calls[0].dtype == torch.float32 and calls[0].shape == (4,)
    stochastic = name in ("ddpm", "ddim")
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(4, 3, generator=g)  # same start, different sampler noise
    c = get_sampler(name)(denoiser, x_T, make_timesteps(schedule, 10, "uniform"),
                          schedule=schedule, generator=torch.Generator().manual_seed(9), **kwargs)
    assert torch.equal(a, c) != stochastic


def test_callback_and_progress_bar():
    schedule = make_schedule("cosine", 100)
    seen = []
    x_T = torch.randn(2, 5)
    get_sampler("dpmpp_2m")(lambda x, t: 0.5 * x, x_T, make_timesteps(schedule, 6, "uniform"),
                            schedule=schedule, callback=seen.append, disable=False)
    assert [s["i"] for s in seen] == list(range(6))
    assert seen[0]["t"] == 1.0 and torch.equal(seen[0]["x"], x_T)
    assert torch.equal(seen[0]["denoised"], 0.5 * x_T)


def test_timesteps_are_validated():
    schedule = make_schedule("cosine", 100)
    with pytest.raises(ValueError, match="strictly decreasing"):
        get_sampler("ddim")(lambda x, t: x, torch.zeros(1, 2), torch.tensor([0.5, 0.7, 0.0]),
                            schedule=schedule)
    with pytest.raises(ValueError, match="at least 2 entries"):
        get_sampler("ddim")(lambda x, t: x, torch.zeros(1, 2), torch.tensor([0.5]),
                            schedule=schedule)
    with pytest.raises(ValueError, match="unknown sampler 'euler'.*ddpm, ddim, dpmpp_2m, heun"):
        get_sampler("euler")
