"""Separable Gaussian filtering of image batches (augmentation and sampling constraints)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_kernel1d(kernel_size: int, sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian ``exp(-x^2 / (2 sigma^2))`` on ``kernel_size`` integer taps."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"blur kernel_size must be a positive odd number, got {kernel_size}")
    if sigma <= 0:
        raise ValueError(f"blur sigma must be positive, got {sigma}")
    x = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, kernel_size: int = 3, sigma: float = 0.6) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) images with reflect padding."""
    if x.ndim != 4:
        raise ValueError(f"gaussian_blur expects (B, C, H, W) images, got {tuple(x.shape)}")
    c, pad = x.shape[1], kernel_size // 2
    k = gaussian_kernel1d(kernel_size, sigma).to(x.device, x.dtype)
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
