"""Hard-negative captions (spatial phrases, colour swaps) and their loss (NegCLIP)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unclip.clip.hard_negatives import (
    batch_alternatives,
    batch_color_swaps,
    color_swap,
    hard_negative_loss,
    spatial_alternatives,
)
from unclip.data.shapes import POSITIONS, RELATIONS
from unclip.lit.clip import CLIPModule


def test_relation_is_replaced_by_the_other_relations() -> None:
    caption = "a red circle to the left of a blue square"
    out = spatial_alternatives(caption, 3, torch.Generator().manual_seed(0))
    assert sorted(out) == sorted(
        f"a red circle {r} a blue square" for r in RELATIONS if r != "to the left of")


@pytest.mark.parametrize("caption,phrase", [
    ("a large red circle in the top left", "in the top left"),
    ("in the center, a small blue square", "in the center"),
    ("a triangle at the bottom", "at the bottom"),
])
def test_position_is_replaced_by_other_positions(caption: str, phrase: str) -> None:
    out = spatial_alternatives(caption, 8)
    assert len(set(out)) == 8 and caption not in out
    assert sorted(out) == sorted(caption.replace(phrase, p) for p in POSITIONS if p != phrase)


@pytest.mark.parametrize("caption", ["a red circle", "a red circle and a blue square",
                                     "a circle on the left to the left of a square", ""])
def test_no_or_ambiguous_phrase_gives_none(caption: str) -> None:
    assert spatial_alternatives(caption, 2) is None


def test_k_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="k must be in"):
        spatial_alternatives("a red circle above a blue square", 4)


def test_batch_alternatives_rows_and_order() -> None:
    rows, texts = batch_alternatives(["a red circle", "a blue square below a red circle",
                                      "a green triangle on the right"], 2)
    assert rows == [1, 2] and len(texts) == 4
    assert all("red circle" in t and "below" not in t for t in texts[:2])
    assert all("green triangle" in t and "on the right" not in t for t in texts[2:])


def test_loss_is_cross_entropy_over_own_and_alternatives() -> None:
    torch.manual_seed(0)
    image, text = F.normalize(torch.randn(4, 8), dim=-1), F.normalize(torch.randn(4, 8), dim=-1)
    negatives = F.normalize(torch.randn(2 * 3, 8), dim=-1)
    scale = torch.tensor(10.0)
    rows = [0, 2]
    expected = 0.0
    for j, r in enumerate(rows):
        candidates = torch.cat([text[r][None], negatives[3 * j:3 * j + 3]])
        logits = scale * (candidates @ image[r])
        expected += -torch.log_softmax(logits, 0)[0] / len(rows)
    torch.testing.assert_close(hard_negative_loss(image, text, negatives, rows, scale), expected)
    assert hard_negative_loss(image, text, negatives, [], scale).item() == 0.0


def test_matching_own_caption_lowers_the_loss() -> None:
    image = F.normalize(torch.randn(1, 8), dim=-1)
    negatives = F.normalize(torch.randn(3, 8), dim=-1)
    scale = torch.tensor(20.0)
    aligned = hard_negative_loss(image, image.clone(), negatives, [0], scale)
    opposed = hard_negative_loss(image, -image, negatives, [0], scale)
    assert aligned < math.log(4) < opposed


def test_module_adds_the_weighted_term() -> None:
    captions = ["a red circle on the left", "a blue square", "a red circle above a blue square",
                "a green triangle"]
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    torch.manual_seed(0)
    plain = CLIPModule(model_name="tiny-clip")
    torch.manual_seed(0)
    hard = CLIPModule(model_name="tiny-clip", hard_negatives=3, hard_negative_weight=0.5)
    batch = {"image": images, "caption": captions}
    base = plain.training_step(batch, 0)
    total = hard.training_step(batch, 0)
    assert total > base  # a positive cross-entropy was added
    torch.manual_seed(0)
    double = CLIPModule(model_name="tiny-clip", hard_negatives=3, hard_negative_weight=1.0)
    torch.testing.assert_close(double.training_step(batch, 0) - base, 2 * (total - base))


@pytest.mark.parametrize("caption,swapped", [
    ("a red circle and a blue square", "a blue circle and a red square"),
    ("a red circle to the left of an orange square",
     "an orange circle to the left of a red square"),
    ("an orange triangle above a white circle", "a white triangle above an orange circle"),
    ("an image of a cyan circle below a yellow square",
     "an image of a yellow circle below a cyan square"),
    ("a large green square and a small purple circle",
     "a large purple square and a small green circle"),
])
def test_color_swap_exchanges_the_two_colours(caption: str, swapped: str) -> None:
    assert color_swap(caption) == swapped


@pytest.mark.parametrize("caption", ["a red circle", "a red circle and a red square",
                                     "a red circle above a square", "a circle and a square", ""])
def test_color_swap_needs_two_different_colours(caption: str) -> None:
    assert color_swap(caption) is None


@pytest.mark.parametrize("caption,negative", [
    ("a red circle and a blue circle", False),          # the same scene either way
    ("two shapes: a red square and a blue square", False),
    ("a large red circle and a large blue circle", False),
    ("a large red circle and a small blue circle", True),  # sizes bind too
    ("a red circle to the left of a blue circle", True),   # a relation orders the objects
])
def test_color_swap_of_objects_that_differ_only_in_colour(caption: str, negative: bool) -> None:
    assert (color_swap(caption) is not None) == negative


def test_batch_color_swaps_rows() -> None:
    rows, texts = batch_color_swaps(["a red circle", "a blue square below a red circle",
                                     "a green triangle and a green circle"])
    assert rows == [1] and texts == ["a red square below a blue circle"]


def _training_loss(captions: list[str], **kwargs) -> torch.Tensor:
    torch.manual_seed(0)
    module = CLIPModule(model_name="tiny-clip", **kwargs)
    images = torch.rand(len(captions), 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)  # the spatial alternatives are drawn from the global generator
    return module.training_step({"image": images * 2 - 1, "caption": captions}, 0)


def test_module_adds_the_color_swap_term() -> None:
    captions = ["a red circle on the left", "a blue square", "a red circle above a blue square",
                "a green triangle and a white circle"]
    base = _training_loss(captions)
    swap = _training_loss(captions, color_swaps=True, hard_negative_weight=0.5)
    assert swap > base
    double = _training_loss(captions, color_swaps=True, hard_negative_weight=1.0)
    torch.testing.assert_close(double - base, 2 * (swap - base))
    # spatial and colour negatives are encoded in one pass and split back: the terms add up
    spatial = _training_loss(captions, hard_negatives=3, hard_negative_weight=0.5)
    both = _training_loss(captions, hard_negatives=3, color_swaps=True, hard_negative_weight=0.5)
    torch.testing.assert_close(both - base, (spatial - base) + (swap - base))


def test_color_swaps_without_two_colours_add_nothing() -> None:
    captions = ["a red circle", "a blue square above a blue circle"]
    torch.testing.assert_close(_training_loss(captions, color_swaps=True), _training_loss(captions))
