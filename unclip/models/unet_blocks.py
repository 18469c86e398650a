"""Building blocks of the ADM/GLIDE U-Net: residual blocks, resampling, attention.

Layouts follow openai/guided-diffusion (ADM, 2105.05233) and GLIDE (2112.10741): residual blocks
with scale-shift normalisation by the conditioning embedding, BigGAN-style up/down-sampling
residual blocks, and attention whose keys/values are the spatial positions *and* the context
tokens (self- and cross-attention in one attention call). Every block works on
(B, C, H, W) tensors and is channels_last friendly: attention reads its input as (B, H*W, C)
without a copy when the input is channels_last.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unclip.models.layers import attention


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 and cast back (ADM ``GroupNorm32``), safe under bf16."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).to(x.dtype)


def group_norm(channels: int, groups: int = 32) -> GroupNorm32:
    """GroupNorm with ``min(groups, channels)`` groups; channels must divide evenly."""
    groups = min(groups, channels)
    if channels % groups:
        raise ValueError(f"{channels} channels cannot be split into {groups} normalisation groups")
    return GroupNorm32(groups, channels, eps=1e-5)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero a module's parameters: residual branches start as the identity (ADM)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class Resample(nn.Module):
    """2x nearest upsampling followed by a 3x3 conv, or a stride-2 3x3 conv (ADM)."""

    def __init__(self, channels: int, mode: str, conv: bool = True) -> None:
        super().__init__()
        if mode not in ("up", "down"):
            raise ValueError(f"Resample mode must be 'up' or 'down', got {mode!r}")
        self.mode = mode
        stride = 2 if mode == "down" else 1
        self.conv = nn.Conv2d(channels, channels, 3, stride, 1) if conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "up":
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            return self.conv(x) if self.conv is not None else x
        return self.conv(x) if self.conv is not None else F.avg_pool2d(x, 2)


class ResBlock(nn.Module):
    """Residual block with scale-shift conditioning (ADM eq. in sec. 3: ``GN(h)(1+s)+b``).

    ``h = conv(SiLU(GN(x)))``; ``h = conv(drop(SiLU(GN(h) * (1 + scale) + shift)))``, with
    ``(scale, shift) = Linear(SiLU(emb))``; output ``skip(x) + h``. With ``resample`` set, the
    block also halves or doubles the resolution of both paths (BigGAN, 1809.11096).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_dim: int,
        dropout: float = 0.0,
        resample: str | None = None,
        groups: int = 32,
    ) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.resample = Resample(in_channels, resample, conv=False) if resample else None
        self.emb = nn.Linear(emb_dim, 2 * out_channels)
        self.norm2 = group_norm(out_channels, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        same = in_channels == out_channels
        self.skip = nn.Identity() if same else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(x))
        if self.resample is not None:
            h, x = self.resample(h), self.resample(x)
        h = self.conv1(h)
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head attention over spatial positions plus optional context tokens (GLIDE).

    Queries come from the normalised feature map; keys and values from the feature map
    concatenated with the context tokens' own key/value projection, so one attention call
    (:func:`~unclip.models.layers.attention`) does self- and cross-attention. ``context_mask``
    (B, L) marks real context tokens (None: all are); spatial keys are always attended.
    """

    def __init__(
        self,
        channels: int,
        head_channels: int = 64,
        context_dim: int | None = None,
        groups: int = 32,
    ) -> None:
        super().__init__()
        if channels % head_channels:
            raise ValueError(
                f"attention width {channels} is not a multiple of head_channels={head_channels}"
            )
        self.heads = channels // head_channels
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.context_kv = nn.Linear(context_dim, 2 * channels) if context_dim else None
        self.proj = zero_module(nn.Linear(channels, channels))

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, c, height, width = x.shape
        # (B, C, H, W) -> (B, HW, C): a view when x is channels_last
        h = self.norm(x).permute(0, 2, 3, 1).reshape(b, height * width, c)
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        mask = None
        if self.context_kv is not None and context is not None:
            ck, cv = self.context_kv(context).chunk(2, dim=-1)
            k, v = torch.cat([k, ck.to(k.dtype)], dim=1), torch.cat([v, cv.to(v.dtype)], dim=1)
            if context_mask is not None:
                spatial = context_mask.new_ones(b, height * width)
                mask = torch.cat([spatial, context_mask], dim=1)[:, None, None, :]
        q, k, v = (z.unflatten(-1, (self.heads, -1)).transpose(1, 2) for z in (q, k, v))
        out = attention(q, k, v, mask)  # softmax(QK^T/sqrt(d))V
        out = self.proj(out.transpose(1, 2).reshape(b, height * width, c))
        return x + out.reshape(b, height, width, c).permute(0, 3, 1, 2)
