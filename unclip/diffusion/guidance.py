"""Classifier-free guidance as a model wrapper, and thresholding of the x0 prediction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

THRESHOLDS = ("static", "dynamic")


class ClassifierFreeGuidance:
    """``model'(x, t, **cond) = uncond + scale (cond - uncond)`` (2207.12598 eq. 6, scale = 1 + w).

    Both halves run in ONE batched forward: inputs are concatenated ``[x; x]`` and the second half
    gets ``cond_drop=True`` (the network's learned null condition, see docs/interfaces.md). The
    combination is applied to the raw network output; since eps, x0 and v are affine in one
    another at fixed ``x_t``, guiding any of them is the same guidance. ``scale == 1`` runs the
    conditional half only and ``scale == 0`` the unconditional half only.
    """

    def __init__(self, model: Callable[..., torch.Tensor], scale: float) -> None:
        self.model = model
        self.scale = float(scale)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
        if self.scale == 1.0:
            return self.model(x, t, **cond)
        batch = x.shape[0]
        given_drop = _given_drop(cond, x)
        null_drop = torch.ones(batch, dtype=torch.bool, device=x.device)
        if self.scale == 0.0:
            return self.model(x, t, cond_drop=null_drop, **cond)
        doubled = {key: _repeat(key, value, batch, 2) for key, value in cond.items()}
        out = self.model(
            torch.cat([x, x]), torch.cat([t, t]),
            cond_drop=torch.cat([given_drop, null_drop]), **doubled,
        )
        cond_out, uncond_out = out.chunk(2)
        return uncond_out + self.scale * (cond_out - uncond_out)


class TwoConditionGuidance:
    """Separate guidance scales for the image embedding and the caption (InstructPix2Pix,
    2211.09800 eq. 3, with the CLIP image embedding as its image condition)::

        model'(x, t) = out(null) + image_scale (out(z) - out(null))
                                 + text_scale (out(z, caption) - out(z))

    ``out(z)`` drops the caption alone (``text_drop``, the network's learned null caption), so
    the network must have been trained with the two conditions dropped independently (the
    decoder's ``image_drop_prob`` and ``text_drop_prob``). ``image_scale == text_scale == s`` is
    :class:`ClassifierFreeGuidance` at ``s``; a larger ``text_scale`` pushes the sample further
    towards what the caption adds to the embedding. The three terms run in ONE batched forward.
    """

    def __init__(self, model: Callable[..., torch.Tensor], image_scale: float,
                 text_scale: float) -> None:
        self.model = model
        self.image_scale, self.text_scale = float(image_scale), float(text_scale)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
        batch = x.shape[0]
        given_drop = _given_drop(cond, x)
        keep = torch.zeros(batch, dtype=torch.bool, device=x.device)
        drop = torch.ones(batch, dtype=torch.bool, device=x.device)
        tripled = {key: _repeat(key, value, batch, 3) for key, value in cond.items()}
        out = self.model(  # rows: (z, caption), (z, null caption), (null, null)
            torch.cat([x, x, x]), torch.cat([t, t, t]),
            cond_drop=torch.cat([given_drop, given_drop, drop]),
            text_drop=torch.cat([keep, drop, keep]), **tripled,
        )
        both, image, null = out.chunk(3)
        return (null + self.image_scale * (image - null)
                + self.text_scale * (both - image))


def _given_drop(cond: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
    """The rows the caller dropped (``cond_drop``, popped from ``cond``), as bools on x's device;
    none when not given."""
    given = cond.pop("cond_drop", None)
    if given is None:
        return torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    return given.to(x.device, torch.bool)


def _repeat(key: str, value: Any, batch: int, times: int) -> Any:
    """``times`` copies of a batch-first tensor condition along the batch; None passes through."""
    if value is None:
        return None
    if not isinstance(value, torch.Tensor) or value.ndim == 0 or value.shape[0] != batch:
        raise ValueError(
            f"condition {key!r} must be a tensor with batch size {batch} as first dim (or None) "
            "for classifier-free guidance"
        )
    return torch.cat([value] * times)


def static_threshold(x0: torch.Tensor) -> torch.Tensor:
    """Clip the x0 prediction to the data range [-1, 1] (Imagen 2205.11487 sec. 2.3)."""
    return x0.clamp(-1.0, 1.0)


def dynamic_threshold(x0: torch.Tensor, ratio: float = 0.995) -> torch.Tensor:
    """Imagen's dynamic thresholding (2205.11487 sec. 2.3).

    Per sample, ``s`` is the ``ratio`` quantile of ``|x0|``; where ``s > 1`` the prediction is
    clipped to [-s, s] and divided by s, otherwise clipped to [-1, 1].
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"dynamic threshold ratio must be in (0, 1], got {ratio}")
    flat = x0.float().flatten(1)
    s = torch.quantile(flat.abs(), ratio, dim=1).clamp(min=1.0)[:, None]
    return (flat.clamp(-s, s) / s).reshape(x0.shape).to(x0.dtype)


def apply_threshold(x0: torch.Tensor, threshold: str | None, ratio: float = 0.995) -> torch.Tensor:
    """Apply ``threshold`` (None, ``"static"`` or ``"dynamic"``) to an x0 prediction."""
    if threshold is None:
        return x0
    if threshold == "static":
        return static_threshold(x0)
    check_threshold(threshold)
    return dynamic_threshold(x0, ratio)


def check_threshold(threshold: str | None) -> None:
    """Raise a ValueError listing the choices if ``threshold`` is not None/static/dynamic."""
    if threshold is not None and threshold not in THRESHOLDS:
        raise ValueError(
            f"unknown threshold {threshold!r}; choose None or one of {', '.join(THRESHOLDS)}"
        )


def guided(model: Callable[..., torch.Tensor], scale: float,
           text_scale: float | None = None) -> Callable[..., torch.Tensor]:
    """``model`` guided at ``scale``: itself at 1, else its classifier-free-guidance wrapper;
    with a ``text_scale``, :class:`TwoConditionGuidance` (``scale`` on the image embedding,
    ``text_scale`` on the caption)."""
    if text_scale is not None:
        return TwoConditionGuidance(model, scale, text_scale)
    return model if scale == 1.0 else ClassifierFreeGuidance(model, scale)


__all__ = [
    "THRESHOLDS",
    "ClassifierFreeGuidance",
    "TwoConditionGuidance",
    "apply_threshold",
    "check_threshold",
    "dynamic_threshold",
    "guided",
    "static_threshold",
]
