"""Sampling time grids: diffusers' integer timesteps, log-SNR uniformity, errors."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from unclip.diffusion import SPACINGS, make_schedule, make_timesteps


@pytest.mark.parametrize(("ours", "theirs"), [("uniform", "linspace"), ("trailing", "trailing")])
@pytest.mark.parametrize("steps", [2, 3, 7, 10, 20, 50, 333, 1000])
def test_discrete_grids_match_diffusers(ours, theirs, steps):
    """Our t = (k + 1) / T at diffusers' integer timestep k.

    (One step is always [1, 0]: diffusers' one-step "linspace" would start at k = 0, t = 1/T.)
    """
    sched = make_schedule("cosine", 1000)
    ref = DDIMScheduler(num_train_timesteps=1000, timestep_spacing=theirs)
    ref.set_timesteps(steps)
    times = make_timesteps(sched, steps, ours)
    assert times[-1] == 0 and len(times) == steps + 1
    assert (times[:-1] * 1000 - 1).round().long().tolist() == ref.timesteps.tolist()
    assert torch.equal(times[:-1] * 1000, (times[:-1] * 1000).round())


@pytest.mark.parametrize("T", [1000, None])
@pytest.mark.parametrize("spacing", SPACINGS)
def test_grid_shape(T, spacing):
    sched = make_schedule("linear", T)
    for steps in (1, 2, 5, 64):
        times = make_timesteps(sched, steps, spacing)
        assert times.dtype == torch.float64 and times.shape == (steps + 1,)
        assert times[0] == 1.0 and times[-1] == 0.0
        assert bool((times[1:] < times[:-1]).all())
        if steps > 1 and spacing != "trailing":
            assert times[-2] == pytest.approx(sched.t_min)


def test_trailing_continuous():
    times = make_timesteps(make_schedule("cosine", None), 4, "trailing")
    assert times.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]


def test_uniform_continuous():
    sched = make_schedule("cosine", None)
    times = make_timesteps(sched, 5, "uniform")
    torch.testing.assert_close(times[:-1], torch.linspace(1, sched.t_min, 5, dtype=torch.float64))


@pytest.mark.parametrize("T", [1000, None])
def test_logsnr_is_uniform_in_log_snr(T):
    sched = make_schedule("cosine", T)
    times = make_timesteps(sched, 12, "logsnr")
    lam = sched.log_snr(times[:-1])
    steps = lam.diff()
    torch.testing.assert_close(steps, steps.mean().expand(11), rtol=1e-7, atol=1e-9)
    assert lam[0].item() == pytest.approx(sched.log_snr(1.0).item())
    assert lam[-1].item() == pytest.approx(sched.log_snr(sched.t_min).item())


def test_errors_are_named():
    sched = make_schedule("cosine", 100)
    with pytest.raises(ValueError, match="unknown spacing 'leading'.*uniform, trailing, logsnr"):
        make_timesteps(sched, 10, "leading")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        make_timesteps(sched, 0)
    with pytest.raises(ValueError, match="steps=101 exceeds the 100 grid times"):
        make_timesteps(sched, 101, "trailing")
    assert len(make_timesteps(sched, 101, "logsnr")) == 102  # continuous times are fine
    with pytest.raises(ValueError, match="zero terminal SNR; use spacing='trailing'"):
        make_timesteps(make_schedule("cosine", 100, zero_terminal_snr=True), 10, "logsnr")
