"""The shapes grammar: canvas, palette, sizes, 3x3 positions and relations (DESIGN.md).

Everything here is plain Python so the evaluation and the CLIP zero-shot checks can import it
without torch. Coordinates are pixels on the 64 px canvas, x to the right, y down; a bounding box
``(x0, y0, x1, y1)`` covers ``[x0, x1) x [y0, y1)``.
"""

from __future__ import annotations

CANVAS_SIZE = 64
SUPERSAMPLE = 4  # drawn at 4x and box-filtered down: exact area antialiasing
BACKGROUND = (30, 30, 30)

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 230),
    "yellow": (235, 215, 40),
    "purple": (150, 70, 200),
    "orange": (245, 140, 30),
    "white": (235, 235, 235),
    "cyan": (40, 200, 210),
}
COLOR_JITTER = 10  # each channel of an object's colour is jittered by at most this much

# half the bounding-box side, in px on the 64 px canvas, inclusive ranges
SIZES: dict[str, tuple[float, float]] = {"small": (6.0, 9.0), "large": (12.0, 16.0)}

# 3x3 cells of the bounding-box centre, row-major (top row first, left column first)
POSITIONS: tuple[str, ...] = (
    "in the top left",
    "at the top",
    "in the top right",
    "on the left",
    "in the center",
    "on the right",
    "in the bottom left",
    "at the bottom",
    "in the bottom right",
)

# relation of the first-mentioned object to the second
RELATIONS: tuple[str, ...] = ("to the left of", "to the right of", "above", "below")

MIN_GAP = 3.0  # two objects' bounding boxes are at least this far apart on some axis
MIN_RELATION_OFFSET = 10.0  # a relation needs centres this far apart on its axis

# Generation margins (choices of the sampler, not of the grammar): they keep every label
# unambiguous to the eye, so the ground truth can be checked from the pixels alone.
CANVAS_MARGIN = 1.0  # bounding boxes stay this far inside the canvas
CELL_MARGIN = 1.0  # centres stay this far from the lines between the 3x3 cells
AXIS_MARGIN = 2.0  # in two-object scenes, | |dx| - |dy| | >= this: the relation axis is clear
GRID = 1.0 / SUPERSAMPLE  # centres and half-sizes lie on the supersampled pixel grid


def position_of(cx: float, cy: float) -> str:
    """Position phrase of the 3x3 cell that contains the point ``(cx, cy)``."""
    third = CANVAS_SIZE / 3
    col = min(max(int(cx // third), 0), 2)
    row = min(max(int(cy // third), 0), 2)
    return POSITIONS[3 * row + col]


def relation_between(a: tuple[float, float], b: tuple[float, float]) -> str | None:
    """Relation of centre ``a`` to centre ``b``, or None when they are closer than the threshold.

    The axis is the one where the centres differ most (ties go to the horizontal axis).
    """
    dx, dy = a[0] - b[0], a[1] - b[1]
    if abs(dx) >= abs(dy):
        if abs(dx) < MIN_RELATION_OFFSET:
            return None
        return "to the left of" if dx < 0 else "to the right of"
    if abs(dy) < MIN_RELATION_OFFSET:
        return None
    return "above" if dy < 0 else "below"


def inverse_relation(relation: str) -> str:
    """The relation of the second object to the first: ``above`` <-> ``below`` and so on."""
    inverse = {
        "to the left of": "to the right of",
        "to the right of": "to the left of",
        "above": "below",
        "below": "above",
    }
    if relation not in inverse:
        raise ValueError(f"unknown relation {relation!r}; expected one of {RELATIONS}")
    return inverse[relation]


def size_word(half_size: float) -> str:
    """Size word of a half-size in px; raises for half-sizes outside every size range."""
    for word, (lo, hi) in SIZES.items():
        if lo <= half_size <= hi:
            return word
    raise ValueError(f"half-size {half_size} px is in no size range {SIZES}")
