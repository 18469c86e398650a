"""Low-frequency consistency of an upsampler's x0 predictions with its low-res input.

An upsampler should add detail, not change what the stage below drew. A network trained briefly
gets the lowest frequencies slightly wrong at high noise (where the min-SNR weighting gives them
almost no weight), and the sampler carries that error to the end as a tinted background, which
CLIP readers are very sensitive to. The fix is the range/null-space decomposition of DDNM
(Wang et al. 2212.00490, eq. 8) with a low-pass filter ``L`` in place of the degradation, in the
spirit of ILVR (Choi et al. 2108.02938, eq. 7), applied to every x0 prediction:

    x0 <- x0 + L(y) - L(x0)

with ``y`` the clean low-res input resized to the output resolution and ``L`` a Gaussian blur
of standard deviation ``sigma`` output pixels. ``L`` keeps constants, so a constant tint of the
prediction is removed exactly; content at frequency ``f`` becomes
``(1 - G(f)) x0 + G(f) y`` (``G`` the filter's response), so detail well above the cut-off stays
the network's. ``L`` is not a projection: this is a soft blend, not a hard constraint.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from unclip.image_filters import gaussian_blur


def low_pass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of (B, C, H, W) images, kernel ``2 ceil(3 sigma) + 1`` (at most the image)."""
    size = min(x.shape[-2:])
    kernel = min(2 * math.ceil(3 * sigma) + 1, 2 * (size // 2) - 1)
    return gaussian_blur(x, kernel, sigma)


class LowPassConsistency:
    """``x0 -> x0 + L(y) - L(x0)`` (module docstring); ``y`` is filtered once.

    Args:
        low_res: the upsampler's clean low-res input (B, C, h, w), before noise augmentation.
        resolution: the output resolution; ``y`` is ``low_res`` resized to it (bilinear).
        sigma: standard deviation of the low-pass ``L`` in output pixels.
    """

    def __init__(self, low_res: torch.Tensor, resolution: int, sigma: float) -> None:
        if not sigma > 0:
            raise ValueError(f"low-pass consistency sigma must be positive, got {sigma}")
        if low_res.ndim != 4:
            raise ValueError(f"low_res must be (B, C, H, W), got {tuple(low_res.shape)}")
        self.sigma = float(sigma)
        y = F.interpolate(low_res.float(), size=(resolution, resolution), mode="bilinear",
                          align_corners=False)
        self.reference_low = low_pass(y, self.sigma)

    def __call__(self, x0: torch.Tensor) -> torch.Tensor:
        if x0.shape != self.reference_low.shape:
            raise ValueError(f"x0 of shape {tuple(x0.shape)} does not match the reference "
                             f"{tuple(self.reference_low.shape)}")
        low = self.reference_low.to(x0.device, x0.dtype)
        return x0 + low - low_pass(x0, self.sigma)
