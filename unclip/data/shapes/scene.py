"""Scenes of the shapes dataset: the objects, their ground truth, and sampling one from a seed."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .grammar import (
    AXIS_MARGIN,
    BACKGROUND,
    CANVAS_MARGIN,
    CANVAS_SIZE,
    CELL_MARGIN,
    COLOR_JITTER,
    COLORS,
    GRID,
    MIN_GAP,
    POSITIONS,
    SHAPES,
    SIZES,
    position_of,
    relation_between,
    size_word,
)
from .spec import ObjectSpec, SceneSpec, objects_satisfy

SPLITS: tuple[str, ...] = ("train", "val", "test")
_INDEX_BITS = 32
_PLACEMENT_TRIES = 50
_SCENE_TRIES = 200


@dataclass(frozen=True)
class ShapeObject:
    """One object: its shape, colour (name and jittered RGB), half-size and bounding-box centre."""

    shape: str
    color: str
    rgb: tuple[int, int, int]
    half_size: float
    center: tuple[float, float]

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; expected one of {SHAPES}")
        if self.color not in COLORS:
            raise ValueError(f"unknown color {self.color!r}; expected one of {tuple(COLORS)}")
        if len(self.rgb) != 3 or not all(0 <= c <= 255 for c in self.rgb):
            raise ValueError(f"rgb must be three values in 0..255, got {self.rgb}")
        size_word(self.half_size)  # raises for a half-size outside the size ranges

    @property
    def size(self) -> str:
        return size_word(self.half_size)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        (cx, cy), h = self.center, self.half_size
        return (cx - h, cy - h, cx + h, cy + h)

    @property
    def position(self) -> str:
        return position_of(*self.center)

    def to_json(self) -> dict:
        return {
            "shape": self.shape,
            "color": self.color,
            "rgb": list(self.rgb),
            "size": self.size,
            "half_size": self.half_size,
            "bbox": list(self.bbox),
            "center": list(self.center),
            "position": self.position,
        }

    @classmethod
    def from_json(cls, data: dict) -> ShapeObject:
        return cls(
            shape=data["shape"],
            color=data["color"],
            rgb=tuple(int(c) for c in data["rgb"]),
            half_size=float(data["half_size"]),
            center=(float(data["center"][0]), float(data["center"][1])),
        )


def bbox_gap(a: ShapeObject, b: ShapeObject) -> float:
    """Largest per-axis distance between two bounding boxes (negative when they overlap)."""
    ax0, ay0, ax1, ay1 = a.bbox
    bx0, by0, bx1, by1 = b.bbox
    return max(bx0 - ax1, ax0 - bx1, by0 - ay1, ay0 - by1)


@dataclass(frozen=True)
class Scene:
    """One or two objects on the canvas; construction enforces the grammar's layout rules."""

    objects: tuple[ShapeObject, ...]
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(self.objects))
        if len(self.objects) not in (1, 2):
            raise ValueError(f"a scene has 1 or 2 objects, not {len(self.objects)}")
        for obj in self.objects:
            x0, y0, x1, y1 = obj.bbox
            if x0 < 0 or y0 < 0 or x1 > CANVAS_SIZE or y1 > CANVAS_SIZE:
                raise ValueError(f"{obj.shape} with bbox {obj.bbox} leaves the canvas")
        if len(self.objects) == 2 and bbox_gap(*self.objects) < MIN_GAP:
            raise ValueError(f"objects are closer than {MIN_GAP} px: {self.objects}")

    @property
    def kind(self) -> str:
        """``"single"`` or ``"pair"``."""
        return "single" if len(self.objects) == 1 else "pair"

    @property
    def relation(self) -> str | None:
        """Relation of the first object to the second (None for single-object scenes)."""
        if len(self.objects) != 2:
            return None
        return relation_between(self.objects[0].center, self.objects[1].center)

    def spec(self) -> SceneSpec:
        """Every attribute of the scene as a spec (the strongest true statement)."""
        objects = tuple(
            ObjectSpec(o.shape, o.color, o.size, o.position) for o in self.objects
        )
        return SceneSpec(objects, self.relation)

    def satisfies(self, spec: SceneSpec) -> bool:
        """Whether the scene has exactly the spec's objects (in some order) and its relation."""
        return objects_satisfy(self.objects, spec)

    def to_json(self) -> dict:
        relation = self.relation
        return {
            "seed": self.seed,
            "canvas": CANVAS_SIZE,
            "background": list(BACKGROUND),
            "objects": [o.to_json() for o in self.objects],
            "relation": None
            if relation is None
            else {"subject": 0, "object": 1, "relation": relation},
        }

    @classmethod
    def from_json(cls, data: dict) -> Scene:
        """Rebuild a scene from its ``.json`` ground truth (extra keys are ignored)."""
        try:
            objects = tuple(ShapeObject.from_json(o) for o in data["objects"])
        except (KeyError, TypeError, IndexError) as err:
            raise ValueError(f"not a shapes ground-truth record: missing {err}") from err
        return cls(objects, data.get("seed"))


def sample_seed(base_seed: int, split: str, index: int) -> int:
    """Seed of sample ``index`` of ``split``: injective in (base seed, split, index), so the
    splits of one base seed never share a seed."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if not 0 <= index < 2**_INDEX_BITS:
        raise ValueError(f"index {index} out of range [0, 2**{_INDEX_BITS})")
    if base_seed < 0:
        raise ValueError(f"base seed must be >= 0, got {base_seed}")
    return ((base_seed * len(SPLITS) + SPLITS.index(split)) << _INDEX_BITS) | index


def sample_scene(seed: int, spec: SceneSpec | None = None) -> Scene:
    """A random scene from ``seed``; with ``spec``, a random scene satisfying it (the attributes
    the spec leaves out are random). Deterministic in ``(seed, spec)``."""
    rng = random.Random(seed)
    if spec is None:  # drawn once, so rejected layouts do not bias the object count
        spec = SceneSpec((ObjectSpec(),) * rng.choice((1, 2)))
        constrained = False
    else:
        constrained = True
    for _ in range(_SCENE_TRIES):
        scene = _try_scene(rng, spec, constrained, seed)
        if scene is not None:
            return scene
    raise ValueError(f"no layout satisfies {spec} (tried {_SCENE_TRIES} scenes)")


def _try_scene(
    rng: random.Random, spec: SceneSpec, constrained: bool, seed: int
) -> Scene | None:
    specs = spec.objects
    drawn = []
    for s in specs:
        shape = s.shape or rng.choice(SHAPES)
        color = s.color or rng.choice(tuple(COLORS))
        size = s.size or rng.choice(tuple(SIZES))
        rgb = tuple(min(255, max(0, c + rng.randint(-COLOR_JITTER, COLOR_JITTER)))
                    for c in COLORS[color])
        drawn.append((shape, color, rgb, _grid_uniform(rng, *SIZES[size])))
    if not constrained and len(drawn) == 2 and drawn[0][:2] == drawn[1][:2]:
        return None  # random pairs differ in colour or shape, so mentions are unambiguous
    for _ in range(_PLACEMENT_TRIES):
        objects = tuple(
            ShapeObject(shape, color, rgb, half, _sample_center(rng, half, s.position))
            for (shape, color, rgb, half), s in zip(drawn, specs, strict=True)
        )
        if len(objects) == 1:
            return Scene(objects, seed)
        a, b = objects
        dx, dy = abs(a.center[0] - b.center[0]), abs(a.center[1] - b.center[1])
        if bbox_gap(a, b) < MIN_GAP or abs(dx - dy) < AXIS_MARGIN:
            continue
        if spec.relation is not None and relation_between(a.center, b.center) != spec.relation:
            continue
        return Scene(objects, seed)
    return None


def _grid_uniform(rng: random.Random, lo: float, hi: float) -> float:
    """Uniform over the supersampled grid points in ``[lo, hi]``."""
    k_lo, k_hi = math.ceil(lo / GRID), math.floor(hi / GRID)
    if k_lo > k_hi:
        raise ValueError(f"no grid point in [{lo}, {hi}]")
    return rng.randint(k_lo, k_hi) * GRID


def _sample_center(rng: random.Random, half: float, position: str | None) -> tuple[float, float]:
    """A centre in the given 3x3 cell (random cell when None), inside the canvas margins and
    away from the cell lines."""
    cell = POSITIONS.index(position) if position is not None else rng.randrange(len(POSITIONS))
    row, col = divmod(cell, 3)
    third = CANVAS_SIZE / 3
    coords = []
    for index in (col, row):
        lo = max(half + CANVAS_MARGIN, index * third + CELL_MARGIN)
        hi = min(CANVAS_SIZE - half - CANVAS_MARGIN, (index + 1) * third - CELL_MARGIN)
        coords.append(_grid_uniform(rng, lo, hi))
    return (coords[0], coords[1])
