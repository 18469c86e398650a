"""Low-res conditioning corruption: blur kernel, noise through the forward process, rates."""

from __future__ import annotations

import math

import pytest
import torch

from unclip.augment import LowResAugment, noise_augment
from unclip.diffusion import GaussianDiffusion
from unclip.image_filters import gaussian_blur, gaussian_kernel1d


@pytest.fixture(scope="module")
def diffusion() -> GaussianDiffusion:
    return GaussianDiffusion({"name": "cosine", "timesteps": 1000}, prediction="eps")


def test_paper_blur_kernel():
    k = gaussian_kernel1d(3, 0.6)
    side = math.exp(-1 / (2 * 0.6**2))  # exp(-x^2 / 2 sigma^2) at x = +-1
    expected = torch.tensor([side, 1.0, side], dtype=torch.float64) / (1 + 2 * side)
    torch.testing.assert_close(k, expected)


def test_blur_keeps_constants_and_mean_and_smooths():
    flat = torch.full((2, 3, 8, 8), 0.3)
    torch.testing.assert_close(gaussian_blur(flat), flat)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 16, 16, generator=g)
    y = gaussian_blur(x)
    assert y.shape == x.shape
    # an interior impulse keeps its mass; white noise loses variance
    impulse = torch.zeros(1, 1, 9, 9)
    impulse[..., 4, 4] = 1.0
    blurred = gaussian_blur(impulse)
    torch.testing.assert_close(blurred.sum(), torch.tensor(1.0))
    k = gaussian_kernel1d(3, 0.6).float()
    torch.testing.assert_close(blurred[0, 0, 3:6, 3:6], torch.outer(k, k))
    assert y.var() < 0.7 * x.var()


def test_noise_augment_is_the_forward_process(diffusion):
    x = torch.full((4000, 3, 2, 2), 0.5)
    level = torch.full((4000,), 0.3)
    z = noise_augment(x, level, diffusion, torch.Generator().manual_seed(0))
    alpha, sigma = float(diffusion.schedule.alpha(0.3)), float(diffusion.schedule.sigma(0.3))
    assert abs(z.mean() - alpha * 0.5) < 4 * sigma / math.sqrt(z.numel())
    assert abs(z.std() - sigma) < 0.02
    torch.testing.assert_close(noise_augment(x[:2], torch.zeros(2), diffusion), x[:2])


def test_train_levels_and_blur_rate(diffusion):
    aug = LowResAugment(blur_prob=0.5, max_level=0.4)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2000, 3, 4, 4, generator=g)
    _, level = aug.train(x, diffusion, g)
    assert level.shape == (2000,) and level.min() >= 0 and level.max() <= 0.4
    assert abs(level.mean() - 0.2) < 0.02
    # with no noise, rows either equal the input or its blur, in about equal numbers
    out, _ = LowResAugment(blur_prob=0.5, max_level=0.0).train(x, diffusion, g)
    same = (out - x).flatten(1).abs().amax(1) < 1e-6
    blurred = (out - gaussian_blur(x)).flatten(1).abs().amax(1) < 1e-6
    assert (same ^ blurred).all()
    assert abs(blurred.float().mean() - 0.5) < 0.05


def test_sample_level_default_and_override(diffusion):
    aug = LowResAugment(sample_level=0.2)
    x = torch.zeros(3, 3, 4, 4)
    _, level = aug.sample(x, diffusion)
    torch.testing.assert_close(level, torch.full((3,), 0.2))
    clean, level = aug.sample(x, diffusion, level=0.0)
    torch.testing.assert_close(clean, x)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [(dict(blur_prob=1.5), "blur_prob"), (dict(blur_kernel=4), "odd"),
     (dict(blur_sigma=0.0), "sigma"), (dict(max_level=-0.1), "max_level")],
)
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LowResAugment(**kwargs)


def test_bad_levels_are_named(diffusion):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        noise_augment(torch.zeros(2, 3, 4, 4), torch.tensor([0.1, 1.5]), diffusion)
    with pytest.raises(ValueError, match="shape"):
        noise_augment(torch.zeros(2, 3, 4, 4), torch.tensor([0.1]), diffusion)
