"""GaussianDiffusion: q_sample moments, training loss, description as a dict, Hydra config."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from unclip.diffusion import GaussianDiffusion, loss_weight, make_schedule

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "diffusion" / "default.yaml"


def test_q_sample_moments():
    """x_t | x0 ~ N(alpha x0, sigma^2): with n = 200k draws, |mean error| < 5 sigma / sqrt(n) and
    |var error| < 5 sigma^2 sqrt(2 / n) (5 standard errors: a false alarm has p < 1e-6)."""
    n, c = 200_000, 0.7
    diffusion = GaussianDiffusion(make_schedule("linear", 1000))
    g = torch.Generator().manual_seed(0)
    for t_val in (0.1, 0.5, 0.9):
        t = torch.full((n,), t_val, dtype=torch.float64)
        x0 = torch.full((n, 1), c, dtype=torch.float64)
        x_t = diffusion.q_sample(x0, t, torch.randn(n, 1, generator=g, dtype=torch.float64))
        a, s = diffusion.schedule.alpha(t_val).item(), diffusion.schedule.sigma(t_val).item()
        assert abs(x_t.mean().item() - a * c) < 5 * s / n**0.5
        assert abs(x_t.var().item() - s**2) < 5 * s**2 * (2 / n) ** 0.5


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("weighting", ["mse", "min_snr"])
def test_oracle_has_zero_loss(prediction, weighting):
    """For constant data x0 = c the exact network output is known; its loss must vanish."""
    diffusion = GaussianDiffusion(make_schedule("cosine", 1000), prediction, weighting)
    c = 0.3

    def oracle(x_t, t, **cond):
        a, s = diffusion.schedule.alpha(t)[:, None], diffusion.schedule.sigma(t)[:, None]
        eps = (x_t - a * c) / s
        return {"x0": torch.full_like(x_t, c), "eps": eps, "v": a * eps - s * c}[prediction]

    x0 = torch.full((64, 5), c, dtype=torch.float64)
    loss, t = diffusion.training_loss(oracle, x0, generator=torch.Generator().manual_seed(0))
    assert loss.shape == (64,) and t.shape == (64,)
    assert loss.max().item() < 1e-9


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_training_loss_formula(prediction):
    """loss_i = w(t_i) mean_j (model(x_t)_ij - target_ij)^2 with the documented target."""
    diffusion = GaussianDiffusion(make_schedule("linear", 100), prediction, "min_snr", 2.0)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(8, 3, 2, 2, generator=g), torch.randn(8, 3, 2, 2, generator=g)
    t = (torch.arange(8) * 12 + 1).float() / 100
    seen = {}

    def model(x_t, t, scale):
        seen["x_t"], seen["scale"] = x_t, scale
        return scale * x_t

    loss, t_out = diffusion.training_loss(model, x0, {"scale": 0.5}, t=t, noise=noise)
    a = diffusion.schedule.alpha(t)[:, None, None, None]
    s = diffusion.schedule.sigma(t)[:, None, None, None]
    x_t = a * x0 + s * noise
    target = {"eps": noise, "x0": x0, "v": a * noise - s * x0}[prediction]
    w = loss_weight(diffusion.schedule.log_snr(t.double()), prediction, "min_snr", 2.0).float()
    expected = w * (0.5 * x_t - target).pow(2).mean(dim=(1, 2, 3))
    assert seen["scale"] == 0.5 and torch.allclose(seen["x_t"], x_t)
    assert torch.equal(t_out, t)
    torch.testing.assert_close(loss, expected)


def test_training_times():
    g = torch.Generator().manual_seed(0)
    discrete = GaussianDiffusion(make_schedule("cosine", 50))
    t = discrete.sample_t(4000, "cpu", g)
    i = t * 50 - 1
    assert torch.allclose(i, i.round(), atol=1e-4)
    assert set(i.round().long().tolist()) == set(range(50))  # every grid step is drawn
    continuous = GaussianDiffusion(make_schedule("cosine", None))
    t = continuous.sample_t(4000, "cpu", g)
    assert continuous.schedule.t_min <= t.min() and t.max() <= 1.0
    assert len(t.unique()) > 3900  # continuous (float32 birthday collisions aside)
    again = discrete.sample_t(5, "cpu", torch.Generator().manual_seed(3))
    assert torch.equal(again, discrete.sample_t(5, "cpu", torch.Generator().manual_seed(3)))


def test_training_loss_is_reproducible_with_a_generator():
    diffusion = GaussianDiffusion(make_schedule("cosine", 1000), "v", "min_snr")
    x0 = torch.randn(6, 4)

    def model(x, t):
        return torch.tanh(x) * t[:, None]

    a = diffusion.training_loss(model, x0, generator=torch.Generator().manual_seed(7))
    b = diffusion.training_loss(model, x0, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_pred_conversions_agree():
    diffusion = GaussianDiffusion(make_schedule("cosine", 1000), "v")
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 6, generator=g, dtype=torch.float64), torch.randn(4, 6, generator=g,
                                                                               dtype=torch.float64)
    t = torch.tensor([0.1, 0.4, 0.7, 0.99], dtype=torch.float64)
    x_t = diffusion.q_sample(x0, t, eps)
    v = diffusion.target(x0, eps, t)
    torch.testing.assert_close(diffusion.pred_to_x0(v, x_t, t), x0)
    torch.testing.assert_close(diffusion.pred_to_eps(v, x_t, t), eps)


def test_config_round_trip():
    d = GaussianDiffusion(make_schedule("linear", 500, zero_terminal_snr=True), "v", "min_snr", 3.0)
    config = d.config
    assert config == {
        "schedule": {"name": "linear", "timesteps": 500, "zero_terminal_snr": True},
        "prediction": "v", "loss_weighting": "min_snr", "min_snr_gamma": 3.0,
    }
    rebuilt = GaussianDiffusion.from_config(config)
    assert rebuilt.config == config
    t = torch.linspace(0, 1, 11)
    assert torch.equal(rebuilt.schedule.alpha(t), d.schedule.alpha(t))
    # a checkpoint stores only plain types
    assert OmegaConf.to_container(OmegaConf.create(config)) == config


def test_hydra_default_config_instantiates():
    cfg = OmegaConf.load(CONFIG)
    diffusion = hydra.utils.instantiate(cfg)
    assert isinstance(diffusion, GaussianDiffusion)
    assert diffusion.config["schedule"] == {"name": "cosine", "timesteps": 1000,
                                            "zero_terminal_snr": False}
    assert GaussianDiffusion.from_config(OmegaConf.to_container(cfg)).config == diffusion.config


def test_bad_arguments_are_named():
    sched = make_schedule("cosine", 1000)
    with pytest.raises(ValueError, match="unknown prediction 'noise'.*eps, x0, v"):
        GaussianDiffusion(sched, prediction="noise")
    with pytest.raises(ValueError, match="unknown loss weighting 'snr'.*mse, min_snr"):
        GaussianDiffusion(sched, loss_weighting="snr")
    with pytest.raises(ValueError, match="min_snr_gamma must be positive"):
        GaussianDiffusion(sched, min_snr_gamma=0)
    with pytest.raises(ValueError, match="zero terminal SNR.*'v' or 'x0'"):
        GaussianDiffusion(make_schedule("cosine", 1000, zero_terminal_snr=True), "eps")
    with pytest.raises(ValueError, match="model output shape"):
        GaussianDiffusion(sched).training_loss(lambda x, t: x[:, :1], torch.zeros(2, 3))
