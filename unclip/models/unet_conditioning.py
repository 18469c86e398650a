"""Conditioning of the unCLIP decoder: CLIP image embedding and optional caption tokens.

unCLIP (2204.06125 sec. 2.1): the CLIP image embedding is projected and added to the timestep
embedding, and projected into ``K = 4`` extra context tokens that the attention layers attend
to, next to the (optional) caption token encodings. For classifier-free guidance the image
embedding is replaced by a learned null 10% of the time and the caption 50% of the time
(independently); ``cond_drop`` forces both to the null for chosen rows, ``text_drop`` the caption
alone (two-condition guidance, ``unclip.diffusion.guidance.TwoConditionGuidance``).

Layout map (``layout_res > 0``, this project's addition): the embedding (or the null) is also
projected linearly to a ``(layout_channels, layout_res, layout_res)`` feature map that the U-Net
reads as extra input channels. Convolutions and FiLM are spatially uniform, so without it the
network must discover where the embedding puts each object through attention alone; on shapes a
linear map from the image embedding recovers 73% of the variance of the 8x8 image (val), a
direct route from embedding to layout.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from unclip.models.layers import drop_mask


class Conditioning(NamedTuple):
    """What the U-Net receives: an additive embedding and attention context (or ``None``)."""

    emb: torch.Tensor | None  # (B, emb_dim) added to the timestep embedding
    context: torch.Tensor | None  # (B, L, context_dim)
    context_mask: torch.Tensor | None  # (B, L) bool, True = real token; None: all are real
    layout: torch.Tensor | None = None  # (B, layout_channels, layout_res, layout_res)


class DecoderConditioner(nn.Module):
    """Maps ``(image_emb, text_tokens, text_mask, cond_drop, text_drop)`` to a Conditioning.

    Args:
        emb_dim: width of the U-Net's timestep embedding.
        context_dim: width of the context tokens the attention layers read.
        image_emb_dim: CLIP image embedding width ``D``; ``None`` disables image conditioning.
        num_image_tokens: ``K``, the context tokens projected from the image embedding.
        text_token_dim: CLIP token encoding width ``W``; ``None`` disables caption conditioning.
        image_drop_prob, text_drop_prob: training-time null probabilities (paper: 0.1, 0.5).
        normalize_image_emb: L2-normalise the image embedding first, so the decoder sees only its
            direction (CLIP's geometry; the prior's inverse normalisation returns unit vectors).
        layout_res, layout_channels: side and channels of the layout map (0: no map).
    """

    def __init__(
        self,
        emb_dim: int,
        context_dim: int,
        image_emb_dim: int | None = None,
        num_image_tokens: int = 4,
        text_token_dim: int | None = None,
        image_drop_prob: float = 0.1,
        text_drop_prob: float = 0.5,
        normalize_image_emb: bool = True,
        layout_res: int = 0,
        layout_channels: int = 16,
    ) -> None:
        super().__init__()
        for name, p in (("image_drop_prob", image_drop_prob), ("text_drop_prob", text_drop_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        if num_image_tokens < 0:
            raise ValueError(f"num_image_tokens must be >= 0, got {num_image_tokens}")
        if layout_res < 0 or (layout_res and layout_channels < 1):
            raise ValueError(f"layout_res must be >= 0 and layout_channels >= 1, got "
                             f"{layout_res} and {layout_channels}")
        if layout_res and not image_emb_dim:
            raise ValueError("layout_res > 0 needs image conditioning (image_emb_dim)")
        self.layout_res, self.layout_channels = layout_res, layout_channels
        self.image_emb_dim, self.text_token_dim = image_emb_dim, text_token_dim
        self.num_image_tokens, self.context_dim = num_image_tokens, context_dim
        self.image_drop_prob, self.text_drop_prob = image_drop_prob, text_drop_prob
        self.normalize_image_emb = normalize_image_emb
        if image_emb_dim:
            self.null_image = nn.Parameter(torch.randn(image_emb_dim) / image_emb_dim**0.5)
            self.image_to_emb = nn.Linear(image_emb_dim, emb_dim)
            self.image_to_tokens = nn.Linear(image_emb_dim, num_image_tokens * context_dim)
        if layout_res:
            self.image_to_layout = nn.Linear(image_emb_dim, layout_channels * layout_res**2)
        if text_token_dim:
            self.text_norm = nn.LayerNorm(text_token_dim)
            self.text_to_context = nn.Linear(text_token_dim, context_dim)
            self.null_text = nn.Parameter(torch.randn(context_dim) / context_dim**0.5)
        self.context_norm = nn.LayerNorm(context_dim) if self.has_context else None

    @property
    def has_context(self) -> bool:
        """Whether any context tokens reach the attention layers."""
        return bool(self.image_emb_dim and self.num_image_tokens) or bool(self.text_token_dim)

    def drop_masks(
        self, batch: int, cond_drop: torch.Tensor | None, device: torch.device,
        text_drop: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows whose image embedding / caption get the learned null (independent draws);
        ``text_drop`` rows drop the caption only."""
        image = drop_mask(batch, self.image_drop_prob, cond_drop, self.training, device)
        text = drop_mask(batch, self.text_drop_prob, cond_drop, self.training, device)
        if text_drop is not None:
            text = text | text_drop.to(device=device, dtype=torch.bool)
        return image, text

    def forward(
        self,
        batch: int,
        image_emb: torch.Tensor | None = None,
        text_tokens: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        cond_drop: torch.Tensor | None = None,
        device: torch.device | None = None,
        text_drop: torch.Tensor | None = None,
    ) -> Conditioning:
        """Build the conditioning of a batch of ``batch`` rows (see the class docstring)."""
        device = device or next(self.parameters(), torch.empty(0)).device
        self._check(batch, image_emb, text_tokens, text_mask, cond_drop, text_drop)
        drop_image, drop_text = self.drop_masks(batch, cond_drop, device, text_drop)
        emb, tokens, mask, layout = None, [], None, None
        if self.image_emb_dim:
            if image_emb is None:  # allowed only when every row is dropped (checked above)
                z = self.null_image.expand(batch, -1)
            else:
                z = image_emb.to(self.null_image.dtype)
                z = F.normalize(z, dim=-1) if self.normalize_image_emb else z
                z = torch.where(drop_image[:, None], self.null_image.to(z.dtype), z)
            emb = self.image_to_emb(z)
            if self.num_image_tokens:
                tokens.append(self.image_to_tokens(z).unflatten(-1, (self.num_image_tokens, -1)))
            if self.layout_res:
                # sqrt(D) * unit vector: unit mean square per dimension, so the map starts at O(1)
                layout = self.image_to_layout(z * self.image_emb_dim**0.5).unflatten(
                    -1, (self.layout_channels, self.layout_res, self.layout_res))
        if self.text_token_dim:
            text, mask = self._text_context(batch, text_tokens, text_mask, drop_text, device)
            tokens.append(text)
        if not tokens:
            return Conditioning(emb, None, None, layout)
        context = self.context_norm(torch.cat([t.to(tokens[0].dtype) for t in tokens], dim=1))
        return Conditioning(emb, context, self._context_mask(mask, context.shape[1]), layout)

    @staticmethod
    def _context_mask(text_mask: torch.Tensor | None, length: int) -> torch.Tensor | None:
        """The (B, length) mask of image tokens (all real) then caption tokens; None without
        captions: a mask of ones only costs (on CUDA it rules out the flash kernel)."""
        if text_mask is None:
            return None
        image = text_mask.new_ones(text_mask.shape[0], length - text_mask.shape[1])
        return torch.cat([image, text_mask], dim=1)

    def _text_context(
        self,
        batch: int,
        text_tokens: torch.Tensor | None,
        text_mask: torch.Tensor | None,
        drop: torch.Tensor,
        device: torch.device,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected caption tokens; dropped or absent captions become the single null token."""
        null = self.null_text[None, None].expand(batch, 1, -1)
        if text_tokens is None:  # no caption: variations from an image embedding alone
            return null, torch.ones(batch, 1, dtype=torch.bool, device=device)
        text = self.text_to_context(self.text_norm(text_tokens.to(self.null_text.dtype)))
        mask = (
            text_mask.to(device=device, dtype=torch.bool)
            if text_mask is not None
            else torch.ones(text.shape[:2], dtype=torch.bool, device=device)
        )
        # a dropped caption: position 0 holds the null token, all other positions are masked
        first = torch.zeros_like(mask)
        first[:, 0] = True
        text = torch.where(drop[:, None, None] & first[..., None], null.to(text.dtype), text)
        mask = torch.where(drop[:, None], first, mask)
        return text, mask

    def _check(
        self,
        batch: int,
        image_emb: torch.Tensor | None,
        text_tokens: torch.Tensor | None,
        text_mask: torch.Tensor | None,
        cond_drop: torch.Tensor | None,
        text_drop: torch.Tensor | None = None,
    ) -> None:
        for name, rows in (("cond_drop", cond_drop), ("text_drop", text_drop)):
            if rows is not None and rows.shape != (batch,):
                raise ValueError(f"{name} must have shape ({batch},), got {tuple(rows.shape)}")
        if image_emb is not None:
            if not self.image_emb_dim:
                raise ValueError("image_emb given, but this U-Net has no image conditioning "
                                 "(image_emb_dim=None)")
            if image_emb.shape != (batch, self.image_emb_dim):
                raise ValueError(f"image_emb must have shape ({batch}, {self.image_emb_dim}), "
                                 f"got {tuple(image_emb.shape)}")
        elif self.image_emb_dim and not (cond_drop is not None and bool(cond_drop.all())):
            raise ValueError("this U-Net is conditioned on a CLIP image embedding: pass image_emb "
                             "(or cond_drop=True for every row to sample unconditionally)")
        if text_tokens is not None:
            if not self.text_token_dim:
                raise ValueError("text_tokens given, but this U-Net has no caption conditioning "
                                 "(text_token_dim=None)")
            if text_tokens.ndim != 3 or text_tokens.shape[0] != batch \
                    or text_tokens.shape[2] != self.text_token_dim:
                raise ValueError(f"text_tokens must have shape ({batch}, L, "
                                 f"{self.text_token_dim}), got {tuple(text_tokens.shape)}")
            if text_mask is not None and text_mask.shape != text_tokens.shape[:2]:
                raise ValueError(f"text_mask must have shape {tuple(text_tokens.shape[:2])}, "
                                 f"got {tuple(text_mask.shape)}")
        elif text_mask is not None:
            raise ValueError("text_mask given without text_tokens")
