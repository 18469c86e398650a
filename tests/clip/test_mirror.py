"""Mirror pairs: flipped images with spatial words swapped."""

from __future__ import annotations

import pytest
import torch

from unclip.clip.mirror import mirror_caption, mirror_pairs


@pytest.mark.parametrize(
    ("caption", "axis", "expected"),
    [
        ("a red circle to the left of a blue square", "horizontal",
         "a red circle to the right of a blue square"),
        ("a large red circle in the top left", "horizontal", "a large red circle in the top right"),
        ("a large red circle in the top left", "vertical", "a large red circle in the bottom left"),
        ("a red circle above a blue square", "vertical", "a red circle below a blue square"),
        ("a red circle above a blue square", "horizontal", "a red circle above a blue square"),
        ("a green square in the center", "vertical", "a green square in the center"),
        ("at the bottom, a small red square", "vertical", "at the top, a small red square"),
    ],
)
def test_mirror_caption(caption: str, axis: str, expected: str) -> None:
    assert mirror_caption(caption, axis) == expected
    assert mirror_caption(expected, axis) == caption


def _meta(*shapes: str) -> dict:
    return {"objects": [{"shape": s} for s in shapes]}


def test_mirror_pairs_replace_others_with_flipped_copies() -> None:
    torch.manual_seed(0)
    images = torch.rand(8, 3, 4, 4)
    captions = ["a red circle on the left", "a blue square", "a red circle", "a green circle",
                "a triangle above a square", "a cyan square", "a white circle", "an orange square"]
    metas = [_meta("circle"), _meta("square"), _meta("circle"), _meta("circle"),
             _meta("triangle", "square"), _meta("square"), _meta("circle"), _meta("square")]
    out, texts = mirror_pairs(images, captions, metas, 0.5, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and len(texts) == 8
    assert texts.count("a red circle on the right") == 1
    assert "a red circle on the left" in texts  # the source stays
    # the triangle scene may only be flipped horizontally, which leaves "above" unchanged
    assert "a triangle below a square" not in texts
    dst = texts.index("a red circle on the right")
    torch.testing.assert_close(out[dst], images[0].flip(-1))
    changed = [i for i in range(8) if not torch.equal(out[i], images[i])]
    assert changed == [dst]


def test_vertical_flip_without_triangles() -> None:
    images = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    out, texts = mirror_pairs(images, ["a red circle above a blue square", "a red circle"],
                              [_meta("circle", "square"), _meta("circle")], 0.5)
    assert texts == ["a red circle above a blue square", "a red circle below a blue square"]
    torch.testing.assert_close(out[1], images[0].flip(-2))


def test_zero_fraction_and_bad_fraction() -> None:
    images = torch.rand(4, 3, 2, 2)
    captions = ["a circle on the left"] * 4
    out, texts = mirror_pairs(images, captions, None, 0.0)
    assert torch.equal(out, images) and texts == captions
    with pytest.raises(ValueError, match="mirror fraction"):
        mirror_pairs(images, captions, None, 0.8)
