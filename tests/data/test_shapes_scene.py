"""Scenes: determinism, disjoint split seeds, layout rules, sampling under a spec."""

from __future__ import annotations

from collections import Counter

import pytest

from unclip.data.shapes import (
    CANVAS_SIZE,
    COLORS,
    MIN_GAP,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    ObjectSpec,
    Scene,
    SceneSpec,
    ShapeObject,
    encode_png,
    position_of,
    relation_between,
    render_scene,
    sample_scene,
    sample_seed,
)
from unclip.data.shapes.grammar import CANVAS_MARGIN, COLOR_JITTER
from unclip.data.shapes.scene import bbox_gap

SCENES = [sample_scene(seed) for seed in range(600)]


def test_same_seed_same_scene_and_pixels() -> None:
    for seed in (0, 7, 2**40 + 3):
        a, b = sample_scene(seed), sample_scene(seed)
        assert a == b
        assert encode_png(render_scene(a)) == encode_png(render_scene(b))


def test_different_seeds_give_different_scenes() -> None:
    layouts = {tuple(o.to_json()["bbox"][0] for o in s.objects) + (s.objects[0].shape,)
               for s in SCENES[:100]}
    assert len(layouts) > 90


def test_split_seeds_are_disjoint_and_injective() -> None:
    seeds = {
        (base, split): {sample_seed(base, split, i) for i in range(2000)}
        for base in (0, 1)
        for split in ("train", "val", "test")
    }
    everything = set().union(*seeds.values())
    assert len(everything) == sum(len(s) for s in seeds.values()) == 6 * 2000
    with pytest.raises(ValueError, match="split"):
        sample_seed(0, "holdout", 0)
    with pytest.raises(ValueError, match="index"):
        sample_seed(0, "train", -1)


def test_objects_stay_inside_apart_and_in_range() -> None:
    for scene in SCENES:
        assert len(scene.objects) in (1, 2)
        for obj in scene.objects:
            x0, y0, x1, y1 = obj.bbox
            assert min(x0, y0) >= CANVAS_MARGIN and max(x1, y1) <= CANVAS_SIZE - CANVAS_MARGIN
            lo, hi = SIZES[obj.size]
            assert lo <= obj.half_size <= hi
            palette = COLORS[obj.color]
            assert all(abs(c - p) <= COLOR_JITTER for c, p in zip(obj.rgb, palette, strict=True))
        if len(scene.objects) == 2:
            assert bbox_gap(*scene.objects) >= MIN_GAP
            a, b = scene.objects
            assert (a.shape, a.color) != (b.shape, b.color)


def test_every_value_of_the_grammar_occurs() -> None:
    objects = [o for s in SCENES for o in s.objects]
    assert {o.shape for o in objects} == set(SHAPES)
    assert {o.color for o in objects} == set(COLORS)
    assert {o.size for o in objects} == set(SIZES)
    assert {o.position for o in objects} == set(POSITIONS)
    assert {s.relation for s in SCENES if s.kind == "pair"} == set(RELATIONS)
    kinds = Counter(s.kind for s in SCENES)
    assert 0.4 < kinds["single"] / len(SCENES) < 0.6
    singles = Counter(s.objects[0].position for s in SCENES if s.kind == "single")
    assert min(singles.values()) > 0.4 * len(SCENES) / 2 / 9  # single positions near uniform


def test_position_and_relation_rules() -> None:
    assert position_of(5, 5) == "in the top left"
    assert position_of(32, 5) == "at the top"
    assert position_of(32, 32) == "in the center"
    assert position_of(60, 60) == "in the bottom right"
    assert position_of(5, 40) == "on the left"
    assert relation_between((10, 30), (40, 35)) == "to the left of"
    assert relation_between((40, 30), (10, 25)) == "to the right of"
    assert relation_between((30, 10), (35, 40)) == "above"
    assert relation_between((30, 50), (25, 20)) == "below"
    assert relation_between((30, 30), (36, 34)) is None  # closer than 10 px on both axes
    assert relation_between((10, 10), (30, 30)) == "to the left of"  # tie -> horizontal


def test_scene_refuses_overlap_and_leaving_the_canvas() -> None:
    a = ShapeObject("circle", "red", (220, 40, 40), 8.0, (20.0, 20.0))
    touching = ShapeObject("square", "blue", (50, 90, 230), 8.0, (37.0, 20.0))  # 1 px gap
    with pytest.raises(ValueError, match="closer"):
        Scene((a, touching))
    with pytest.raises(ValueError, match="canvas"):
        Scene((ShapeObject("circle", "red", (220, 40, 40), 8.0, (4.0, 30.0)),))
    with pytest.raises(ValueError, match="size range"):
        ShapeObject("circle", "red", (220, 40, 40), 10.5, (30.0, 30.0))
    with pytest.raises(ValueError, match="shape"):
        ShapeObject("hexagon", "red", (220, 40, 40), 8.0, (30.0, 30.0))


@pytest.mark.parametrize("relation", RELATIONS)
@pytest.mark.parametrize("size", ["small", "large"])
def test_sample_scene_satisfies_a_spec(relation: str, size: str) -> None:
    spec = SceneSpec(
        (ObjectSpec("triangle", "orange", size), ObjectSpec("circle", "cyan", size)), relation
    )
    for seed in range(5):
        scene = sample_scene(seed, spec)
        assert scene.satisfies(spec)
        assert scene == sample_scene(seed, spec)


def test_sample_scene_satisfies_a_position_spec() -> None:
    for position in POSITIONS:
        spec = SceneSpec((ObjectSpec("square", "white", "large", position),))
        assert sample_scene(3, spec).satisfies(spec)


def test_json_round_trip() -> None:
    for scene in SCENES[:50]:
        assert Scene.from_json(scene.to_json()) == scene
    with pytest.raises(ValueError, match="objects"):
        Scene.from_json({"seed": 1})
