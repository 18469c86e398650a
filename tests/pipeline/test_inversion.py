"""DDIM inversion against a denoiser known in closed form: it must invert DDIM sampling."""

from __future__ import annotations

import pytest
import torch

from unclip.diffusion import GaussianDiffusion, make_schedule, sample
from unclip.diffusion.toy import GaussianMixture
from unclip.pipeline import ddim_invert

MIX = GaussianMixture([0.5, 0.5], [[0.6, 0.6], [-0.6, -0.6]], [[0.15, 0.15], [0.15, 0.15]])


@pytest.mark.parametrize("prediction", ["x0", "eps"])
def test_inversion_then_ddim_reconstructs_and_gives_gaussian_noise(prediction):
    schedule = make_schedule("cosine", 1000)
    diffusion = GaussianDiffusion(schedule, prediction=prediction)
    exact = MIX.denoiser(schedule)

    def model(x, t, **cond):  # the exact denoiser, reported in the diffusion's parameterisation
        x0 = exact(x, t)
        if prediction == "x0":
            return x0
        alpha, sigma = schedule.alpha(t)[:, None], schedule.sigma(t)[:, None]
        return (x - alpha * x0) / sigma

    x0 = MIX.sample(2000, torch.Generator().manual_seed(0))[0].float()
    errors = []
    for steps in (10, 50):
        x_T = ddim_invert(diffusion, model, x0, steps=steps)
        rec = sample(diffusion, model, x_T, sampler="ddim", steps=steps, eta=0.0)
        errors.append((rec - x0).abs().mean().item())
    assert errors[1] < 0.03 and errors[1] < errors[0] / 2  # converges with the step count
    # the probability-flow ODE maps the data distribution onto N(0, I)
    torch.testing.assert_close(x_T.mean(0), torch.zeros(2), atol=0.1, rtol=0)
    torch.testing.assert_close(x_T.std(0), torch.ones(2), atol=0.1, rtol=0)

