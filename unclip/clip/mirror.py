"""Mirror pairs: hard negatives for spatial words in contrastive CLIP training.

In-batch negatives of a random batch almost never share a caption's objects, so a contrastive
model can ignore "left of" / "above". Replacing part of a batch by mirror images of other samples,
with the spatial words of their captions swapped, puts the same objects with the opposite
layout in the same batch. A horizontal flip swaps ``left``/``right``; a vertical flip swaps
``top``/``bottom`` and ``above``/``below`` and is only used for scenes whose ``.json`` says they
hold no up-pointing triangles (a flipped triangle is not in the shapes grammar). Samples whose
caption no flip changes (``a red circle``) are never mirrored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

_SWAPS = {
    "horizontal": {"left": "right", "right": "left"},
    "vertical": {"top": "bottom", "bottom": "top", "above": "below", "below": "above"},
}
_PATTERNS = {axis: re.compile(r"\b(" + "|".join(s) + r")\b") for axis, s in _SWAPS.items()}


def mirror_caption(caption: str, axis: str) -> str:
    """The caption of the image flipped along ``axis`` (``horizontal`` or ``vertical``)."""
    if axis not in _SWAPS:
        raise ValueError(f"axis must be one of {tuple(_SWAPS)}, got {axis!r}")
    return _PATTERNS[axis].sub(lambda m: _SWAPS[axis][m.group(1)], caption)


def _allowed_axes(meta: Mapping[str, Any] | None) -> tuple[str, ...]:
    objects = meta.get("objects") if isinstance(meta, Mapping) else None
    if objects is not None and all(o.get("shape") != "triangle" for o in objects):
        return ("horizontal", "vertical")
    return ("horizontal",)


def mirror_pairs(
    images: torch.Tensor,
    captions: Sequence[str],
    metas: Sequence[Mapping[str, Any] | None] | None,
    fraction: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, list[str]]:
    """Replace up to ``fraction`` of the batch by mirrored copies of other samples.

    Returns new ``images`` (B, 3, H, W) and ``captions``; the batch size is unchanged. A
    mirrored copy of sample ``i`` (a sample whose caption some allowed flip changes) overwrites
    a sample that is itself neither mirrored nor a source.
    """
    if not 0.0 <= fraction <= 0.5:
        raise ValueError(f"mirror fraction must be in [0, 0.5], got {fraction}")
    n = len(captions)
    if images.shape[0] != n:
        raise ValueError(f"{images.shape[0]} images but {len(captions)} captions")
    budget = int(fraction * n)
    if budget == 0:
        return images, list(captions)
    metas = metas if metas is not None else [None] * n
    order = torch.randperm(n, generator=generator).tolist()
    sources: list[tuple[int, str, str]] = []
    for i in order:
        axes = [a for a in _allowed_axes(metas[i]) if mirror_caption(captions[i], a) != captions[i]]
        if axes:
            axis = axes[int(torch.randint(len(axes), (1,), generator=generator))]
            sources.append((i, axis, mirror_caption(captions[i], axis)))
    sources = sources[: min(budget, n // 2)]
    used = {i for i, _, _ in sources}
    targets = [i for i in reversed(order) if i not in used][: len(sources)]
    sources = sources[: len(targets)]
    images = images.clone()
    captions = list(captions)
    for (src, axis, text), dst in zip(sources, targets, strict=True):
        images[dst] = images[src].flip(-1 if axis == "horizontal" else -2)
        captions[dst] = text
    return images, captions
