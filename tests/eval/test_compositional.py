"""The benchmark end to end: ceiling on true renders, floor with shuffled prompts, summaries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unclip.eval.compositional import (
    ceiling,
    floor,
    render_prompts,
    score,
    shuffled_prompts,
    summarize,
)
from unclip.eval.prompts import CATEGORIES, build_prompt_set
from unclip.eval.verdict import Verdict

PROMPTS = build_prompt_set(per_category=64, seed=0)


@pytest.fixture(scope="module")
def renders():
    return render_prompts(PROMPTS, seed=0)


def test_ceiling_is_at_least_99_percent_in_every_category():
    result = ceiling(PROMPTS, seed=0)
    assert list(result.per_category) == list(CATEGORIES)
    for category, accuracy in result.per_category.items():
        assert accuracy >= 0.99, (category, [v for v in result.verdicts if not v.passed])
    assert result.mean >= 0.99


def test_floor_with_shuffled_prompts_is_far_lower(renders):
    for within_category in (True, False):
        result = floor(renders, PROMPTS, seed=1, within_category=within_category)
        assert result.mean <= 0.2, result.per_category
        assert all(v.reason for v in result.verdicts if not v.passed)


def test_score_takes_a_tensor_batch_in_the_project_convention(renders):
    subset = slice(0, 40)
    batch = torch.stack(
        [torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in renders[subset]]
    ).float() / 127.5 - 1.0
    from_tensor = score(batch, PROMPTS[subset])
    from_pil = score(renders[subset], PROMPTS[subset])
    assert [v.passed for v in from_tensor.verdicts] == [v.passed for v in from_pil.verdicts]
    assert from_tensor.overall == 1.0
    with pytest.raises(ValueError, match="images but"):
        score(batch[:3], PROMPTS[:4])


def test_renders_are_seeded(renders):
    def same(a, b) -> bool:
        return all(np.array_equal(np.array(x), np.array(y)) for x, y in zip(a, b, strict=True))

    assert same(render_prompts(PROMPTS[:10], seed=0), renders[:10])
    assert not same(render_prompts(PROMPTS[:10], seed=1), renders[:10])


def test_summary_weighs_categories_equally():
    def v(category: str, passed: bool) -> Verdict:
        return Verdict("p", category, passed, "" if passed else "r", ())

    verdicts = [v("size", True)] * 3 + [v("size", False)] + [v("relation", False)] * 4
    result = summarize(verdicts)
    assert result.per_category == {"size": 0.75, "relation": 0.0}
    assert result.mean == pytest.approx(0.375)  # mean over categories
    assert result.overall == pytest.approx(3 / 8)  # mean over images
    data = result.to_json()
    assert data["num_images"] == 8 and len(data["verdicts"]) == 8
    assert "verdicts" not in result.to_json(with_verdicts=False)


def test_shuffled_prompts_is_a_derangement():
    for within_category in (True, False):
        shuffled = shuffled_prompts(PROMPTS, seed=3, within_category=within_category)
        assert sorted(p.text for p in shuffled) == sorted(p.text for p in PROMPTS)
        assert all(a is not b for a, b in zip(shuffled, PROMPTS, strict=True))
        if within_category:
            assert [p.category for p in shuffled] == [p.category for p in PROMPTS]
    with pytest.raises(ValueError, match="at least two"):
        shuffled_prompts(PROMPTS[:1])
