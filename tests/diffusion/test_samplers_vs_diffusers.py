"""Our samplers step for step against diffusers' schedulers on the same model outputs.

Both sides use the same alphabar table (ours, float64, installed into the diffusers scheduler:
that the tables agree is tested in test_schedules.py) and the same "network": the exact
mixture denoiser written as an eps, v or x0 prediction. diffusers' integer timestep k is our
t = (k + 1) / T. DDIM, DDPM and Heun then agree to float64 round-off; diffusers' DPM-Solver++
computes in float32, so it agrees to float32 round-off amplified by up to 1/alpha_1 (~160 on the
linear schedule, for eps-prediction) at the first step: 1e-5.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    HeunDiscreteScheduler,
)

from unclip.diffusion import GaussianDiffusion, make_schedule, make_timesteps, sample
from unclip.diffusion.toy import toy_mixture

T = 1000
THEIR_NAME = {"eps": "epsilon", "v": "v_prediction", "x0": "sample"}
BETAS = {"linear": "linear", "cosine": "squaredcos_cap_v2"}


def make_net(diffusion: GaussianDiffusion):
    """The exact mixture denoiser as a network predicting ``diffusion.prediction``."""
    schedule, exact = diffusion.schedule, toy_mixture().denoiser(diffusion.schedule)

    def net(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, s = schedule.alpha(t)[:, None].to(x.dtype), schedule.sigma(t)[:, None].to(x.dtype)
        x0 = exact(x, t)
        eps = (x - a * x0) / s
        return {"x0": x0, "eps": eps, "v": a * eps - s * x0}[diffusion.prediction]

    return net


def their_step_input(net, x, k):
    return net(x, torch.full((x.shape[0],), (int(k) + 1) / T, dtype=torch.float64))


def ours_with_trajectory(diffusion, net, x_T, **kwargs):
    states = []
    out = sample(diffusion, net, x_T, callback=lambda d: states.append(d["x"]), **kwargs)
    return states[1:] + [out]


def install_table(ref, diffusion):
    ref.alphas_cumprod = diffusion.schedule.alphas_cumprod.clone()
    return ref


def x_start(dtype=torch.float64, n=64):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=dtype)


@pytest.mark.parametrize(("schedule", "prediction"),
                         [("linear", "eps"), ("cosine", "v"), ("cosine", "x0"), ("cosine", "eps")])
@pytest.mark.parametrize("eta", [0.0, 0.6])
def test_ddim_matches_diffusers(schedule, prediction, eta):
    diffusion = GaussianDiffusion(make_schedule(schedule, T), prediction)
    net, x_T, steps = make_net(diffusion), x_start(), 20
    ref = install_table(DDIMScheduler(num_train_timesteps=T, beta_schedule=BETAS[schedule],
                                      prediction_type=THEIR_NAME[prediction], clip_sample=False,
                                      timestep_spacing="trailing"), diffusion)
    ref.set_timesteps(steps)
    g_ref, x, theirs = torch.Generator().manual_seed(1), x_T.clone(), []
    for k in ref.timesteps:
        x = ref.step(their_step_input(net, x, k), k, x, eta=eta, generator=g_ref).prev_sample
        theirs.append(x)
    ours = ours_with_trajectory(diffusion, net, x_T, sampler="ddim", steps=steps, eta=eta,
                                spacing="trailing", generator=torch.Generator().manual_seed(1))
    assert len(ours) == len(theirs) == steps
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("schedule", "prediction", "steps"),
                         [("linear", "eps", 1000), ("cosine", "v", 1000), ("cosine", "x0", 37)])
def test_ddpm_matches_diffusers(schedule, prediction, steps):
    diffusion = GaussianDiffusion(make_schedule(schedule, T), prediction)
    net, x_T = make_net(diffusion), x_start(n=16)
    spacing = "uniform" if steps == T else "trailing"
    ks = (make_timesteps(diffusion.schedule, steps, spacing)[:-1] * T - 1).round().long()
    ref = install_table(DDPMScheduler(num_train_timesteps=T, beta_schedule=BETAS[schedule],
                                      prediction_type=THEIR_NAME[prediction], clip_sample=False,
                                      variance_type="fixed_small"), diffusion)
    ref.set_timesteps(timesteps=ks.tolist())
    g_ref, x = torch.Generator().manual_seed(3), x_T.clone()
    for k in ref.timesteps:
        x = ref.step(their_step_input(net, x, k), k, x, generator=g_ref).prev_sample
    ours = sample(diffusion, net, x_T, sampler="ddpm", steps=steps, spacing=spacing,
                  generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(ours, x, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize(("schedule", "prediction"),
                         [("linear", "eps"), ("cosine", "v"), ("cosine", "x0")])
@pytest.mark.parametrize(("steps", "spacing"), [(10, "uniform"), (25, "trailing")])
def test_dpmpp_2m_matches_diffusers(schedule, prediction, steps, spacing):
    diffusion = GaussianDiffusion(make_schedule(schedule, T), prediction)
    net, x_T = make_net(diffusion), x_start(torch.float32)
    ks = (make_timesteps(diffusion.schedule, steps, spacing)[:-1] * T - 1).round().long()
    ref = install_table(DPMSolverMultistepScheduler(
        num_train_timesteps=T, beta_schedule=BETAS[schedule], algorithm_type="dpmsolver++",
        solver_order=2, prediction_type=THEIR_NAME[prediction], final_sigmas_type="zero",
        lower_order_final=True), diffusion)
    ref.set_timesteps(timesteps=ks.tolist())
    x, theirs = x_T.clone(), []
    for k in ref.timesteps:
        x = ref.step(their_step_input(net, x, k).float(), k, x).prev_sample
        theirs.append(x)
    ours = ours_with_trajectory(diffusion, net, x_T.double(), sampler="dpmpp_2m", steps=steps,
                                spacing=spacing)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a.float(), b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("schedule", "prediction", "steps"),
                         [("linear", "eps", 30), ("linear", "v", 12), ("cosine", "x0", 40),
                          ("cosine", "eps", 25)])
def test_heun_matches_diffusers(schedule, prediction, steps):
    """diffusers' HeunDiscreteScheduler integrates in x / alpha with sigma = sigma_t / alpha_t.

    Its sigmas are rounded to float32, which the first Heun correction from sigma ~ 2e4 (cosine)
    amplifies to 1e-3; we install the same sigmas in float64, as set_timesteps builds them.
    """
    diffusion = GaussianDiffusion(make_schedule(schedule, T), prediction)
    net, x_T = make_net(diffusion), x_start()
    ks = (make_timesteps(diffusion.schedule, steps, "uniform")[:-1] * T - 1).round().long()
    ref = install_table(HeunDiscreteScheduler(num_train_timesteps=T, beta_schedule=BETAS[schedule],
                                              prediction_type=THEIR_NAME[prediction]), diffusion)
    ref.set_timesteps(timesteps=ks.tolist())
    abar = diffusion.schedule.alphas_cumprod[ks]
    sig = torch.cat([((1 - abar) / abar).sqrt(), torch.zeros(1, dtype=torch.float64)])
    assert torch.allclose(ref.sigmas.double().unique(), sig.unique(), rtol=1e-6)
    ref.sigmas = torch.cat([sig[:1], sig[1:-1].repeat_interleave(2), sig[-1:]])
    x = x_T * (sig[0] ** 2 + 1).sqrt()  # x / alpha_1
    for k in ref.timesteps:
        x_in = ref.scale_model_input(x, k)  # = alpha x_tilde, our x_t
        x = ref.step(their_step_input(net, x_in, k), k, x).prev_sample
    ours = sample(diffusion, net, x_T, sampler="heun", steps=steps, spacing="uniform")
    torch.testing.assert_close(ours, x, rtol=1e-8, atol=1e-8)
