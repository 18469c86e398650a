"""open_clip's image preprocessing, on tensors in the project convention.

open_clip ships PIL transforms (``open_clip.image_transform``); the project holds images as
``(B, 3, H, W)`` tensors in ``[-1, 1]``. This applies the same steps (resize by the model's
``resize_mode`` and ``interpolation``, centre crop or pad, mean/std normalisation) on tensors,
batched and on any device.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F


def _size_hw(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    return int(size[0]), int(size[1])


def _resize(x: torch.Tensor, hw: tuple[int, int], interpolation: str) -> torch.Tensor:
    if tuple(x.shape[-2:]) == hw:
        return x
    mode = {"bicubic": "bicubic", "bilinear": "bilinear", "nearest": "nearest"}.get(interpolation)
    if mode is None:
        raise ValueError(f"unsupported preprocess interpolation {interpolation!r}")
    antialias = mode != "nearest"
    x = F.interpolate(x, size=hw, mode=mode, antialias=antialias, align_corners=None)
    return x.clamp(0.0, 1.0)


def _center_crop(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = (h - hw[0]) // 2, (w - hw[1]) // 2
    return x[..., top : top + hw[0], left : left + hw[1]]


def _resize_shortest(x: torch.Tensor, hw: tuple[int, int], interpolation: str) -> torch.Tensor:
    h, w = x.shape[-2:]
    scale = max(hw[0] / h, hw[1] / w)
    new = (max(hw[0], round(h * scale)), max(hw[1], round(w * scale)))
    return _center_crop(_resize(x, new, interpolation), hw)


def _resize_longest(
    x: torch.Tensor, hw: tuple[int, int], interpolation: str, fill: float
) -> torch.Tensor:
    h, w = x.shape[-2:]
    scale = min(hw[0] / h, hw[1] / w)
    new = (min(hw[0], round(h * scale)), min(hw[1], round(w * scale)))
    x = _resize(x, new, interpolation)
    pad_h, pad_w = hw[0] - new[0], hw[1] - new[1]
    pads = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
    return F.pad(x, pads, value=fill)


def preprocess_images(images: torch.Tensor, cfg: Mapping[str, Any]) -> torch.Tensor:
    """Map images ``(B, 3, H, W)`` in ``[-1, 1]`` to the CLIP vision tower's normalised input.

    ``cfg`` is open_clip's preprocess config (``open_clip.get_model_preprocess_cfg(model)``):
    ``size``, ``mean``, ``std``, ``interpolation``, ``resize_mode``, ``fill_color``.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
    hw = _size_hw(cfg["size"])
    interpolation = cfg.get("interpolation", "bicubic")
    mode = cfg.get("resize_mode", "shortest")
    x = (images.float() + 1.0) / 2.0
    if mode == "shortest":
        x = _resize_shortest(x, hw, interpolation)
    elif mode == "longest":
        x = _resize_longest(x, hw, interpolation, float(cfg.get("fill_color", 0)) / 255.0)
    elif mode == "squash":
        x = _resize(x, hw, interpolation)
    else:
        raise ValueError(f"unsupported preprocess resize_mode {mode!r}")
    mean = torch.tensor(cfg["mean"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std
