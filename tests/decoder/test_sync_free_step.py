"""The decoder/upsampler training step's sync-free pieces give what their checked versions give:
loss by timestep bucket without host reads, low-res noise without range checks."""

from __future__ import annotations

import math

import pytest
import torch

from unclip.augment import LowResAugment, noise_augment
from unclip.diffusion import GaussianDiffusion
from unclip.image_filters import gaussian_blur
from unclip.lit.decoder_logging import bucket_losses, bucket_means


@pytest.mark.parametrize("buckets", [1, 3, 4])
def test_bucket_means_equal_bucket_losses_and_nan_when_empty(buckets):
    g = torch.Generator().manual_seed(buckets)
    t = torch.cat([torch.rand(9, generator=g) * 0.5, torch.tensor([1.0])])  # t = 1: last bucket
    loss = torch.rand(10, generator=g)
    means = bucket_means(loss, t, buckets)
    checked = bucket_losses(loss, t, buckets)
    assert list(means) == [f"t{i / buckets:.2f}-{(i + 1) / buckets:.2f}" for i in range(buckets)]
    for name, value in means.items():
        if name in checked:
            torch.testing.assert_close(value, checked[name])
        else:  # empty bucket
            assert math.isnan(value)
    assert buckets < 4 or "t0.50-0.75" not in checked  # the 4-bucket case has an empty one


def test_bucket_means_ignore_gradients_and_dtype():
    loss = torch.rand(6, dtype=torch.bfloat16, requires_grad=True)
    means = bucket_means(loss, torch.linspace(0, 1, 6), 2)
    assert all(not v.requires_grad and v.dtype == torch.float32 for v in means.values())


def test_training_noise_is_noise_augment_without_checks():
    diffusion = GaussianDiffusion({"name": "cosine", "timesteps": 1000}, prediction="eps")
    aug = LowResAugment(blur_prob=0.5, max_level=0.4)
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out, level = aug.train(x, diffusion, torch.Generator().manual_seed(1))
    # the same draws, in the same order, through the checked function
    g = torch.Generator().manual_seed(1)
    rows = torch.rand(16, generator=g) < 0.5
    blurred = torch.where(rows[:, None, None, None], gaussian_blur(x), x)
    expected_level = 0.4 * torch.rand(16, generator=g)
    torch.testing.assert_close(level, expected_level)
    torch.testing.assert_close(out, noise_augment(blurred, expected_level, diffusion, g))
