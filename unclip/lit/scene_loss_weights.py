"""Per-sample loss weights from a scene's ground truth: pairs of one colour weighted up.

Pairs whose two objects share a colour (``a red circle above a red square``) are the decoder's
hardest scenes: the objects can be told apart only by shape, and it draws them touching, loses
one or swaps the shapes (docs/results_history.md, session 18). They are 1 in 11.5 random pairs.
Rebalancing the stream (``data.keep_same_color_pairs``) raises their share by leaving other
samples out, which costs distinct samples when training runs several epochs; weighting their
loss raises their share of the gradient and keeps every sample.

The objective is the weighted mean ``sum_i w_i l_i / sum_i w_i`` over the batch: in expectation
the loss of a stream in which each sample is drawn in proportion to its weight (importance
weighting), at the same overall scale as the plain mean, so the learning rate keeps its meaning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from unclip.data.rebalance import one_color_pair

KEY = "decoder.same_color_pair_weight"


def same_color_pair_weights(
    metas: Sequence[Mapping[str, Any]], keys: Sequence[str], weight: float
) -> torch.Tensor:
    """(B,) float32: ``weight`` for a scene of two objects of one colour, 1 for any other.

    Raises ``ValueError`` naming the sample when its ground truth lists no ``objects`` or a pair
    object has no ``color``.
    """
    out = []
    for meta, key in zip(metas, keys, strict=True):
        objects = meta.get("objects") if isinstance(meta, Mapping) else None
        if not isinstance(objects, list):
            found = sorted(meta) if isinstance(meta, Mapping) else type(meta).__name__
            raise ValueError(f"{KEY} needs each sample's json ground truth to list its "
                             f"'objects'; sample {key} has {found}")
        out.append(weight if one_color_pair(objects, f"sample {key}", KEY) else 1.0)
    return torch.tensor(out, dtype=torch.float32)


def weighted_mean(loss: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_i w_i l_i / sum_i w_i`` of a per-sample loss (B,) and positive weights (B,)."""
    if loss.shape != weights.shape:
        raise ValueError(f"loss {tuple(loss.shape)} and weights {tuple(weights.shape)} differ")
    weights = weights.to(loss.device, loss.dtype)
    return (weights * loss).sum() / weights.sum()
