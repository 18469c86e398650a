"""The unCLIP diffusion prior network: a causal, decoder-only transformer over CLIP embeddings.

unCLIP (2204.06125 sec. 2.1, "Diffusion prior"): the sequence is, in order, the encoded text
tokens, the CLIP text embedding, an embedding of the diffusion timestep, the noised CLIP image
embedding, and a final learned query whose output is the prediction. Attention is causal over
this sequence and padding tokens are masked as keys. The network knows nothing about diffusion:
whether its output is read as x0, eps or v is the diffusion's choice.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from unclip.models.layers import TimestepEmbedder, attention, drop_mask

N_FIXED = 4  # text embedding, timestep, noised image embedding, query


def trim_padding(
    text_tokens: torch.Tensor, text_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut the trailing positions that are padding in every row (at least one stays).

    Exact for :class:`PriorTransformer`: padding is never attended to and the fixed tokens
    follow the text. The length is read on the host (one sync on a GPU), so callers do it once
    per batch: ``PriorModule`` before the batch reaches the device, and once per sampling call.
    """
    length = text_mask.shape[1]
    if length == 0:
        return text_tokens, text_mask
    positions = torch.arange(1, length + 1, device=text_mask.device)
    keep = max(int((positions * text_mask.bool().any(0)).max()), 1)
    if keep == length:
        return text_tokens, text_mask
    return text_tokens[:, :keep], text_mask[:, :keep]


class PriorTextConditioner(nn.Module):
    """Projects text tokens and the text embedding to the model width; learned null when dropped.

    Classifier-free guidance (2207.12598): rows in ``drop_mask`` (forced by ``cond_drop`` or,
    in training, drawn with probability ``drop_prob``) see the learned null embedding and a text
    sequence holding a single visible learned null token, so the unconditional prediction does
    not depend on the caption or its length.
    """

    def __init__(self, dim: int, token_dim: int, width: int, drop_prob: float) -> None:
        super().__init__()
        if not 0.0 <= drop_prob <= 1.0:
            raise ValueError(f"cond_drop_prob must be in [0, 1], got {drop_prob}")
        self.drop_prob = drop_prob
        self.token_proj = nn.Linear(token_dim, width)
        self.emb_proj = nn.Linear(dim, width)
        self.null_token = nn.Parameter(torch.randn(width) * 0.02)
        self.null_emb = nn.Parameter(torch.randn(width) * 0.02)

    def forward(
        self,
        text_emb: torch.Tensor,
        text_tokens: torch.Tensor,
        text_mask: torch.Tensor,
        cond_drop: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(tokens (B,L,width), mask (B,L), emb (B,width), dropped (B,))``."""
        batch, length = text_mask.shape
        dropped = drop_mask(batch, self.drop_prob, cond_drop, self.training, text_emb.device)
        dtype = self.emb_proj.weight.dtype
        emb = self.emb_proj(text_emb.to(dtype))
        tokens = self.token_proj(text_tokens.to(dtype))
        keep = ~dropped
        emb = torch.where(keep[:, None], emb, self.null_emb.to(emb.dtype))
        tokens = torch.where(keep[:, None, None], tokens, self.null_token.to(tokens.dtype))
        only_first = torch.arange(length, device=text_mask.device) == 0
        mask = torch.where(keep[:, None], text_mask, only_first[None])
        return tokens, mask, emb, dropped


class PriorBlock(nn.Module):
    """Pre-LN transformer block (2002.04745) with :func:`unclip.models.layers.attention`."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width)
        )

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """``x`` (B,S,width); ``attn_mask`` (B,1,S,S) bool, True where attention is allowed."""
        b, s, w = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, s, 3, self.heads, w // self.heads).unbind(2)
        a = attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        x = x + self.out(a.transpose(1, 2).reshape(b, s, w))
        return x + self.mlp(self.norm2(x))


class PriorTransformer(nn.Module):
    """Causal transformer predicting a CLIP image embedding from text (2204.06125 sec. 2.1).

    Args:
        dim: CLIP embedding width D (image and text embeddings).
        token_dim: width W of the per-token text encodings.
        width, depth, heads: transformer size.
        text_context: the most text tokens a caption may have (positional table size).
        mlp_ratio, dropout: block MLP expansion and dropout.
        cond_drop_prob: training-time probability of the null text condition (paper: 0.1).
    """

    def __init__(
        self,
        dim: int,
        token_dim: int,
        width: int = 512,
        depth: int = 6,
        heads: int = 8,
        text_context: int = 77,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        cond_drop_prob: float = 0.1,
    ) -> None:
        super().__init__()
        self.dim, self.token_dim, self.text_context = dim, token_dim, text_context
        self.cond = PriorTextConditioner(dim, token_dim, width, cond_drop_prob)
        self.time_embed = TimestepEmbedder(width)
        self.x_proj = nn.Linear(dim, width)
        self.query = nn.Parameter(torch.randn(width) * 0.02)
        self.pos_text = nn.Parameter(torch.randn(text_context, width) * 0.02)
        self.pos_fixed = nn.Parameter(torch.randn(N_FIXED, width) * 0.02)
        self.blocks = nn.ModuleList(
            PriorBlock(width, heads, mlp_ratio, dropout) for _ in range(depth)
        )
        self.norm_out = nn.LayerNorm(width)
        self.head = nn.Linear(width, dim)
        self._init_weights(depth)

    def _init_weights(self, depth: int) -> None:
        # GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 depth).
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear) and not name.startswith("time_embed"):
                std = 0.02 / math.sqrt(2 * depth) if name.endswith(("out", "mlp.3")) else 0.02
                nn.init.normal_(module.weight, std=std)
                nn.init.zeros_(module.bias)

    def _check_inputs(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        text_emb: torch.Tensor,
        text_tokens: torch.Tensor,
        text_mask: torch.Tensor,
        cond_drop: torch.Tensor | None,
    ) -> None:
        b = x_t.shape[0]
        expected = {
            "x_t": (x_t, (b, self.dim)),
            "t": (t, (b,)),
            "text_emb": (text_emb, (b, self.dim)),
        }
        for name, (tensor, shape) in expected.items():
            if tuple(tensor.shape) != shape:
                raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {shape}")
        if text_tokens.ndim != 3 or text_tokens.shape[0] != b:
            raise ValueError(f"text_tokens must be (B={b}, L, W), got {tuple(text_tokens.shape)}")
        _, length, width = text_tokens.shape
        if width != self.token_dim:
            raise ValueError(f"text_tokens width {width} != network token_dim {self.token_dim}")
        if not 1 <= length <= self.text_context:
            raise ValueError(f"text length {length} outside 1..text_context={self.text_context}")
        if tuple(text_mask.shape) != (b, length) or text_mask.dtype != torch.bool:
            raise ValueError(
                f"text_mask must be bool of shape {(b, length)}, got "
                f"{text_mask.dtype} {tuple(text_mask.shape)}"
            )
        if cond_drop is not None and tuple(cond_drop.shape) != (b,):
            raise ValueError(f"cond_drop must have shape ({b},), got {tuple(cond_drop.shape)}")

    def hidden_states(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        *,
        text_emb: torch.Tensor,
        text_tokens: torch.Tensor,
        text_mask: torch.Tensor,
        cond_drop: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Final hidden states ``(B, L+4, width)`` of the whole sequence, and its key mask.

        Padding costs compute but changes nothing: cut it once per batch with
        :func:`trim_padding` (no host read happens here, so a step never waits for the GPU).
        """
        self._check_inputs(x_t, t, text_emb, text_tokens, text_mask, cond_drop)
        length = text_tokens.shape[1]
        tokens, mask, emb, _ = self.cond(text_emb, text_tokens, text_mask, cond_drop)

        dtype = tokens.dtype
        fixed = torch.stack(
            [
                emb,
                self.time_embed(t).to(dtype),
                self.x_proj(x_t.to(self.x_proj.weight.dtype)).to(dtype),
                self.query.to(dtype).expand_as(emb),
            ],
            dim=1,
        )
        x = torch.cat(
            [tokens + self.pos_text[:length].to(dtype), fixed + self.pos_fixed.to(dtype)], dim=1
        )
        key_mask = torch.cat([mask, mask.new_ones(mask.shape[0], N_FIXED)], dim=1)
        s = x.shape[1]
        causal = torch.ones(s, s, dtype=torch.bool, device=x.device).tril()
        # A query always sees itself, so rows of padding never attend to nothing (no NaN).
        eye = torch.eye(s, dtype=torch.bool, device=x.device)
        attn_mask = (causal & key_mask[:, None, :]) | eye
        attn_mask = attn_mask[:, None]
        for block in self.blocks:
            x = block(x, attn_mask)
        return x, key_mask

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        *,
        text_emb: torch.Tensor,
        text_tokens: torch.Tensor,
        text_mask: torch.Tensor,
        cond_drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict from the noised image embedding ``x_t`` (B,D) at time ``t`` (B,) -> (B,D) fp32.

        ``text_mask`` is bool (B,L), True for real tokens; ``cond_drop`` (B,) bool forces the
        null text condition on its rows.
        """
        h, _ = self.hidden_states(
            x_t,
            t,
            text_emb=text_emb,
            text_tokens=text_tokens,
            text_mask=text_mask,
            cond_drop=cond_drop,
        )
        return self.head(self.norm_out(h[:, -1])).float()
