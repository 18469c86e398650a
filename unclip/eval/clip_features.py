"""The frozen CLIP image encoder as a torchmetrics feature extractor.

torchmetrics' ``FrechetInceptionDistance`` and ``KernelInceptionDistance`` accept any
``nn.Module`` as ``feature``: it receives the images passed to ``update`` and returns ``(N, D)``
features; a ``num_features`` attribute spares torchmetrics its dummy forward pass. Wrapping
``FrozenCLIP.encode_image`` this way gives FD_CLIP / KID_CLIP (Stein et al. 2023, "Exposing
flaws of generative model evaluation metrics", arXiv 2306.04675) with torchmetrics' own
statistics, and the same module feeds CMMD (``unclip.eval.cmmd``).

Images follow the project convention: float ``(B, 3, H, W)`` in ``[-1, 1]``; the encoder
resizes and normalises them itself (the ``FrozenCLIP`` contract).

When several metrics share one ``CLIPImageFeatures`` (a ``MetricCollection`` updates each
metric with the same tensor), the last batch's features are reused instead of recomputed.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn


@runtime_checkable
class ImageEncoder(Protocol):
    """What the metrics need from CLIP: ``FrozenCLIP`` satisfies it."""

    embed_dim: int

    def encode_image(self, images: Tensor) -> Tensor:
        """Images ``(B, 3, H, W)`` in ``[-1, 1]`` -> embeddings ``(B, D)``."""
        ...


class CLIPImageFeatures(nn.Module):
    """``images in [-1, 1] -> (B, D)`` CLIP image embeddings, as a torchmetrics ``feature``.

    Args:
        encoder: object with ``encode_image`` and ``embed_dim`` (``FrozenCLIP``).
        normalize: L2-normalise the embeddings (CMMD's reference does; FD/KID default to raw).
    """

    def __init__(self, encoder: ImageEncoder, normalize: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.normalize = normalize
        self.num_features = int(encoder.embed_dim)
        self._cache: tuple[Tensor, int, Tensor] | None = None

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """Embed a batch; the same tensor (unmodified) twice in a row is embedded once."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got shape {tuple(images.shape)}")
        if not images.is_floating_point():
            raise TypeError(
                f"expected float images in [-1, 1], got {images.dtype}; "
                "convert uint8 with images.float() / 127.5 - 1"
            )
        cached = self._cache
        if cached is not None and cached[0] is images and cached[1] == images._version:
            return cached[2]
        features = self.encoder.encode_image(images).float()
        if self.normalize:
            features = nn.functional.normalize(features, dim=-1)
        self._cache = (images, images._version, features)
        return features

    def clear_cache(self) -> None:
        """Drop the reference to the last batch (frees its memory)."""
        self._cache = None
