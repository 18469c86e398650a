"""Corruption of an upsampler's low-resolution conditioning image.

Two augmentations make an upsampler robust to the artefacts of the stage below it:

- Gaussian blur, kernel 3, sigma 0.6: unCLIP's first upsampler (2204.06125 sec. 2.2), applied
  to a random fraction of training rows only.
- Gaussian noise at a level ``s`` in [0, 1] through the diffusion's own forward process,
  ``z_s = alpha_s x + sigma_s eps`` (cascaded diffusion 2106.15282 sec. 4.1; Imagen 2205.11487
  sec. 2.5). ``s`` is drawn per row during training and told to the network (``aug_level``); at
  sampling it is a chosen parameter, and the low-res image is noised to it the same way.
"""

from __future__ import annotations

import math

import torch

from unclip.diffusion import GaussianDiffusion
from unclip.image_filters import gaussian_blur, gaussian_kernel1d


def noise_augment(
    x: torch.Tensor,
    level: torch.Tensor,
    diffusion: GaussianDiffusion,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``z_s = alpha_s x + sigma_s eps`` at per-row levels ``s`` (B,) (2106.15282 sec. 4.1)."""
    if level.shape != (x.shape[0],):
        raise ValueError(f"level must have shape ({x.shape[0]},), got {tuple(level.shape)}")
    if bool((level < 0).any()) or bool((level > 1).any()):
        raise ValueError("augmentation levels must lie in [0, 1]")
    return _noise(x, level, diffusion, generator)


def _noise(
    x: torch.Tensor,
    level: torch.Tensor,
    diffusion: GaussianDiffusion,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """:func:`noise_augment` without its checks, which read the levels on the host (a GPU sync)."""
    eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return diffusion.q_sample(x, level.to(x.device), eps).to(x.dtype)


class LowResAugment:
    """Training and sampling corruption of the low-res image (see the module docstring).

    Args:
        blur_prob: fraction of training rows blurred (0 disables the blur).
        blur_kernel, blur_sigma: the blur (paper: 3, 0.6).
        max_level: training levels are uniform on ``[0, max_level]`` (CDM's truncation).
        sample_level: default level at sampling.
    """

    def __init__(
        self,
        blur_prob: float = 0.5,
        blur_kernel: int = 3,
        blur_sigma: float = 0.6,
        max_level: float = 0.5,
        sample_level: float = 0.1,
    ) -> None:
        for name, value in (("blur_prob", blur_prob), ("max_level", max_level),
                            ("sample_level", sample_level)):
            if not 0.0 <= value <= 1.0 or math.isnan(value):
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        gaussian_kernel1d(blur_kernel, blur_sigma)  # validates the blur parameters
        self.blur_prob, self.blur_kernel, self.blur_sigma = blur_prob, blur_kernel, blur_sigma
        self.max_level, self.sample_level = max_level, sample_level

    def train(
        self,
        low_res: torch.Tensor,
        diffusion: GaussianDiffusion,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Blur a random ``blur_prob`` of rows, noise every row at ``s ~ U[0, max_level]``.

        Returns ``(augmented low_res, levels (B,))``.
        """
        b, device = low_res.shape[0], low_res.device
        if self.blur_prob > 0:
            rows = torch.rand(b, generator=generator, device=device) < self.blur_prob
            blurred = gaussian_blur(low_res, self.blur_kernel, self.blur_sigma)
            low_res = torch.where(rows[:, None, None, None], blurred, low_res)
        level = self.max_level * torch.rand(b, generator=generator, device=device)
        return _noise(low_res, level, diffusion, generator), level  # levels in range by draw

    def sample(
        self,
        low_res: torch.Tensor,
        diffusion: GaussianDiffusion,
        level: float | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise every row at one level (default ``sample_level``); no blur at sampling."""
        s = self.sample_level if level is None else float(level)
        levels = torch.full((low_res.shape[0],), s, device=low_res.device)
        return noise_augment(low_res, levels, diffusion, generator), levels

    def config(self) -> dict[str, float | int]:
        """Plain dict for checkpoints; ``LowResAugment(**config)`` rebuilds it."""
        return {"blur_prob": self.blur_prob, "blur_kernel": self.blur_kernel,
                "blur_sigma": self.blur_sigma, "max_level": self.max_level,
                "sample_level": self.sample_level}
