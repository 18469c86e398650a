"""Low-pass consistency of upsampler x0 predictions (DDNM 2212.00490 eq. 8 with a low-pass)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unclip.diffusion.consistency import LowPassConsistency, low_pass


def _smooth_images(b: int = 2, size: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(b, 3, size, size, generator=g) * 2 - 1


def test_mean_colour_comes_from_the_low_res_input():
    low = _smooth_images()
    fix = LowPassConsistency(low, resolution=16, sigma=2.0)
    y = F.interpolate(low, size=(16, 16), mode="bilinear", align_corners=False)
    tinted = y + torch.tensor([0.3, -0.2, 0.1]).view(1, 3, 1, 1)  # a background tint
    out = fix(tinted)
    torch.testing.assert_close(out.mean((2, 3)), y.mean((2, 3)), atol=1e-5, rtol=0)
    assert (tinted - y).abs().mean() > 0.1 and (out - y).abs().max() < 1e-5


def test_detail_above_the_cut_off_is_kept():
    low = _smooth_images()
    fix = LowPassConsistency(low, resolution=16, sigma=2.0)
    y = F.interpolate(low, size=(16, 16), mode="bilinear", align_corners=False)
    checker = 0.2 * ((torch.arange(16)[:, None] + torch.arange(16)[None]) % 2 * 2 - 1).float()
    out = fix(y + checker)
    detail = out - y
    assert F.cosine_similarity(detail.flatten(), checker.expand_as(detail).flatten(), dim=0) > 0.9
    assert detail.abs().mean() > 0.15  # nearly all of the 0.2 checkerboard survives


def test_consistent_predictions_are_left_alone():
    low = _smooth_images()
    y = F.interpolate(low, size=(16, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(LowPassConsistency(low, 16, 3.0)(y), y, atol=1e-6, rtol=0)


def test_low_pass_keeps_constants_and_fits_small_images():
    flat = torch.full((1, 3, 4, 4), 0.25)
    torch.testing.assert_close(low_pass(flat, 8.0), flat)  # kernel cut to the 4 px image


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(low_res=torch.zeros(1, 3, 8, 8), resolution=16, sigma=0.0), "sigma must be positive"),
    (dict(low_res=torch.zeros(3, 8, 8), resolution=16, sigma=1.0), r"low_res must be \(B, C"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LowPassConsistency(**kwargs)


def test_shape_mismatch_is_named():
    fix = LowPassConsistency(torch.zeros(2, 3, 8, 8), 16, 1.0)
    with pytest.raises(ValueError, match="does not match the reference"):
        fix(torch.zeros(2, 3, 32, 32))
