"""Metrics of a diffusion prior on held-out (caption, image embedding) pairs.

All functions take raw CLIP embeddings (any norm; cosine ignores it) and return per-sample
values, so callers can average over any number of batches:

- ``cosine(pred, true)``: how close the sampled image embedding is to the true one;
- ``cosine(text, true)``: the baseline a prior must beat (use the text embedding as the image's);
- ``cosine(pred, true[unrelated])``: the same against an image of a different caption
  (must stay clearly lower: the prior follows its caption);
- top-1 retrieval: the true image is the closest of the batch's images to the prediction;
- the same-caption ceiling: cosine between the true embedding and the mean (unit) image
  embedding of training images with the same caption. The mean of unit vectors maximises the
  expected cosine, so no caption-conditional predictor beats it on average.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of (B,D) tensors -> (B,), in float32."""
    if a.shape != b.shape:
        raise ValueError(f"cosine of tensors with different shapes {a.shape} and {b.shape}")
    return F.cosine_similarity(a.float(), b.float(), dim=-1)


def unrelated_index(captions: Sequence[str]) -> torch.Tensor:
    """For each i, the next index j (cyclically) whose caption differs; -1 where none does."""
    n = len(captions)
    out = torch.full((n,), -1, dtype=torch.long)
    for i, caption in enumerate(captions):
        for step in range(1, n):
            j = (i + step) % n
            if captions[j] != caption:
                out[i] = j
                break
    return out


def top1_retrieval(query: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """1.0 where row i of ``query`` is closest (cosine) to row i of ``gallery``, else 0.0."""
    if query.shape != gallery.shape:
        raise ValueError(f"query {query.shape} and gallery {gallery.shape} must match")
    sim = F.normalize(query.float(), dim=-1) @ F.normalize(gallery.float(), dim=-1).T
    return (sim.argmax(dim=-1) == torch.arange(len(query), device=query.device)).float()


class CaptionMeans:
    """Running mean of unit image embeddings per caption (for the same-caption ceiling)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def update(self, image_emb: torch.Tensor, captions: Sequence[str]) -> None:
        """Add a batch of training image embeddings (B,D) with their captions."""
        if len(captions) != len(image_emb):
            raise ValueError(f"{len(captions)} captions for {len(image_emb)} embeddings")
        unit = F.normalize(image_emb.detach().float().cpu(), dim=-1)
        for caption, e in zip(captions, unit, strict=True):
            if caption in self.sums:
                self.sums[caption] += e
                self.counts[caption] += 1
            else:
                self.sums[caption] = e.clone()
                self.counts[caption] = 1

    def means(self) -> dict[str, torch.Tensor]:
        """Caption -> mean unit embedding (D,)."""
        return {c: s / self.counts[c] for c, s in self.sums.items()}

    @classmethod
    def from_batches(cls, batches: Iterable[Mapping]) -> CaptionMeans:
        """Accumulate over batches holding ``image_emb`` and ``caption``."""
        acc = cls()
        for batch in batches:
            acc.update(batch["image_emb"], batch["caption"])
        return acc


def ceiling_cosine(
    true_emb: torch.Tensor, captions: Sequence[str], means: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine(true, mean training embedding of the same caption) -> (values (B,), known (B,)).

    ``known`` is False for captions absent from ``means``; their value is NaN.
    """
    values = torch.full((len(captions),), float("nan"))
    known = torch.tensor([c in means for c in captions], dtype=torch.bool)
    if known.any():
        idx = known.nonzero().flatten().tolist()
        ref = torch.stack([means[captions[i]] for i in idx])
        values[known] = cosine(true_emb[idx].cpu(), ref)
    return values.to(true_emb.device), known.to(true_emb.device)


def prior_metrics(
    pred: torch.Tensor,
    true_emb: torch.Tensor,
    text_emb: torch.Tensor,
    captions: Sequence[str],
    means: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Per-sample metrics of one batch (see the module docstring); NaN marks 'not defined'.

    Keys: ``cos_pred_true``, ``cos_text_true`` (baseline), ``cos_pred_unrelated``,
    ``top1_pred``, ``top1_text`` (retrieval with the text embedding, baseline), and when
    ``means`` is given ``cos_ceiling`` and ``cos_pred_true_known`` (the prediction's cosine on
    the same subset of samples whose caption has a ceiling).
    """
    if len(captions) != len(pred):
        raise ValueError(f"{len(captions)} captions for {len(pred)} predictions")
    out = {
        "cos_pred_true": cosine(pred, true_emb),
        "cos_text_true": cosine(text_emb, true_emb),
        "top1_pred": top1_retrieval(pred, true_emb),
        "top1_text": top1_retrieval(text_emb, true_emb),
    }
    other = unrelated_index(captions).to(pred.device)
    has_other = other >= 0
    unrelated = torch.full_like(out["cos_pred_true"], float("nan"))
    unrelated[has_other] = cosine(pred[has_other], true_emb[other[has_other]])
    out["cos_pred_unrelated"] = unrelated
    if means is not None:
        ceiling, known = ceiling_cosine(true_emb, captions, means)
        out["cos_ceiling"] = ceiling
        out["cos_pred_true_known"] = torch.where(known, out["cos_pred_true"], float("nan"))
    return out
