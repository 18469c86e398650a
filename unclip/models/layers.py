"""Layers shared by the prior transformer and the U-Nets."""

from __future__ import annotations

import math

import torch
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of continuous time ``t`` in [0, 1], scaled to the DDPM range 0..1000.

    Transformer positional encoding (1706.03762 sec. 3.5) as used for diffusion timesteps
    (2006.11239 appendix B): ``[cos(1000 t w_k), sin(1000 t w_k)]``, ``w_k = max_period^(-k/half)``.
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = 1000.0 * t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedder(nn.Module):
    """Sinusoidal features of ``t`` followed by a two-layer SiLU MLP (ADM/GLIDE style)."""

    def __init__(self, dim: int, frequency_dim: int = 256) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Map ``t`` of shape (B,) to an embedding of shape (B, dim)."""
        freq = timestep_embedding(t, self.frequency_dim)
        return self.mlp(freq.to(self.mlp[0].weight.dtype))


def drop_mask(
    batch: int,
    prob: float,
    cond_drop: torch.Tensor | None,
    training: bool,
    device: torch.device,
) -> torch.Tensor:
    """Rows whose condition is replaced by the learned null: forced rows, plus random rows.

    Classifier-free guidance training (2207.12598 sec. 3.2): during ``training`` each row is
    dropped independently with probability ``prob``; ``cond_drop`` (bool, (B,)) forces rows to
    the null condition at any time (guidance builds the unconditional half this way).
    """
    mask = torch.zeros(batch, dtype=torch.bool, device=device)
    if cond_drop is not None:
        mask = mask | cond_drop.to(device=device, dtype=torch.bool)
    if training and prob > 0:
        mask = mask | (torch.rand(batch, device=device) < prob)
    return mask
