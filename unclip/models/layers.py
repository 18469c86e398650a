"""Layers shared by the prior transformer and the U-Nets."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d) + mask) v`` over (B, heads, S, d) queries, keys and values.

    ``mask`` broadcasts to (B, heads, S_q, S_k): boolean, True where a key may be attended
    (SDPA's convention), or an additive float bias. Off CPU this is
    ``F.scaled_dot_product_attention`` (fused flash / memory-efficient kernels). On CPU it is two
    matmuls in the inputs' dtype (bf16 under autocast) around an fp32 softmax: PyTorch's CPU
    flash kernel is slow for these short sequences, above all in bf16 backward (prior training
    283 -> 552 embeddings/s). With a boolean mask, a query that may attend to no key gets zeros,
    as from SDPA, not NaN.
    """
    if q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)
    boolean = mask is not None and mask.dtype == torch.bool
    if boolean:
        scores = scores.masked_fill(~mask, float("-inf"))
    elif mask is not None:
        scores = scores + mask
    weights = scores.float().softmax(dim=-1)
    if boolean:  # rows with every key masked are NaN after the softmax: zero them
        weights = weights.masked_fill(~mask, 0.0)
    weights = weights.to(v.dtype)
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    return weights @ v
