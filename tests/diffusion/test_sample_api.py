"""The sample() front door: dispatch, guidance, thresholding, dtypes, configs, errors."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from unclip.diffusion import SAMPLERS, GaussianDiffusion, make_schedule, nfe, sample

SAMPLER_CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "sampler"


class TinyNet:
    """model(x_t, t, *, emb, cond_drop) with a learned-null stand-in; records its inputs."""

    def __init__(self, out_dtype=None, scale=1.0) -> None:
        self.calls, self.out_dtype, self.scale = [], out_dtype, scale

    def __call__(self, x, t, *, emb=None, cond_drop=None):
        self.calls.append({"x": x, "t": t, "cond_drop": cond_drop})
        out = self.scale * torch.tanh(x) * (1 - t.view(-1, *[1] * (x.ndim - 1)))
        if emb is not None:
            keep = 1.0 if cond_drop is None else (~cond_drop).float().view(-1, 1, 1, 1)
            out = out + keep * emb.view(-1, 1, 1, 1)
        return out.to(self.out_dtype or x.dtype)


@pytest.fixture
def diffusion():
    return GaussianDiffusion(make_schedule("cosine", 1000), prediction="v")


@pytest.mark.parametrize("config", sorted(SAMPLER_CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_sampler_configs_are_sample_kwargs(config, diffusion):
    cfg = OmegaConf.load(config)
    assert set(cfg) <= set(inspect.signature(sample).parameters)
    assert cfg.sampler == config.stem and cfg.sampler in SAMPLERS
    net = TinyNet()
    cfg.steps = min(cfg.steps, 4)  # keep it fast; the rest of the config as shipped
    x = sample(diffusion, net, torch.randn(2, 3, 4, 4), **cfg)
    assert x.shape == (2, 3, 4, 4) and torch.isfinite(x).all()
    assert len(net.calls) == nfe(cfg.sampler, cfg.steps)


def test_network_gets_float32_times_and_bf16_outputs_do_not_leak(diffusion):
    net = TinyNet(out_dtype=torch.bfloat16)
    x = sample(diffusion, net, torch.randn(3, 5), sampler="dpmpp_2m", steps=5, spacing="logsnr")
    assert x.dtype == torch.float32
    for call in net.calls:
        assert call["t"].dtype == torch.float32 and call["t"].shape == (3,)
        assert 0 < call["t"].min() and call["t"].max() <= 1
        assert call["x"].dtype == torch.float32
    assert net.calls[0]["t"][0] == 1.0


def test_guidance_is_one_batched_forward_per_step(diffusion):
    net = TinyNet()
    emb = torch.randn(2)
    sample(diffusion, net, torch.randn(2, 3, 4, 4), sampler="ddim", steps=6,
           cond={"emb": emb}, guidance_scale=4.0)
    assert len(net.calls) == 6
    assert all(c["x"].shape[0] == 4 for c in net.calls)
    assert net.calls[0]["cond_drop"].tolist() == [False, False, True, True]
    net = TinyNet()
    sample(diffusion, net, torch.randn(2, 3, 4, 4), steps=6, cond={"emb": emb})
    assert all(c["x"].shape[0] == 2 and c["cond_drop"] is None for c in net.calls)


@pytest.mark.parametrize("threshold", ["static", "dynamic"])
def test_thresholding_keeps_the_sample_in_range(threshold):
    diffusion = GaussianDiffusion(make_schedule("cosine", 1000), prediction="x0")
    net = TinyNet(scale=8.0)  # x0 predictions far outside [-1, 1]
    x = sample(diffusion, net, 3 * torch.randn(4, 3, 8, 8), sampler="ddim", steps=5,
               threshold=threshold)
    assert x.abs().max() <= 1.0 + 1e-6
    free = sample(diffusion, net, 3 * torch.randn(4, 3, 8, 8), sampler="ddim", steps=5)
    assert free.abs().max() > 1.5


def test_seeded_sampling_is_reproducible(diffusion):
    def go(seed):
        g = torch.Generator().manual_seed(seed)
        return sample(diffusion, TinyNet(), torch.randn(2, 6, generator=g), sampler="ddpm",
                      steps=10, generator=g, progress=True)

    assert torch.equal(go(0), go(0)) and not torch.equal(go(0), go(1))


def test_errors_name_the_problem(diffusion):
    x = torch.randn(1, 2)
    with pytest.raises(ValueError, match="unknown sampler 'plms'; choose one of ddpm, ddim, "
                                         "dpmpp_2m, heun"):
        sample(diffusion, TinyNet(), x, sampler="plms")
    with pytest.raises(ValueError, match="eta=0.5 applies only to sampler='ddim'"):
        sample(diffusion, TinyNet(), x, sampler="heun", eta=0.5)
    with pytest.raises(ValueError, match="unknown threshold 'clip'"):
        sample(diffusion, TinyNet(), x, threshold="clip")
    with pytest.raises(ValueError, match="unknown spacing 'karras'"):
        sample(diffusion, TinyNet(), x, spacing="karras")


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp_2m"])
def test_x0_transform_sees_every_prediction_and_shapes_the_sample(diffusion, sampler):
    """Every x0 prediction goes through the transform, and the final step to t = 0 returns the
    last transformed prediction: with the low-pass consistency the sample's blurred content is
    pulled toward the reference's."""
    from unclip.diffusion.consistency import LowPassConsistency, low_pass

    low = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(1)) - 0.5
    fix = LowPassConsistency(low, resolution=8, sigma=2.0)
    outputs = []

    def transform(x0):
        outputs.append(fix(x0))
        return outputs[-1]

    net = TinyNet(scale=3.0)
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    x = sample(diffusion, net, x_T, sampler=sampler, steps=4, x0_transform=transform)
    plain = sample(diffusion, TinyNet(scale=3.0), x_T, sampler=sampler, steps=4)
    assert len(outputs) == len(net.calls) == 4
    torch.testing.assert_close(x, outputs[-1])
    gap = lambda images: (low_pass(images, 2.0) - fix.reference_low).abs().mean()  # noqa: E731
    assert gap(x) < 0.5 * gap(plain)
