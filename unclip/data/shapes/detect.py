"""Read a clean shapes image back into objects, from the pixels alone.

Each connected non-background region is one object. Per pixel, the coverage ``alpha`` of the
object's colour follows from the antialiased value; the coverage sums give the area, the widest
row the width and the tallest column the height, so ``area / (width * height)`` is 1 for a
square, pi/4 for a circle and 1/2 for a triangle. Exact on rendered scenes; a yardstick for
generated ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from .grammar import BACKGROUND, COLORS, SIZES, position_of

_MIN_STRENGTH = 8.0  # max |pixel - background| over channels that counts as "not background"
_MIN_PIXELS = 4
_SIZE_THRESHOLD = (SIZES["small"][1] + SIZES["large"][0]) / 2


@dataclass(frozen=True)
class DetectedObject:
    """An object measured from pixels; duck-compatible with ``ObjectSpec.matches``."""

    shape: str
    color: str
    rgb: tuple[float, float, float]
    half_size: float
    center: tuple[float, float]
    fill_ratio: float  # area / (width * height)

    @property
    def size(self) -> str:
        return "small" if self.half_size < _SIZE_THRESHOLD else "large"

    @property
    def position(self) -> str:
        return position_of(*self.center)


def detect_objects(image: Image.Image | np.ndarray) -> list[DetectedObject]:
    """Objects of a shapes image (RGB, background (30, 30, 30)), ordered by their top-left."""
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    diff = pixels.astype(np.float64) - np.asarray(BACKGROUND, dtype=np.float64)
    strength = np.abs(diff).max(axis=-1)
    labels, count = ndimage.label(strength > _MIN_STRENGTH, structure=np.ones((3, 3)))
    objects = []
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        inside = labels[region] == index
        if inside.sum() < _MIN_PIXELS:
            continue
        objects.append(_measure(diff[region], strength[region], inside, region))
    return sorted(objects, key=lambda o: (o.center[1], o.center[0]))


def _measure(
    diff: np.ndarray, strength: np.ndarray, inside: np.ndarray, region: tuple[slice, slice]
) -> DetectedObject:
    core = inside & (strength >= 0.97 * strength[inside].max())
    colour_diff = diff[core].mean(axis=0)
    rgb = tuple(float(v) for v in colour_diff + np.asarray(BACKGROUND))
    name = min(COLORS, key=lambda c: float(np.sum((np.asarray(COLORS[c]) - rgb) ** 2)))
    alpha = np.clip((diff @ colour_diff) / float(colour_diff @ colour_diff), 0.0, 1.0) * inside
    area = float(alpha.sum())
    width, height = float(alpha.sum(axis=1).max()), float(alpha.sum(axis=0).max())
    fill = area / (width * height)
    shape = "triangle" if fill < 0.64 else "circle" if fill < 0.89 else "square"
    ys, xs = np.mgrid[region[0], region[1]] + 0.5  # pixel centres
    cx, cy = float((alpha * xs).sum() / area), float((alpha * ys).sum() / area)
    if shape == "triangle":  # the centroid lies 2/3 of the height down: move to the bbox centre
        cy -= height / 6
    return DetectedObject(shape, name, rgb, (width + height) / 4, (cx, cy), fill)
