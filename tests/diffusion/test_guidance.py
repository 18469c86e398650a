"""Classifier-free guidance (one batched forward) and thresholding of x0."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from unclip.diffusion import (
    ClassifierFreeGuidance,
    GaussianDiffusion,
    ModelDenoiser,
    apply_threshold,
    dynamic_threshold,
    make_schedule,
    static_threshold,
)


class RecordingNet:
    """A conditional 'network' that records its calls; the null condition zeroes the embedding."""

    def __init__(self) -> None:
        self.calls = []

    def __call__(self, x, t, *, emb, tokens=None, cond_drop=None):
        self.calls.append({"batch": x.shape[0], "cond_drop": cond_drop, "emb": emb})
        keep = torch.ones(x.shape[0]) if cond_drop is None else (~cond_drop).float()
        return x * t[:, None] + keep[:, None] * emb


def _inputs(batch=3):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(batch, 4, generator=g), torch.rand(batch, generator=g),
            torch.randn(batch, 4, generator=g))


def test_cfg_is_one_batched_forward_with_the_right_combination():
    net, (x, t, emb) = RecordingNet(), _inputs()
    out = ClassifierFreeGuidance(net, 4.0)(x, t, emb=emb, tokens=None)
    assert len(net.calls) == 1 and net.calls[0]["batch"] == 6
    assert net.calls[0]["cond_drop"].tolist() == [False] * 3 + [True] * 3
    assert torch.equal(net.calls[0]["emb"], torch.cat([emb, emb]))
    cond = net(x, t, emb=emb)
    uncond = net(x, t, emb=emb, cond_drop=torch.ones(3, dtype=torch.bool))
    torch.testing.assert_close(out, uncond + 4.0 * (cond - uncond))


def test_cfg_scale_one_and_zero_run_one_half():
    net, (x, t, emb) = RecordingNet(), _inputs()
    out = ClassifierFreeGuidance(net, 1.0)(x, t, emb=emb)
    assert net.calls[-1]["batch"] == 3 and net.calls[-1]["cond_drop"] is None
    torch.testing.assert_close(out, x * t[:, None] + emb)
    out = ClassifierFreeGuidance(net, 0.0)(x, t, emb=emb)
    assert net.calls[-1]["batch"] == 3 and bool(net.calls[-1]["cond_drop"].all())
    torch.testing.assert_close(out, x * t[:, None])


def test_cfg_keeps_rows_the_caller_dropped():
    net, (x, t, emb) = RecordingNet(), _inputs()
    drop = torch.tensor([True, False, False])
    ClassifierFreeGuidance(net, 2.0)(x, t, emb=emb, cond_drop=drop)
    assert net.calls[0]["cond_drop"].tolist() == [True, False, False, True, True, True]


def test_cfg_rejects_a_condition_without_batch_dim():
    net, (x, t, emb) = RecordingNet(), _inputs()
    with pytest.raises(ValueError, match="condition 'emb' must be a tensor with batch size 3"):
        ClassifierFreeGuidance(net, 2.0)(x, t, emb=emb[:2])


def test_model_denoiser_guides_then_converts_then_thresholds():
    """x0-prediction network: the denoiser output is clip(uncond + s (cond - uncond))."""
    net, (x, t, emb) = RecordingNet(), _inputs()
    diffusion = GaussianDiffusion(make_schedule("cosine", 1000), prediction="x0")
    denoiser = ModelDenoiser(diffusion, net, {"emb": 3 * emb}, guidance_scale=2.0,
                             threshold="static")
    out = denoiser(x, t)
    cond, uncond = x * t[:, None] + 3 * emb, x * t[:, None]
    torch.testing.assert_close(out, (uncond + 2 * (cond - uncond)).clamp(-1, 1))
    eps = denoiser.eps(x, t)
    a, s = diffusion.schedule.alpha(t)[:, None], diffusion.schedule.sigma(t)[:, None]
    torch.testing.assert_close(eps, (x - a * out) / s)


def test_static_threshold():
    x = torch.tensor([[-3.0, -0.5, 0.25, 1.7]])
    assert static_threshold(x).tolist() == [[-1.0, -0.5, 0.25, 1.0]]


def test_dynamic_threshold_matches_diffusers():
    """Imagen's dynamic thresholding = diffusers' _threshold_sample with no upper bound on s."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 3, 8, 8, generator=g) * torch.tensor([0.3, 1.0, 2.0, 4.0, 0.9])[:, None,
                                                                                      None, None]
    ref = DDPMScheduler(thresholding=True, dynamic_thresholding_ratio=0.9, sample_max_value=1e6)
    torch.testing.assert_close(dynamic_threshold(x0, 0.9), ref._threshold_sample(x0))
    assert dynamic_threshold(x0, 0.9).abs().max() <= 1.0


def test_dynamic_threshold_is_static_clipping_for_in_range_samples():
    x0 = torch.linspace(-0.9, 0.9, 300)
    x0[7] = 5.0  # 1 of 300 values (< 0.5%) out of range: the 99.5% quantile of |x| stays < 1
    x0 = x0.reshape(1, 3, 10, 10)
    assert torch.equal(dynamic_threshold(x0), static_threshold(x0))
    assert dynamic_threshold(x0).max() == 1.0


def test_threshold_names():
    x = torch.ones(1, 2)
    assert apply_threshold(x, None) is x
    with pytest.raises(ValueError, match="unknown threshold 'clip'.*static, dynamic"):
        apply_threshold(x, "clip")
    with pytest.raises(ValueError, match="ratio must be in"):
        dynamic_threshold(x, 1.5)
