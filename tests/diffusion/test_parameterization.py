"""eps / x0 / v targets: exact round trips and Min-SNR weights."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from unclip.diffusion import PREDICTIONS, convert, loss_weight, make_schedule, target_from


@pytest.fixture
def state():
    """x0, eps, x_t = alpha x0 + sigma eps at a spread of noise levels (rows), float64."""
    g = torch.Generator().manual_seed(0)
    sched = make_schedule("cosine", 1000)
    t = torch.tensor([0.001, 0.05, 0.3, 0.7, 0.95, 1.0], dtype=torch.float64)
    x0 = torch.randn(6, 3, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(6, 3, 4, 4, generator=g, dtype=torch.float64)
    a, s = sched.alpha(t), sched.sigma(t)
    x_t = a[:, None, None, None] * x0 + s[:, None, None, None] * eps
    return x0, eps, x_t, a, s


def test_v_definition(state):
    x0, eps, _, a, s = state
    v = target_from(x0, eps, a, s, "v")
    torch.testing.assert_close(v, a[:, None, None, None] * eps - s[:, None, None, None] * x0)


@pytest.mark.parametrize(("source", "target"), list(itertools.product(PREDICTIONS, PREDICTIONS)))
def test_conversions_are_exact(state, source, target):
    """Every prediction type, converted given x_t, gives the true value of every other type.

    Conditioning: x0 from eps divides by alpha (>= 1e-4 at t = 1), eps from x0 by sigma (0.006 at
    t = 1/T), so float64 keeps ~1e-11 relative accuracy.
    """
    x0, eps, x_t, a, s = state
    pred = target_from(x0, eps, a, s, source)
    expected = target_from(x0, eps, a, s, target)
    torch.testing.assert_close(convert(pred, x_t, a, s, source, target), expected,
                               rtol=1e-9, atol=1e-9)


def test_targets_are_the_three_parameterisations(state):
    x0, eps, x_t, a, s = state
    assert torch.equal(target_from(x0, eps, a, s, "x0"), x0)
    assert torch.equal(target_from(x0, eps, a, s, "eps"), eps)


GAMMA = 5.0
# (SNR, weight on the x0 / eps / v MSE): min(SNR, g), min(SNR, g)/SNR, min(SNR, g)/(SNR + 1).
KNOWN = [
    (0.5, 0.5, 1.0, 0.5 / 1.5),
    (1.0, 1.0, 1.0, 0.5),
    (5.0, 5.0, 1.0, 5 / 6),
    (10.0, 5.0, 0.5, 5 / 11),
    (100.0, 5.0, 0.05, 5 / 101),
]


@pytest.mark.parametrize(("snr", "w_x0", "w_eps", "w_v"), KNOWN)
def test_min_snr_weights_at_known_snrs(snr, w_x0, w_eps, w_v):
    lam = torch.tensor([math.log(snr)], dtype=torch.float64)
    for prediction, expected in (("x0", w_x0), ("eps", w_eps), ("v", w_v)):
        got = loss_weight(lam, prediction, "min_snr", GAMMA).item()
        assert got == pytest.approx(expected, rel=1e-12), prediction


def test_min_snr_limits_are_finite():
    lam = torch.tensor([-math.inf, math.inf], dtype=torch.float64)
    assert loss_weight(lam, "eps", "min_snr", GAMMA).tolist() == [1.0, 0.0]
    assert loss_weight(lam, "v", "min_snr", GAMMA).tolist() == [0.0, 0.0]
    assert loss_weight(lam, "x0", "min_snr", GAMMA).tolist() == [0.0, GAMMA]


def test_min_snr_is_one_weighting_in_three_parameterisations(state):
    """w_p |p - p_hat|^2 == min(SNR, gamma) |x0 - x0_hat|^2 for p in eps, x0, v (2303.09556)."""
    x0, eps, x_t, a, s = state
    a, s, x_t, x0 = a[1:-1], s[1:-1], x_t[1:-1], x0[1:-1]  # finite SNR
    x0_hat = x0 + 0.1 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(1),
                                   dtype=torch.float64)
    lam = torch.log(a**2 / s**2)
    x0_err = (x0 - x0_hat).pow(2).flatten(1).sum(1)
    expected = torch.minimum(lam.exp(), torch.tensor(GAMMA, dtype=torch.float64)) * x0_err
    for p in PREDICTIONS:
        true = convert(x0, x_t, a, s, "x0", p)
        hat = convert(x0_hat, x_t, a, s, "x0", p)
        got = loss_weight(lam, p, "min_snr", GAMMA) * (true - hat).pow(2).flatten(1).sum(1)
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=0)


def test_plain_mse_weight_is_one():
    lam = torch.linspace(-10, 10, 7)
    for p in PREDICTIONS:
        assert torch.equal(loss_weight(lam, p, "mse"), torch.ones(7))


def test_bad_names():
    lam = torch.zeros(1)
    with pytest.raises(ValueError, match="unknown prediction 'epsilon'.*eps, x0, v"):
        loss_weight(lam, "epsilon")
    with pytest.raises(ValueError, match="unknown loss weighting 'p2'.*mse, min_snr"):
        loss_weight(lam, "eps", "p2")
