"""The compositional benchmark's prompt set: fixed, seeded, written in the shapes grammar.

Six categories in the manner of GenEval (arXiv 2310.11513), each testing one skill; every prompt
carries the structured ``SceneSpec`` it states, so judging needs no text parsing:

=================  ==============================================  ============================
category           caption form (``unclip.data.shapes.captions``)  what must be right
=================  ==============================================  ============================
single_object      ``a {color} {shape}``                           one object, colour, shape
size               ``a {size} {color} {shape}``                    + size
position           ``a {color} {shape} {position}``                + 3x3 cell
two_objects        ``a {color} {shape} and a {color} {shape}``     both present (two shapes)
relation           ``a {color} {shape} {relation} a {color} {shape}``  both, and the relation
color_attribution  ``a {color} {shape} and a {color} {shape}``     colours bound, not swapped
=================  ==============================================  ============================

``two_objects`` names two different shapes with independent colours (possibly equal);
``color_attribution`` names two different shapes in two different colours, so a model that
binds colours to the wrong shapes fails it. ``size`` and ``position`` use the grammar's partial
forms so that each category isolates its attribute; all six forms are in the training captions.
Mentions of one prompt always differ in colour or shape, so objects are identifiable.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from unclip.data.shapes.captions import build_caption
from unclip.data.shapes.grammar import (
    COLORS,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    inverse_relation,
)
from unclip.data.shapes.spec import ObjectSpec, SceneSpec

CATEGORIES: tuple[str, ...] = (
    "single_object",
    "size",
    "position",
    "two_objects",
    "relation",
    "color_attribution",
)


@dataclass(frozen=True)
class BenchmarkPrompt:
    """A prompt, its category, and the scene spec it states (mention order = text order)."""

    text: str
    category: str
    spec: SceneSpec

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "category": self.category,
            "objects": [o.to_json() for o in self.spec.objects],
            "relation": self.spec.relation,
        }


def _single_object() -> Iterator[tuple[str, SceneSpec]]:
    for color, shape in itertools.product(COLORS, SHAPES):
        yield "color_shape", SceneSpec((ObjectSpec(shape, color),))


def _size() -> Iterator[tuple[str, SceneSpec]]:
    for size, color, shape in itertools.product(SIZES, COLORS, SHAPES):
        yield "size_color_shape", SceneSpec((ObjectSpec(shape, color, size),))


def _position() -> Iterator[tuple[str, SceneSpec]]:
    for position, color, shape in itertools.product(POSITIONS, COLORS, SHAPES):
        yield "color_shape_position", SceneSpec((ObjectSpec(shape, color, position=position),))


def _pairs(distinct_colors: bool) -> Iterator[tuple[str, SceneSpec]]:
    for shape_a, shape_b in itertools.combinations(SHAPES, 2):  # unordered: no mirrored duplicate
        for color_a, color_b in itertools.product(COLORS, repeat=2):
            if distinct_colors and color_a == color_b:
                continue
            pair = (ObjectSpec(shape_a, color_a), ObjectSpec(shape_b, color_b))
            yield "conjunction", SceneSpec(pair)


def _relation() -> Iterator[tuple[str, SceneSpec]]:
    objects = [ObjectSpec(s, c) for c, s in itertools.product(COLORS, SHAPES)]
    for a, b in itertools.combinations(objects, 2):  # "a R b" and "b R^-1 a" are one statement
        for relation in RELATIONS:
            yield "relation", SceneSpec((a, b), relation)


_GENERATORS: dict[str, Callable[[], Iterator[tuple[str, SceneSpec]]]] = {
    "single_object": _single_object,
    "size": _size,
    "position": _position,
    "two_objects": lambda: _pairs(distinct_colors=False),
    "relation": _relation,
    "color_attribution": lambda: _pairs(distinct_colors=True),
}


def category_prompts(category: str, count: int, rng: random.Random) -> list[BenchmarkPrompt]:
    """``count`` distinct prompts of a category drawn without replacement (all of them when the
    category has fewer), with mention order and pair order randomised by ``rng``."""
    if category not in _GENERATORS:
        raise ValueError(f"unknown category {category!r}; expected one of {CATEGORIES}")
    pool = list(_GENERATORS[category]())
    chosen = rng.sample(pool, min(count, len(pool)))
    prompts = []
    for form, spec in chosen:
        if len(spec.objects) == 2 and rng.random() < 0.5:  # either object may come first
            a, b = spec.objects
            relation = None if spec.relation is None else inverse_relation(spec.relation)
            spec = SceneSpec((b, a), relation)
        prompts.append(BenchmarkPrompt(build_caption(form, spec), category, spec))
    return prompts


def build_prompt_set(per_category: int = 64, seed: int = 0) -> list[BenchmarkPrompt]:
    """The benchmark: up to ``per_category`` distinct prompts of each category, deterministic in
    ``seed``. ``single_object`` has 24 possible prompts and ``size`` 48, so at the default
    they are exhaustive."""
    if per_category < 1:
        raise ValueError(f"per_category must be >= 1, got {per_category}")
    rng = random.Random(seed)
    return [p for category in CATEGORIES for p in category_prompts(category, per_category, rng)]

