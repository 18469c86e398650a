"""Images in and out of the pipeline: files -> ``(B, 3, H, W)`` in [-1, 1] -> PIL, and grids."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError


class ImageInputError(ValueError):
    """An input image that cannot be used, with the file named."""


def read_rgb(path: str | Path) -> Image.Image:
    """The decoded RGB image at ``path``; ``ImageInputError`` naming the file if unusable."""
    path = Path(path)
    if not path.is_file():
        raise ImageInputError(f"input image not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ImageInputError(f"cannot read input image {path}: {err}") from err


def load_image(path: str | Path, size: int) -> torch.Tensor:
    """Read an image file as RGB, centre-crop it square, resize to ``size``: (3, size, size).

    Values in [-1, 1] (the project convention). Raises ``ImageInputError`` naming the file when
    it is missing or not a readable image.
    """
    rgb = read_rgb(path)
    w, h = rgb.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    rgb = rgb.crop((left, top, left + side, top + side))
    if side != size:
        rgb = rgb.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=None)
    array = np.asarray(rgb, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def load_images(paths: Sequence[str | Path], size: int) -> torch.Tensor:
    """``load_image`` for each path, stacked: (N, 3, size, size)."""
    if not paths:
        raise ImageInputError("no input images given")
    return torch.stack([load_image(p, size) for p in paths])


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [-1, 1] (clipped) -> RGB PIL images, rounded to uint8."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images (B, 3, H, W), got {tuple(images.shape)}")
    u8 = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return [Image.fromarray(x.permute(1, 2, 0).cpu().numpy(), mode="RGB") for x in u8]


def make_grid(images: Sequence[Image.Image], ncol: int | None = None, pad: int = 2) -> Image.Image:
    """Tile equally sized images row-major, ``ncol`` per row (default ~square), ``pad`` px apart."""
    if not images:
        raise ValueError("make_grid needs at least one image")
    w, h = images[0].size
    if any(im.size != (w, h) for im in images):
        raise ValueError("make_grid needs images of one size")
    ncol = ncol or math.ceil(math.sqrt(len(images)))
    nrow = math.ceil(len(images) / ncol)
    grid = Image.new("RGB", (ncol * w + (ncol + 1) * pad, nrow * h + (nrow + 1) * pad))
    for k, im in enumerate(images):
        r, c = divmod(k, ncol)
        grid.paste(im, (pad + c * (w + pad), pad + r * (h + pad)))
    return grid
