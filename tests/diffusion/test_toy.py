"""The closed-form denoiser of Gaussian-mixture data is E[x0 | x_t]."""

from __future__ import annotations

import pytest
import torch

from unclip.diffusion import make_schedule
from unclip.diffusion.toy import GaussianMixture, gaussian, toy_mixture

SCHEDULE = make_schedule("cosine", 1000)


def test_single_gaussian_is_the_linear_wiener_filter():
    data = gaussian([0.5, -1.0], [0.5, 1.5])
    x = torch.randn(7, 2, dtype=torch.float64)
    t = torch.full((7,), 0.4, dtype=torch.float64)
    a, s = SCHEDULE.alpha(0.4).item(), SCHEDULE.sigma(0.4).item()
    mu, var = torch.tensor([0.5, -1.0], dtype=torch.float64), torch.tensor([0.25, 2.25])
    expected = mu + a * var / (a**2 * var + s**2) * (x - a * mu)
    torch.testing.assert_close(data.denoiser(SCHEDULE)(x, t), expected.double())


@pytest.mark.parametrize("t_val", [0.2, 0.6, 0.95])
def test_residual_is_orthogonal_to_functions_of_x_t(t_val):
    """E[(x0 - D(x_t)) g(x_t)] = 0 for g in {1, x_t, x_t^2} characterises E[x0 | x_t].

    With n = 100k joint draws each empirical mean has SE = std(r g) / sqrt(n); allow 5 SE.
    The denoiser of a time off by only 0.03 already misses by 6-26 SE.
    """
    mix, n = toy_mixture(), 100_000
    g = torch.Generator().manual_seed(0)
    x0, _ = mix.sample(n, g)
    t = torch.full((n,), t_val, dtype=torch.float64)
    x_t = SCHEDULE.alpha(t)[:, None] * x0 + SCHEDULE.sigma(t)[:, None] * torch.randn(
        n, 2, generator=g, dtype=torch.float64)
    r = x0 - mix.denoiser(SCHEDULE)(x_t, t)
    for test_fn in (torch.ones_like(x_t), x_t, x_t**2, x_t.flip(1)):
        prod = r * test_fn
        assert bool((prod.mean(0).abs() <= 5 * prod.std(0) / n**0.5).all())


def test_mixed_times_in_one_batch():
    mix = toy_mixture()
    x = torch.randn(6, 2, dtype=torch.float64)
    t = torch.tensor([0.1, 0.9, 0.1, 0.5, 0.9, 0.5], dtype=torch.float64)
    denoise = mix.denoiser(SCHEDULE)
    joint = denoise(x, t)
    for i in range(6):
        torch.testing.assert_close(joint[i:i + 1], denoise(x[i:i + 1], t[i:i + 1]))


def test_moments_sampling_and_classification():
    mix = toy_mixture()
    x, labels = mix.sample(200_000, torch.Generator().manual_seed(1))
    torch.testing.assert_close(x.mean(0), mix.mean(), atol=0.02, rtol=0)  # SE <= 0.004
    torch.testing.assert_close(x.var(0), mix.variance(), atol=0.03, rtol=0)  # SE <= 0.006
    assert (mix.classify(x) != labels).double().mean() < 5e-4  # Bayes error ~ 1e-4


def test_bad_mixtures_and_shapes():
    with pytest.raises(ValueError, match="expected weights"):
        GaussianMixture([1.0], [[0.0, 0.0]], [[1.0]])
    with pytest.raises(ValueError, match="positive"):
        GaussianMixture([1.0], [[0.0]], [[0.0]])
    with pytest.raises(ValueError, match="expected 2 dims per sample, got 3"):
        toy_mixture().denoiser(SCHEDULE)(torch.zeros(1, 3), torch.ones(1))
