"""Prediction targets eps, x0 and v, exact conversions among them, and loss weightings.

With ``x_t = alpha x0 + sigma eps`` and ``alpha^2 + sigma^2 = 1``, the velocity is
``v = alpha eps - sigma x0`` (Salimans & Ho 2202.00512 sec. 4), hence given ``x_t``:

- ``x0 = (x_t - sigma eps) / alpha  = alpha x_t - sigma v``
- ``eps = (x_t - alpha x0) / sigma = sigma x_t + alpha v``

``alpha`` and ``sigma`` broadcast against ``x_t`` (see ``broadcast_to``).
"""

from __future__ import annotations

import torch

PREDICTIONS = ("eps", "x0", "v")
LOSS_WEIGHTINGS = ("mse", "min_snr")


def check_prediction(prediction: str) -> str:
    """Return ``prediction`` if it is in ``PREDICTIONS``, else raise a ValueError listing them."""
    if prediction not in PREDICTIONS:
        raise ValueError(
            f"unknown prediction {prediction!r}; choose one of {', '.join(PREDICTIONS)}"
        )
    return prediction


def broadcast_to(coef: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Per-sample coefficient (B,) (or a scalar) reshaped to (B, 1, ..., 1) in x's dtype."""
    coef = torch.as_tensor(coef, device=x.device)
    if coef.ndim == 1:
        coef = coef.reshape(-1, *([1] * (x.ndim - 1)))
    return coef.to(x.dtype)


def x0_from(
    pred: torch.Tensor,
    x_t: torch.Tensor,
    alpha: torch.Tensor | float,
    sigma: torch.Tensor | float,
    prediction: str,
) -> torch.Tensor:
    """The x0 implied by a prediction of type ``prediction`` at ``x_t``."""
    a, s = broadcast_to(alpha, x_t), broadcast_to(sigma, x_t)
    if check_prediction(prediction) == "x0":
        return pred
    if prediction == "eps":
        return (x_t - s * pred) / a  # 2006.11239 eq. 4 solved for x0
    return a * x_t - s * pred  # 2202.00512 sec. 4


def eps_from(
    pred: torch.Tensor,
    x_t: torch.Tensor,
    alpha: torch.Tensor | float,
    sigma: torch.Tensor | float,
    prediction: str,
) -> torch.Tensor:
    """The eps implied by a prediction of type ``prediction`` at ``x_t``."""
    a, s = broadcast_to(alpha, x_t), broadcast_to(sigma, x_t)
    if check_prediction(prediction) == "eps":
        return pred
    if prediction == "x0":
        return (x_t - a * pred) / s
    return s * x_t + a * pred  # 2202.00512 sec. 4


def v_from(
    pred: torch.Tensor,
    x_t: torch.Tensor,
    alpha: torch.Tensor | float,
    sigma: torch.Tensor | float,
    prediction: str,
) -> torch.Tensor:
    """The v implied by a prediction of type ``prediction`` at ``x_t``."""
    if check_prediction(prediction) == "v":
        return pred
    a, s = broadcast_to(alpha, x_t), broadcast_to(sigma, x_t)
    if prediction == "eps":
        return (pred - s * x_t) / a
    return (a * x_t - pred) / s


def convert(
    pred: torch.Tensor,
    x_t: torch.Tensor,
    alpha: torch.Tensor | float,
    sigma: torch.Tensor | float,
    source: str,
    target: str,
) -> torch.Tensor:
    """Convert a ``source``-type prediction at ``x_t`` to the ``target`` type."""
    fn = {"x0": x0_from, "eps": eps_from, "v": v_from}[check_prediction(target)]
    return fn(pred, x_t, alpha, sigma, source)


def target_from(
    x0: torch.Tensor,
    eps: torch.Tensor,
    alpha: torch.Tensor | float,
    sigma: torch.Tensor | float,
    prediction: str,
) -> torch.Tensor:
    """Regression target of a network predicting ``prediction``, from the clean data and noise."""
    if check_prediction(prediction) == "x0":
        return x0
    if prediction == "eps":
        return eps
    a, s = broadcast_to(alpha, x0), broadcast_to(sigma, x0)
    return a * eps - s * x0  # v, 2202.00512 sec. 4


def loss_weight(
    log_snr: torch.Tensor, prediction: str, weighting: str = "mse", gamma: float = 5.0
) -> torch.Tensor:
    """Per-sample weight of the MSE on the ``prediction`` target.

    ``"mse"``: 1 (plain MSE on the chosen target). ``"min_snr"``: Min-SNR-gamma (Hang et al.
    2303.09556 sec. 3.4), the x0-space weight ``min(SNR, gamma)`` expressed for each target through
    ``|eps - eps^|^2 = SNR |x0 - x0^|^2`` and ``|v - v^|^2 = (SNR + 1) |x0 - x0^|^2``:
    ``x0: min(SNR, gamma)``, ``eps: min(1, gamma / SNR)``, ``v: min(SNR, gamma) / (SNR + 1)``.
    """
    check_prediction(prediction)
    if weighting == "mse":
        return torch.ones_like(log_snr)
    if weighting != "min_snr":
        raise ValueError(
            f"unknown loss weighting {weighting!r}; choose one of {', '.join(LOSS_WEIGHTINGS)}"
        )
    if gamma <= 0:
        raise ValueError(f"min_snr_gamma must be positive, got {gamma}")
    snr = log_snr.exp()
    if prediction == "x0":
        return snr.clamp(max=gamma)
    if prediction == "eps":
        return (gamma / snr).clamp(max=1.0)  # = min(SNR, gamma) / SNR, finite at SNR = 0
    # v: min(SNR, gamma) / (SNR + 1) == 1 / (1 + 1/SNR) for SNR <= gamma, finite at SNR = inf.
    return torch.where(snr <= gamma, torch.sigmoid(log_snr), gamma / (snr + 1))
