"""Captions: canonical forms, parsing, and every caption true of its image's pixels."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from unclip.data.shapes import (
    CANONICAL_FORMS,
    CAPTION_FORMS,
    COLORS,
    POSITIONS,
    RELATIONS,
    SHAPES,
    ObjectSpec,
    SceneSpec,
    build_caption,
    canonical_captions,
    inverse_relation,
    objects_satisfy,
    pair_caption,
    parse_caption,
    render_scene,
    sample_caption,
    sample_scene,
    single_caption,
)
from unclip.eval.reader import read_objects

SCENES = [sample_scene(seed) for seed in range(5000, 5500)]


def test_canonical_builders_write_the_design_forms() -> None:
    assert single_caption("red", "circle", "large", "in the top left") == (
        "a large red circle in the top left")
    assert single_caption("red", "circle") == "a red circle"
    assert single_caption("orange", "square") == "an orange square"
    assert pair_caption("blue", "square", "yellow", "triangle", "to the left of") == (
        "a blue square to the left of a yellow triangle")
    assert pair_caption("white", "circle", "cyan", "square") == "a white circle and a cyan square"
    assert set(CANONICAL_FORMS) == {"size_color_shape_position", "color_shape", "relation",
                                    "conjunction"}


def _full_spec(rng: random.Random, n: int) -> SceneSpec:
    objects = tuple(ObjectSpec(rng.choice(SHAPES), rng.choice(tuple(COLORS)),
                               rng.choice(("small", "large")), rng.choice(POSITIONS))
                    for _ in range(n))
    return SceneSpec(objects, rng.choice(RELATIONS) if n == 2 else None)


@pytest.mark.parametrize("form", CAPTION_FORMS, ids=lambda f: f.name)
def test_every_form_parses_back_to_itself(form) -> None:
    rng = random.Random(form.name)
    for _ in range(30):
        full = _full_spec(rng, form.num_objects)
        text = build_caption(form.name, full)
        parsed = parse_caption(text)
        assert parsed.form == form.name and parsed.canonical == form.canonical, text
        for said, stated in zip(parsed.spec.objects, full.objects, strict=True):
            for attribute, value in said.to_json().items():
                assert getattr(stated, attribute) == value
        assert parsed.spec.relation == (full.relation if form.needs_relation else None)


def test_parse_is_lenient_about_article_case_and_period() -> None:
    spec = parse_caption("A orange Triangle above an orange circle.").spec
    assert spec == SceneSpec(
        (ObjectSpec("triangle", "orange"), ObjectSpec("circle", "orange")), "above")


@pytest.mark.parametrize("text", ["a red hexagon", "a large red circle somewhere", "red circle",
                                  "a red circle above a blue circle and a green square"])
def test_parse_rejects_captions_outside_the_grammar(text: str) -> None:
    with pytest.raises(ValueError, match="none of the shapes caption forms"):
        parse_caption(text)


def test_caption_distribution_keeps_every_canonical_form() -> None:
    captions = [sample_caption(s, random.Random(i)) for i, s in enumerate(SCENES)]
    forms = Counter(c.form for c in captions)
    assert set(CANONICAL_FORMS) <= set(forms)
    assert {f.name for f in CAPTION_FORMS} == set(forms)
    canonical = sum(forms[f] for f in CANONICAL_FORMS) / len(captions)
    assert 0.5 < canonical < 0.7


def test_every_caption_is_true_of_its_pixels() -> None:
    for i, scene in enumerate(SCENES):
        caption = sample_caption(scene, random.Random(i))
        seen = read_objects(render_scene(scene))
        parsed = parse_caption(caption.text)
        assert objects_satisfy(seen, parsed.spec), (caption.text, seen)
        assert parsed.spec == caption.spec and parsed.form == caption.form


def test_caption_mentions_point_at_the_right_objects() -> None:
    for i, scene in enumerate(SCENES[:200]):
        record = sample_caption(scene, random.Random(i)).to_json()
        for mention in record["mentions"]:
            obj = scene.objects[mention.pop("object")]
            assert all(getattr(obj, k) == v for k, v in mention.items())


def test_canonical_captions_are_true_and_cover_the_kind() -> None:
    for scene in SCENES[:200]:
        captions = canonical_captions(scene)
        expected = ({"size_color_shape_position", "color_shape"} if scene.kind == "single"
                    else {"relation", "conjunction"})
        assert set(captions) == expected
        for text in captions.values():
            assert scene.satisfies(parse_caption(text).spec), text


def test_relation_caption_is_false_of_the_mirrored_scene() -> None:
    scene = next(s for s in SCENES if s.kind == "pair")
    a, b = scene.spec().objects
    wrong = SceneSpec((a, b), inverse_relation(scene.relation))
    assert scene.satisfies(scene.spec()) and not scene.satisfies(wrong)
