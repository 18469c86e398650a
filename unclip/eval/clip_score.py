"""CLIP score: agreement of an image with its caption in CLIP space (Hessel et al. 2021).

    cos_i = <E_I(x_i), E_T(c_i)> / (||E_I(x_i)|| ||E_T(c_i)||)
    CLIPScore_i = max(100 * cos_i, 0)                   (torchmetrics ``CLIPScore`` convention)

Hessel et al. weight by 2.5 (``w * max(cos, 0)``); torchmetrics uses ``w = 100``. Both the raw
mean cosine and the torchmetrics-scaled score are reported, because the clamp hides how
negative the cosine of a poor model is. torchmetrics' own ``CLIPScore`` needs a Hugging Face
CLIP; this one runs on the project's frozen open_clip model (``FrozenCLIP``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torchmetrics import Metric


class ImageTextEncoder(Protocol):
    """``FrozenCLIP``: images in ``[-1, 1]`` -> ``(B, D)``; captions -> ``TextEncoding``."""

    def encode_image(self, images: Tensor) -> Tensor: ...

    def encode_text(self, texts: list[str]) -> Any: ...


def pooled_text(encoding: Any) -> Tensor:
    """The ``(B, D)`` pooled text embedding of a ``TextEncoding`` (or a plain tensor)."""
    return encoding.pooled if hasattr(encoding, "pooled") else encoding


def clip_cosine(image_emb: Tensor, text_emb: Tensor) -> Tensor:
    """Per-pair cosine similarity ``(B,)`` of matching rows of ``(B, D)`` embeddings."""
    if image_emb.shape != text_emb.shape:
        raise ValueError(f"embedding shapes differ: {image_emb.shape} vs {text_emb.shape}")
    return nn.functional.cosine_similarity(image_emb.double(), text_emb.double(), dim=-1)


def clip_score_from_cosine(cosine: Tensor) -> Tensor:
    """torchmetrics' scale: ``max(100 * cos, 0)``."""
    return (100.0 * cosine).clamp_min(0.0)


class FrozenCLIPScore(Metric):
    """Mean CLIP score of generated images against their prompts, on a ``FrozenCLIP``.

    ``update(images, captions)``; ``compute()`` returns ``{"clip_score": mean max(100 cos, 0),
    "clip_cosine": mean cos}``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, encoder: ImageTextEncoder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoder = encoder
        self.add_state("score_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("cosine_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @torch.no_grad()
    def update(self, images: Tensor, captions: Sequence[str]) -> None:
        """Score a batch of images ``(B, 3, H, W)`` in ``[-1, 1]`` against ``B`` captions."""
        if len(captions) != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {len(captions)} captions")
        cosine = clip_cosine(
            self.encoder.encode_image(images), pooled_text(self.encoder.encode_text(list(captions)))
        ).to(self.score_sum.device)
        self.score_sum += clip_score_from_cosine(cosine).sum()
        self.cosine_sum += cosine.sum()
        self.count += cosine.numel()

    def compute(self) -> dict[str, Tensor]:
        """Means over all pairs seen."""
        if self.count == 0:
            raise RuntimeError("FrozenCLIPScore.compute() called before any update()")
        return {
            "clip_score": (self.score_sum / self.count).float(),
            "clip_cosine": (self.cosine_sum / self.count).float(),
        }
