"""The benchmark prompt set: fixed by its seed, in the grammar, one skill per category."""

from __future__ import annotations

from collections import Counter

import pytest

from unclip.data.shapes import parse_caption
from unclip.eval.prompts import CATEGORIES, build_prompt_set, category_prompts


def test_prompt_set_is_fixed_by_its_seed():
    assert build_prompt_set(seed=3) == build_prompt_set(seed=3)
    assert build_prompt_set(seed=3) != build_prompt_set(seed=4)


def test_counts_per_category():
    counts = Counter(p.category for p in build_prompt_set(per_category=64))
    # 24 colour x shape, 48 size x colour x shape exist; the others have more than 64
    assert counts == {
        "single_object": 24, "size": 48, "position": 64,
        "two_objects": 64, "relation": 64, "color_attribution": 64,
    }
    assert list(counts) == list(CATEGORIES)


def test_every_prompt_parses_back_to_its_spec():
    for prompt in build_prompt_set(per_category=64, seed=1):
        assert parse_caption(prompt.text).spec == prompt.spec, prompt.text


def test_prompts_within_a_category_are_distinct_statements():
    for category in CATEGORIES:
        prompts = [p for p in build_prompt_set(per_category=200) if p.category == category]
        statements = set()
        for p in prompts:
            objects = frozenset(p.spec.objects)
            statements.add((objects, p.spec.relation, p.spec.objects[0]))
        assert len(statements) == len(prompts), category
        assert len({p.text for p in prompts}) == len(prompts)


def test_category_constraints():
    prompts = build_prompt_set(per_category=200, seed=2)
    for p in prompts:
        objects = p.spec.objects
        assert len(objects) == (1 if p.category in ("single_object", "size", "position") else 2)
        assert (p.spec.relation is not None) == (p.category == "relation")
        if p.category == "size":
            assert objects[0].size and not objects[0].position
        if p.category == "position":
            assert objects[0].position and not objects[0].size
        if p.category in ("two_objects", "color_attribution"):
            assert objects[0].shape != objects[1].shape
        if p.category == "color_attribution":
            assert objects[0].color != objects[1].color
        if len(objects) == 2:  # mentions are identifiable
            assert (objects[0].color, objects[0].shape) != (objects[1].color, objects[1].shape)
    # two_objects lets both colours coincide, colour attribution never
    assert any(
        p.spec.objects[0].color == p.spec.objects[1].color
        for p in prompts if p.category == "two_objects"
    )


def test_both_mention_orders_and_all_relations_occur():
    relation = [p for p in build_prompt_set(per_category=200) if p.category == "relation"]
    assert {p.spec.relation for p in relation} == {
        "to the left of", "to the right of", "above", "below"
    }


def test_unknown_category_and_bad_count_are_refused():
    import random

    with pytest.raises(ValueError, match="unknown category"):
        category_prompts("counting", 3, random.Random(0))
    with pytest.raises(ValueError, match="per_category"):
        build_prompt_set(per_category=0)
