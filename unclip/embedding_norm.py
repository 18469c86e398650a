"""CLIP embedding normalisation: one explicit, invertible map stored in every checkpoint.

Diffusion models of CLIP embeddings need the embedding scaled to roughly unit variance per
dimension (the scale the Gaussian noise assumes). Two conventions are in use:

- ``"l2"`` (lucidrains/DALLE2-pytorch): ``x / ||x|| * sqrt(D)``, so each dimension has
  mean square 1. The inverse returns the unit-norm embedding: CLIP's geometry is cosine
  similarity, and the original norm is not recoverable (nor needed).
- ``"meanstd"`` (kakaobrain/karlo): ``(x - mean) / std`` with per-dimension statistics of the
  training embeddings (``stats.json`` from ``unclip.data.precompute``); exactly invertible.
- ``"none"``: identity, for embeddings that are already normalised.

``EmbeddingNorm.config()`` is a plain dict (kind, dim, statistics as lists) that rebuilds the
same map with ``EmbeddingNorm.from_config``; checkpoints store it next to the weights.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

KINDS = ("l2", "meanstd", "none")


class EmbeddingNorm(nn.Module):
    """Invertible normalisation of ``(..., dim)`` CLIP embeddings (see the module docstring)."""

    def __init__(
        self,
        kind: str,
        dim: int,
        mean: Sequence[float] | torch.Tensor | None = None,
        std: Sequence[float] | torch.Tensor | None = None,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown embedding normalisation {kind!r}; expected one of {KINDS}")
        if dim <= 0:
            raise ValueError(f"embedding dim must be positive, got {dim}")
        self.kind = kind
        self.dim = int(dim)
        self.eps = float(eps)
        if kind == "meanstd":
            if mean is None or std is None:
                raise ValueError("'meanstd' normalisation needs per-dimension `mean` and `std`")
            mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
            std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
            for name, v in (("mean", mean_t), ("std", std_t)):
                if v.numel() != dim:
                    raise ValueError(f"'meanstd' {name} has {v.numel()} entries, expected {dim}")
            if not torch.isfinite(mean_t).all() or not torch.isfinite(std_t).all():
                raise ValueError("'meanstd' statistics contain non-finite values")
            if (std_t <= 0).any():
                raise ValueError("'meanstd' std must be positive in every dimension")
        elif mean is not None or std is not None:
            raise ValueError(f"{kind!r} normalisation takes no mean/std statistics")
        else:
            mean_t = torch.zeros(dim)
            std_t = torch.ones(dim)
        # Non-persistent: the statistics live in `config()`, not in the network state_dict.
        self.register_buffer("mean", mean_t, persistent=False)
        self.register_buffer("std", std_t, persistent=False)

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[-1] != self.dim:
            raise ValueError(
                f"embedding has last dimension {x.shape[-1]}, normaliser expects {self.dim}"
            )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Raw CLIP embedding -> the space the diffusion model works in (float32)."""
        self._check(x)
        x = x.float()
        if self.kind == "l2":
            return x / x.norm(dim=-1, keepdim=True).clamp_min(self.eps) * math.sqrt(self.dim)
        if self.kind == "meanstd":
            return (x - self.mean) / self.std
        return x

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of ``normalize`` (for ``"l2"``: the unit-norm embedding), float32."""
        self._check(z)
        z = z.float()
        if self.kind == "l2":
            return z / z.norm(dim=-1, keepdim=True).clamp_min(self.eps)
        if self.kind == "meanstd":
            return z * self.std + self.mean
        return z

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` (normalised space) onto the sphere of radius ``sqrt(D)`` that ``"l2"``-normalised
        embeddings lie on, in ``z``'s dtype: DALLE2-pytorch's ``sampling_clamp_l2norm`` of the
        prior's x0 predictions. Only ``"l2"`` has such a sphere."""
        if self.kind != "l2":
            raise ValueError(f"projecting onto the embedding sphere needs the 'l2' "
                             f"normalisation; this one is {self.kind!r}")
        self._check(z)
        return z / z.norm(dim=-1, keepdim=True).clamp_min(self.eps) * math.sqrt(self.dim)

    def config(self) -> dict[str, Any]:
        """Plain-container description (JSON- and ``weights_only``-safe) for checkpoints."""
        cfg: dict[str, Any] = {"kind": self.kind, "dim": self.dim, "eps": self.eps}
        if self.kind == "meanstd":
            cfg["mean"] = self.mean.detach().cpu().tolist()
            cfg["std"] = self.std.detach().cpu().tolist()
        return cfg

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> EmbeddingNorm:
        """Rebuild the normaliser that ``config()`` described."""
        unknown = set(cfg) - {"kind", "dim", "eps", "mean", "std"}
        if unknown:
            raise ValueError(f"unknown keys in embedding normalisation config: {sorted(unknown)}")
        return cls(
            cfg["kind"], cfg["dim"], cfg.get("mean"), cfg.get("std"), cfg.get("eps", 1e-6)
        )

    @classmethod
    def from_stats(
        cls, kind: str, stats: Mapping[str, Any] | str | Path, which: str = "image"
    ) -> EmbeddingNorm:
        """Build from precompute statistics (a ``stats.json`` path or its parsed dict).

        ``which`` picks the ``"image"`` or ``"text"`` entry; it must hold ``mean`` and ``std``
        lists (``dim`` is their length).
        """
        if not isinstance(stats, Mapping):
            path = Path(stats)
            if not path.is_file():
                raise FileNotFoundError(f"embedding statistics file not found: {path}")
            stats = json.loads(path.read_text())
        if which not in stats:
            raise KeyError(f"statistics have no {which!r} entry (keys: {sorted(stats)})")
        entry = stats[which]
        if "mean" not in entry or "std" not in entry:
            raise KeyError(f"statistics entry {which!r} needs 'mean' and 'std' lists")
        dim = len(entry["mean"])
        if kind == "meanstd":
            return cls(kind, dim, entry["mean"], entry["std"])
        return cls(kind, dim)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, dim={self.dim}"
