"""Image bytes -> model input: decode, resize the short side, centre-crop, scale to [-1, 1].

No flips or random crops: a flip would turn "to the left of" into "to the right of".
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from .robust import SkipSample

IMAGE_KEYS: tuple[str, ...] = ("jpg", "jpeg", "png", "webp")


def decode_image(data: bytes) -> Image.Image:
    """RGB image from encoded bytes; raises ``SkipSample("undecodable_image")`` on any failure
    (bad bytes, truncated file, decompression bomb)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")  # forces the full decode
    except Exception as err:  # noqa: BLE001 - PIL raises many types for bad data
        raise SkipSample("undecodable_image", repr(err)) from err


def resize_center_crop(image: Image.Image, resolution: int) -> Image.Image:
    """Scale the short side to ``resolution`` (bicubic, antialiased), then crop the centre."""
    width, height = image.size
    if (width, height) == (resolution, resolution):
        return image
    scale = resolution / min(width, height)
    size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=None)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    return image.crop((left, top, left + resolution, top + resolution))


def images_to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """``(H, W, 3)`` uint8 arrays -> ``(B, 3, H, W)`` float32 in ``[-1, 1]`` (one batched op:
    far cheaper than converting sample by sample)."""
    batch = torch.from_numpy(np.stack(images))
    return batch.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0).contiguous()


def load_image(sample: dict, resolution: int) -> np.ndarray:
    """The sample's image (first of IMAGE_KEYS present), resized and cropped: ``(H, W, 3)``
    uint8; :func:`images_to_tensor` turns a list of them into the model input."""
    for key in IMAGE_KEYS:
        if key in sample:
            image = resize_center_crop(decode_image(sample[key]), resolution)
            return np.asarray(image, dtype=np.uint8)
    raise SkipSample("missing_image", f"no {'/'.join(IMAGE_KEYS)} file")
