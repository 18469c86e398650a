"""Resolution augmentation for the domain CLIP: some training images seen at a lower resolution.

A CLIP trained only on crisp 64 px renderings reads little else: the same images shrunk to 32 px
and enlarged again lose their colour+shape reading about half the time, so the CLIP could not
judge the 32 px samples of the base decoder, nor slightly soft upsampled ones. Here a share of
each batch is shrunk (antialiased) to a random side in ``[min_size, size)`` and enlarged back
with bilinear or bicubic interpolation (drawn per side), the path a low-resolution image takes
through :func:`unclip.clip.preprocess_images` at reading time. The caption is unchanged: the
content is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

UPSAMPLE_MODES = ("bilinear", "bicubic")


def degrade_resolution(
    images: torch.Tensor,
    prob: float,
    min_size: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Images ``(B, C, H, W)`` in ``[-1, 1]`` with each row, with probability ``prob``, shrunk
    to a random side in ``[min_size, H)`` and enlarged back to ``H x W`` (rows left alone are
    returned unchanged; the output is a new tensor)."""
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"resolution augmentation prob must be in [0, 1], got {prob}")
    size = images.shape[-1]
    if not 1 <= min_size < size:
        raise ValueError(
            f"resolution augmentation min_size must be in [1, {size}) for {size} px images, "
            f"got {min_size}")
    out = images.clone()
    if prob == 0.0:
        return out
    chosen = torch.rand(len(images), generator=generator) < prob
    sides = torch.randint(min_size, size, (len(images),), generator=generator)
    for side in sides[chosen].unique().tolist():
        rows = (chosen & (sides == side)).nonzero().flatten().to(images.device)
        mode = UPSAMPLE_MODES[int(torch.randint(len(UPSAMPLE_MODES), (1,), generator=generator))]
        small = F.interpolate(images[rows].float(), size=(side, side), mode="bilinear",
                              align_corners=False, antialias=True)
        back = F.interpolate(small, size=images.shape[-2:], mode=mode, align_corners=False)
        out[rows] = back.clamp(-1.0, 1.0).to(images.dtype)
    return out
