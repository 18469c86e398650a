"""Running statistics of CLIP embeddings, accumulated in float64 (the precompute's stats.json).

``stats.json``::

    {"count": N,
     "image": {"mean": [D floats], "std": [D floats], "mean_norm": float},
     "text":  {"mean": [D floats], "std": [D floats], "mean_norm": float}}

``std`` is the population standard deviation per dimension; ``mean_norm`` the mean L2 norm of
the raw (unnormalised) embeddings. ``unclip.embedding_norm.EmbeddingNorm.from_stats`` reads it.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class RunningMoments:
    """Per-dimension sum, sum of squares and sum of norms of ``(N, D)`` rows, in float64."""

    def __init__(self) -> None:
        self.count = 0
        self.sum: np.ndarray | None = None
        self.sum_sq: np.ndarray | None = None
        self.sum_norm = 0.0

    def update(self, rows: np.ndarray) -> None:
        """Add a batch of rows ``(N, D)``."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2:
            raise ValueError(f"expected (N, D) embeddings, got shape {rows.shape}")
        if self.sum is None:
            self.sum = np.zeros(rows.shape[1])
            self.sum_sq = np.zeros(rows.shape[1])
        elif rows.shape[1] != self.sum.shape[0]:
            raise ValueError(f"embedding width {rows.shape[1]} != earlier {self.sum.shape[0]}")
        self.count += rows.shape[0]
        self.sum += rows.sum(0)
        self.sum_sq += (rows * rows).sum(0)
        self.sum_norm += float(np.linalg.norm(rows, axis=1).sum())

    def summary(self) -> dict[str, Any]:
        """``{"mean", "std", "mean_norm"}`` as plain lists and floats."""
        if not self.count:
            raise ValueError("no embeddings were accumulated")
        mean = self.sum / self.count
        var = np.maximum(self.sum_sq / self.count - mean * mean, 0.0)
        return {
            "mean": mean.tolist(),
            "std": np.sqrt(var).tolist(),
            "mean_norm": self.sum_norm / self.count,
        }


class EmbeddingStats:
    """Image and text embedding moments; ``to_json()`` is the stats.json record."""

    def __init__(self) -> None:
        self.image = RunningMoments()
        self.text = RunningMoments()

    def update(self, image_emb: np.ndarray, text_emb: np.ndarray) -> None:
        if len(image_emb) != len(text_emb):
            raise ValueError(f"{len(image_emb)} image but {len(text_emb)} text embeddings")
        self.image.update(image_emb)
        self.text.update(text_emb)

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.image.count,
            "image": self.image.summary(),
            "text": self.text.summary(),
        }
