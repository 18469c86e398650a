"""Verdicts on real renders with deliberate errors: each error is caught and named."""

from __future__ import annotations

import dataclasses
import random

import pytest

from unclip.data.shapes import (
    COLORS,
    POSITIONS,
    SHAPES,
    Scene,
    ShapeObject,
    inverse_relation,
    position_of,
    render_scene,
    sample_scene,
)
from unclip.eval.prompts import build_prompt_set
from unclip.eval.reader import read_objects
from unclip.eval.verdict import judge

PROMPTS = build_prompt_set(per_category=24, seed=5)
SINGLE = [p for p in PROMPTS if len(p.spec.objects) == 1]
PAIRS = [p for p in PROMPTS if len(p.spec.objects) == 2]
RELATIONS = [p for p in PROMPTS if p.spec.relation is not None]


def true_scene(prompt, index: int) -> Scene:
    return sample_scene(7_000 + index, prompt.spec)


def verdict_of(scene: Scene, prompt):
    return judge(read_objects(render_scene(scene)), prompt.spec, prompt.text, prompt.category)


def recolor(obj: ShapeObject, color: str) -> ShapeObject:
    return dataclasses.replace(obj, color=color, rgb=COLORS[color])


def mention_index(scene: Scene, prompt, mention: int) -> int:
    """Which scene object the prompt's ``mention`` refers to (mentions differ in colour/shape)."""
    spec = prompt.spec.objects[mention]
    wanted = (spec.color, spec.shape)
    return next(i for i, o in enumerate(scene.objects) if (o.color, o.shape) == wanted)


def test_true_renders_pass_with_empty_reason():
    for index, prompt in enumerate(PROMPTS):
        verdict = verdict_of(true_scene(prompt, index), prompt)
        assert verdict.passed and verdict.reason == "", (prompt.text, verdict.reason)


def test_wrong_colour_is_caught():
    rng = random.Random(0)
    for index, prompt in enumerate(SINGLE):
        scene = true_scene(prompt, index)
        (obj,) = scene.objects
        wrong = rng.choice([c for c in COLORS if c != obj.color])
        verdict = verdict_of(Scene((recolor(obj, wrong),)), prompt)
        assert not verdict.passed
        assert f"color: want {obj.color}, got {wrong}" in verdict.reason, verdict.reason


def test_wrong_shape_is_caught():
    rng = random.Random(1)
    for index, prompt in enumerate(SINGLE):
        (obj,) = true_scene(prompt, index).objects
        wrong = rng.choice([s for s in SHAPES if s != obj.shape])
        verdict = verdict_of(Scene((dataclasses.replace(obj, shape=wrong),)), prompt)
        assert not verdict.passed
        assert f"shape: want {obj.shape}, got {wrong}" in verdict.reason, verdict.reason


def test_wrong_position_is_caught():
    third = 64 / 3
    checked = 0
    for index, prompt in enumerate(p for p in SINGLE if p.spec.objects[0].position):
        (obj,) = true_scene(prompt, index).objects
        cell = POSITIONS.index(obj.position)
        target = POSITIONS[(cell + 4) % 9]  # another cell
        row, col = divmod(POSITIONS.index(target), 3)
        center = ((col + 0.5) * third, (row + 0.5) * third)
        moved = dataclasses.replace(obj, center=center, half_size=min(obj.half_size, 9.0))
        assert position_of(*center) == target
        verdict = verdict_of(Scene((moved,)), prompt)
        assert not verdict.passed
        assert f"position: want {obj.position}, got {target}" in verdict.reason, verdict.reason
        checked += 1
    assert checked >= 10


def test_wrong_size_is_caught():
    checked = 0
    for index, prompt in enumerate(p for p in SINGLE if p.spec.objects[0].size):
        (obj,) = true_scene(prompt, index).objects
        half = 7.0 if obj.size == "large" else 14.0
        resized = dataclasses.replace(obj, center=(32.0, 32.0), half_size=half)
        verdict = verdict_of(Scene((resized,)), prompt)
        assert not verdict.passed
        assert f"size: want {obj.size}, got {resized.size}" in verdict.reason, verdict.reason
        checked += 1
    assert checked >= 10


def test_swapped_relation_is_caught():
    checked = 0
    for index, prompt in enumerate(RELATIONS):
        a, b = true_scene(prompt, index).objects
        try:  # the objects trade places; a layout the grammar forbids is skipped
            swapped = Scene(
                (dataclasses.replace(a, center=b.center), dataclasses.replace(b, center=a.center))
            )
        except ValueError:
            continue
        verdict = verdict_of(swapped, prompt)
        assert not verdict.passed
        want, got = prompt.spec.relation, inverse_relation(prompt.spec.relation)
        assert f"relation: want {want}, got {got}" in verdict.reason, verdict.reason
        checked += 1
    assert checked >= 10


def test_swapped_colours_are_named_as_such():
    prompts = [p for p in PAIRS if p.category == "color_attribution"]
    for index, prompt in enumerate(prompts):
        a, b = true_scene(prompt, index).objects
        swapped = Scene((recolor(a, b.color), recolor(b, a.color)))
        verdict = verdict_of(swapped, prompt)
        assert not verdict.passed and verdict.reason.startswith("colours swapped"), verdict.reason


def test_missing_and_extra_objects_are_counted():
    for index, prompt in enumerate(PAIRS[:10]):
        scene = true_scene(prompt, index)
        kept = scene.objects[mention_index(scene, prompt, 0)]
        verdict = verdict_of(Scene((kept,)), prompt)
        assert not verdict.passed and verdict.reason.startswith("want 2 object(s), found 1")
    for index, prompt in enumerate(SINGLE[:10]):
        pair_prompt = PAIRS[index]
        verdict = verdict_of(true_scene(pair_prompt, index), prompt)
        assert not verdict.passed and verdict.reason.startswith("want 1 object(s), found 2")


def test_unreadable_colour_is_reported():
    prompt = next(p for p in SINGLE if p.category == "single_object")
    (obj,) = true_scene(prompt, 0).objects
    olive = dataclasses.replace(obj, rgb=(110, 120, 30))
    verdict = verdict_of(Scene((olive,)), prompt)
    assert not verdict.passed and "got unreadable" in verdict.reason


@pytest.mark.parametrize("category", ["two_objects", "relation", "color_attribution"])
def test_pair_order_in_the_image_does_not_matter(category):
    prompt = next(p for p in PAIRS if p.category == category)
    scene = true_scene(prompt, 3)
    reversed_scene = Scene(scene.objects[::-1])
    assert verdict_of(reversed_scene, prompt).passed
