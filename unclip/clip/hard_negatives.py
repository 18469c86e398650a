"""Hard-negative captions (NegCLIP: Yuksekgonul et al. 2023, "When and why vision-language
models behave like bags-of-words", sec. 4): spatial words, and colours bound to shapes.

A random batch's other captions almost never share a caption's objects, so the contrastive loss
is satisfied without reading "to the left of" or "in the top right", or which object is red. For
a caption with exactly one spatial phrase (a relation or a single object's position of the shapes
grammar), the same caption with that phrase replaced by others is an extra negative its image
must score below its own caption; :class:`~unclip.clip.mirror` gives the image-side counterpart.
For a caption naming two different colours, the same caption with the two colours exchanged
(``a blue circle and a red square`` for ``a red circle and a blue square``: NegCLIP's attribute
swap) is one: without it the CLIP embeds a pair as a bag of colours and shapes, and the
decoder and prior built on it cannot tell which object has which colour (2204.06125 sec. 7).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from unclip.data.shapes import COLORS, POSITIONS, RELATIONS

_PHRASES = sorted(RELATIONS + POSITIONS, key=len, reverse=True)  # longest first
_PATTERN = re.compile(r"\b(" + "|".join(re.escape(p) for p in _PHRASES) + r")\b")
_COLOR_PATTERN = re.compile(r"\b(" + "|".join(COLORS) + r")\b")
_ARTICLE = re.compile(r"\b(a|an) (?=(\w))")


def spatial_alternatives(
    caption: str, k: int, generator: torch.Generator | None = None
) -> list[str] | None:
    """``k`` copies of ``caption`` with its spatial phrase replaced by other phrases of its kind.

    None when the caption has no spatial phrase or more than one (no unambiguous swap).
    """
    matches = list(_PATTERN.finditer(caption))
    if len(matches) != 1:
        return None
    match = matches[0]
    pool = RELATIONS if match.group(1) in RELATIONS else POSITIONS
    others = [p for p in pool if p != match.group(1)]
    if not 1 <= k <= len(others):
        raise ValueError(f"k must be in [1, {len(others)}] for {match.group(1)!r}, got {k}")
    chosen = torch.randperm(len(others), generator=generator)[:k].tolist()
    return [caption[: match.start()] + others[i] + caption[match.end():] for i in chosen]


def color_swap(caption: str) -> str | None:
    """``caption`` with its two colour words exchanged, articles fixed (``an orange``).

    None unless the caption names exactly two colours and they differ (nothing to misbind), and
    when the exchange describes the same scene: two objects joined by "and" that differ only in
    colour (``a red circle and a blue circle``) are not ordered, so the swap is no negative.
    """
    matches = list(_COLOR_PATTERN.finditer(caption))
    if len(matches) != 2 or matches[0].group(1) == matches[1].group(1):
        return None
    head, joined, tail = _COLOR_PATTERN.sub("#", caption).partition(" and ")
    if joined and head.endswith(tail):
        return None
    first, second = matches
    swapped = (caption[: first.start()] + second.group(1) + caption[first.end(): second.start()]
               + first.group(1) + caption[second.end():])
    return _ARTICLE.sub(lambda m: ("an " if m.group(2) in "aeiou" else "a "), swapped)


def _gather(
    captions: Sequence[str], negatives_of: Callable[[str], list[str] | None]
) -> tuple[list[int], list[str]]:
    """The rows whose ``negatives_of`` is not None and those negatives, flattened row-major."""
    rows: list[int] = []
    texts: list[str] = []
    for i, caption in enumerate(captions):
        negatives = negatives_of(caption)
        if negatives is not None:
            rows.append(i)
            texts.extend(negatives)
    return rows, texts


def batch_color_swaps(captions: Sequence[str]) -> tuple[list[int], list[str]]:
    """The rows with a :func:`color_swap` and their swapped captions (one each)."""
    return _gather(captions, lambda c: None if (swapped := color_swap(c)) is None else [swapped])


def batch_alternatives(
    captions: Sequence[str], k: int, generator: torch.Generator | None = None
) -> tuple[list[int], list[str]]:
    """The rows that have alternatives and their ``k`` alternatives each, flattened row-major."""
    return _gather(captions, lambda c: spatial_alternatives(c, k, generator))


def hard_negative_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    negative_features: torch.Tensor,
    rows: Sequence[int],
    logit_scale: torch.Tensor,
) -> torch.Tensor:
    """Image-to-text cross-entropy over [own caption, its k alternatives] for ``rows``.

    ``image_features``/``text_features`` (B, D) and ``negative_features`` (R*k, D) are
    L2-normalised; ``logit_scale`` is the CLIP temperature (already exponentiated).
    """
    if not rows:
        return image_features.new_zeros(())
    index = torch.as_tensor(list(rows), device=image_features.device)
    image = image_features[index]
    own = (image * text_features[index]).sum(-1, keepdim=True)
    negatives = negative_features.view(len(rows), -1, negative_features.shape[-1])
    other = torch.einsum("rd,rkd->rk", image, negatives)
    logits = logit_scale * torch.cat([own, other], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(rows), dtype=torch.long, device=logits.device))
