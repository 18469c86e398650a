"""Read the objects of a shapes image: colour, shape, size and position of each, analytically.

Why analytic, not a learned detector: GenEval (arXiv 2310.11513) needs Mask2Former and CLIP
because natural images have no known palette or geometry. The shapes grammar (DESIGN.md) fixes
both: a flat background (30, 30, 30), eight known colours, three shapes with known area ratios,
half-sizes in two disjoint ranges, positions and relations defined on bounding-box centres. A
reader built from those definitions needs no training data, cannot share a learned model's
biases with the generator under test, is deterministic, says *why* it rejects an object, and
its ceiling on true renders is measured, not assumed (``unclip.eval.compositional``).

Steps, on a 64 px canvas (other sizes are resampled first: 32 px decoder outputs upsampled,
upsampler outputs area-downsampled):

1. Foreground: pixels farther than ``foreground_threshold`` from the background in RGB.
   Connected components (8-neighbour); components under ``min_area`` pixels are noise.
2. Colour: each pixel is written as ``p = bg + a (c - bg) + r`` for every palette colour ``c``
   (coverage ``a``, residual ``r``): an antialiased or blurred edge pixel is a blend of its
   object and the background, so its colour *line*, not its value, identifies the object. A
   component whose core holds two colours in force (two touching objects) is split by colour.
   The object's colour is the palette colour nearest the median of its core pixels, or
   ``None`` beyond ``color_tolerance``.
3. Coverage: ``a = <p - bg, c_obj - bg> / ||c_obj - bg||^2`` clipped to [0, 1], over the pixels
   within ``ring`` px of the component (and nearer to it than to any other), so soft edges
   count as the fraction of the pixel they cover.
4. Shape and size from coverage moments, chosen to survive blur: a blurred image is the sharp
   one convolved with a symmetric kernel, which leaves the area, the centroid and the third
   cumulant unchanged (cumulants add under convolution, a symmetric kernel's third is 0).
     taper = kappa3_y / (-2^1.5/135 * area^1.5)   vertical skew: triangle (apex up) 1,
             circle and square 0  [triangle of height h: kappa3 = -h^3/135, area = h^2/2]
     fill  = area / (widest row * tallest column):  square 1, circle pi/4
     aspect = sqrt(var_x / var_y):  circle, square 1; triangle sqrt(3)/2
             [triangle: var_x = h^2/24 (tent), var_y = h^2/18]
   A triangle when ``taper`` is nearer 1 than 0; otherwise a square when ``fill`` is nearer 1
   than pi/4, else a circle; ``None`` (unreadable) for a downward taper or an aspect more than
   ``aspect_tolerance`` off its shape's. Half-size from the area: ``sqrt(area / k)`` with
   ``k`` = pi (circle), 4 (square), 2 (triangle: base 2h, height 2h); ``small`` below the
   midpoint of the gap 9 < h < 12 between the size ranges.
5. Centre (of the bounding box, as the grammar defines positions): the coverage centroid for
   the symmetric circle and square; a triangle's centroid lies ``H/6`` below its bounding-box
   centre (at 2/3 of the height ``H = 2h`` from the apex), so ``cy = centroid_y - h/3``.
   Position and relation then follow the grammar's own ``position_of`` / ``relation_between``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from torch import Tensor

from unclip.data.shapes.grammar import (
    BACKGROUND,
    CANVAS_SIZE,
    COLORS,
    SIZES,
    position_of,
)

COLOR_NAMES: tuple[str, ...] = tuple(COLORS)
_PALETTE = np.array([COLORS[c] for c in COLOR_NAMES], dtype=np.float64)  # (K, 3)
_BG = np.array(BACKGROUND, dtype=np.float64)
_DIRECTIONS = _PALETTE - _BG  # colour lines bg -> c

TRIANGLE_KAPPA3 = -(2**1.5) / 135  # kappa3_y / area^1.5 of an apex-up triangle, base = height
SQUARE_FILL_THRESHOLD = (math.pi / 4 + 1.0) / 2  # between circle (pi/4) and square (1)
SHAPE_ASPECT: dict[str, float] = {"circle": 1.0, "square": 1.0, "triangle": math.sqrt(3) / 2}
AREA_PER_HALF_SIZE_SQUARED: dict[str, float] = {"circle": math.pi, "square": 4.0, "triangle": 2.0}
# the size threshold: midpoint between the largest small and the smallest large half-size
SIZE_THRESHOLD = (SIZES["small"][1] + SIZES["large"][0]) / 2


@dataclass(frozen=True)
class ReaderConfig:
    """Thresholds of the reader, in RGB units and pixels of the 64 px canvas."""

    foreground_threshold: float = 60.0  # ||p - bg|| above this is foreground (green is 153 away)
    min_area: int = 20  # components smaller than this are noise (a small triangle has ~72 px)
    color_tolerance: float = 90.0  # farther than this from every palette colour -> colour None
    core_coverage: float = 0.6  # pixels this covered form the core (colour votes, median)
    split_fraction: float = 0.12  # a second colour with this share of the core splits it
    ring: float = 2.0  # px around a component whose partial coverage counts towards it
    aspect_tolerance: float = 1.4  # aspect off by more than this factor -> shape None


DEFAULT_READER_CONFIG = ReaderConfig()


@dataclass(frozen=True)
class DetectedObject:
    """One object read from an image; ``shape``/``color`` are ``None`` when unreadable.

    Has the attributes ``ObjectSpec.matches`` and ``objects_satisfy`` look at
    (shape, color, size, position, center).
    """

    shape: str | None
    color: str | None
    size: str
    position: str
    center: tuple[float, float]
    half_size: float
    area: float
    fill: float
    taper: float
    aspect: float
    rgb: tuple[int, int, int]

    def describe(self) -> str:
        """``large red circle in the top left`` (``?`` for an unreadable attribute)."""
        return f"{self.size} {self.color or '?'} {self.shape or '?'} {self.position}"

    def to_json(self) -> dict:
        return asdict(self)


def to_canvas(image: Image.Image | np.ndarray | Tensor) -> np.ndarray:
    """An image as a float64 ``(64, 64, 3)`` RGB array in [0, 255] on the grammar's canvas.

    Accepts a PIL image, a uint8 ``(H, W, 3)`` array, or a ``(3, H, W)`` tensor: float in
    ``[-1, 1]`` (the project convention) or uint8. Other sizes are resampled to 64 px
    (bilinear up, antialiased down).
    """
    if isinstance(image, Image.Image):
        array = np.asarray(image.convert("RGB"), dtype=np.float64)
        tensor = torch.from_numpy(array).permute(2, 0, 1)
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise TypeError(f"expected a uint8 (H, W, 3) array, got {image.dtype} {image.shape}")
        tensor = torch.from_numpy(image.astype(np.float64)).permute(2, 0, 1)
    elif isinstance(image, Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a (3, H, W) tensor, got shape {tuple(image.shape)}")
        tensor = image.detach().cpu().double()
        tensor = tensor if image.dtype == torch.uint8 else (tensor.clamp(-1, 1) + 1) * 127.5
    else:
        raise TypeError(f"cannot read an image of type {type(image).__name__}")
    if tensor.shape[1:] != (CANVAS_SIZE, CANVAS_SIZE):
        tensor = torch.nn.functional.interpolate(
            tensor[None], size=(CANVAS_SIZE, CANVAS_SIZE), mode="bilinear",
            align_corners=False, antialias=tensor.shape[1] > CANVAS_SIZE,
        )[0]
    return tensor.permute(1, 2, 0).clamp(0, 255).numpy()


def read_objects(
    image: Image.Image | np.ndarray | Tensor, config: ReaderConfig = DEFAULT_READER_CONFIG
) -> list[DetectedObject]:
    """The objects of a shapes image, ordered by centre (left to right, then top to bottom)."""
    rgb = to_canvas(image)
    offset = rgb - _BG  # (H, W, 3)
    distance = np.linalg.norm(offset, axis=-1)
    foreground = distance > config.foreground_threshold
    nearest_color, line_coverage = _pixel_colors(offset, foreground)
    labels, count = ndimage.label(foreground, np.ones((3, 3)))
    masks: list[np.ndarray] = []
    for index in range(1, count + 1):
        component = labels == index
        if component.sum() >= config.min_area:
            masks.extend(_split_by_color(component, nearest_color, line_coverage, config))
    regions = _regions(masks, config.ring)
    objects = [
        _measure(mask, region, rgb, offset, distance, config)
        for mask, region in zip(masks, regions, strict=True)
    ]
    # a colour split can leave a sliver whose coverage is below the noise floor
    return sorted((o for o in objects if o.area >= config.min_area), key=lambda o: o.center)


def read_batch(
    images: Tensor | list, config: ReaderConfig = DEFAULT_READER_CONFIG
) -> list[list[DetectedObject]]:
    """:func:`read_objects` over a ``(B, 3, H, W)`` tensor or a list of images."""
    return [read_objects(image, config) for image in images]


def _pixel_colors(offset: np.ndarray, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of ``where``: the palette colour line nearest to it, and the coverage along it
    (index 0 and coverage 0 elsewhere)."""
    nearest = np.zeros(where.shape, dtype=np.int64)
    coverage = np.zeros(where.shape)
    points = offset[where]  # (N, 3)
    along = points @ _DIRECTIONS.T / (_DIRECTIONS**2).sum(-1)  # (N, K)
    residual = np.linalg.norm(points[:, None, :] - along[..., None] * _DIRECTIONS, axis=-1)
    residual = np.where(along > 0, residual, np.inf)  # distance of p to the line bg -> c_k
    best = residual.argmin(-1)
    nearest[where] = best
    coverage[where] = np.take_along_axis(along, best[:, None], -1)[:, 0]
    return nearest, coverage


def _split_by_color(
    component: np.ndarray,
    nearest_color: np.ndarray,
    line_coverage: np.ndarray,
    config: ReaderConfig,
) -> list[np.ndarray]:
    """The component, or its parts by colour when its core holds two colours in force."""
    core = component & (line_coverage >= config.core_coverage)
    votes = np.bincount(nearest_color[core], minlength=len(COLOR_NAMES))
    enough = max(config.min_area, config.split_fraction * core.sum())
    strong = [k for k in np.argsort(votes)[::-1] if votes[k] >= enough]
    if len(strong) < 2:
        return [component]
    parts = []
    for k in strong:
        labels, count = ndimage.label(component & (nearest_color == k), np.ones((3, 3)))
        parts.extend(
            labels == i for i in range(1, count + 1) if (labels == i).sum() >= config.min_area
        )
    return parts if len(parts) >= 2 else [component]  # colour noise, not two objects


def _regions(masks: list[np.ndarray], ring: float) -> list[np.ndarray]:
    """Each mask grown by ``ring`` px, every pixel going to the nearest mask only."""
    if not masks:
        return []
    owner = np.zeros(masks[0].shape, dtype=np.int64)
    for index, mask in enumerate(masks, start=1):
        owner[mask] = index
    gap, (iy, ix) = ndimage.distance_transform_edt(owner == 0, return_indices=True)
    nearest = owner[iy, ix]
    return [(nearest == index) & (gap <= ring) for index in range(1, len(masks) + 1)]


def _measure(
    mask: np.ndarray,
    region: np.ndarray,
    rgb: np.ndarray,
    offset: np.ndarray,
    distance: np.ndarray,
    config: ReaderConfig,
) -> DetectedObject:
    # colour: median of the most saturated pixels (robust to edges and noise)
    core = mask & (distance >= config.core_coverage * distance[mask].max())
    color_rgb = np.median(rgb[core], axis=0)
    gaps = np.linalg.norm(_PALETTE - color_rgb, axis=-1)
    color = COLOR_NAMES[int(gaps.argmin())] if gaps.min() <= config.color_tolerance else None

    # coverage along the object's own colour line
    direction = color_rgb - _BG
    alpha = np.where(region, np.clip(offset @ direction / (direction @ direction), 0, 1), 0.0)
    rows, cols = alpha.sum(1), alpha.sum(0)  # width of each row, height of each column
    area = float(alpha.sum())
    pixel_centres = np.arange(CANVAS_SIZE) + 0.5  # pixel i covers [i, i + 1)
    mean_x = float((cols * pixel_centres).sum() / area)
    mean_y = float((rows * pixel_centres).sum() / area)
    # + 1/12: each pixel's mass spreads over its unit square (and a 1 px line has a width)
    var_x = float((cols * (pixel_centres - mean_x) ** 2).sum() / area) + 1 / 12
    var_y = float((rows * (pixel_centres - mean_y) ** 2).sum() / area) + 1 / 12
    kappa3_y = float((rows * (pixel_centres - mean_y) ** 3).sum() / area)

    taper = kappa3_y / (TRIANGLE_KAPPA3 * area**1.5)
    fill = area / float(rows.max() * cols.max())
    aspect = math.sqrt(var_x / var_y)
    if taper >= 0.5:
        shape = "triangle"
    else:
        shape = "square" if fill >= SQUARE_FILL_THRESHOLD else "circle"
    half_size = math.sqrt(area / AREA_PER_HALF_SIZE_SQUARED[shape])
    off_aspect = max(aspect / SHAPE_ASPECT[shape], SHAPE_ASPECT[shape] / aspect)
    if taper <= -0.5 or off_aspect > config.aspect_tolerance:
        readable_shape = None
    else:
        readable_shape = shape

    # bounding-box centre: a triangle's centroid is a third of its half-size below it
    cy = mean_y - half_size / 3 if shape == "triangle" else mean_y
    return DetectedObject(
        shape=readable_shape,
        color=color,
        size="small" if half_size < SIZE_THRESHOLD else "large",
        position=position_of(mean_x, cy),
        center=(mean_x, cy),
        half_size=half_size,
        area=area,
        fill=fill,
        taper=taper,
        aspect=aspect,
        rgb=tuple(int(round(c)) for c in color_rgb),
    )
