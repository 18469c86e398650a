"""ADM/GLIDE-style U-Net for the unCLIP decoder and its upsamplers.

The network maps ``(x_t, t, cond) -> prediction`` and knows nothing about diffusion: whether the
output is eps, x0 or v is the diffusion's configuration. Layout as openai/guided-diffusion
(2105.05233): an input conv, ``len(channel_mult)`` levels of ``num_blocks`` residual blocks (with
attention at ``attn_resolutions``) separated by resampling residual blocks, a middle
ResBlock-Attention-ResBlock, the mirrored decoder with skip connections, and a zero-initialised
output conv.

Conditioning (unCLIP, 2204.06125 sec. 2.1): see :class:`DecoderConditioner`. Upsamplers
(``low_res_channels > 0``) take the low-resolution image, bilinearly resized to the output size
and concatenated to ``x_t`` (SR3 2104.07636, CDM 2106.15282), and an augmentation level
``aug_level`` in [0, 1] (the noise level of the low-res corruption, CDM sec. 4.1) embedded like
the timestep and added to the conditioning embedding.

Coordinate channels (``coord_channels=True``, CoordConv 1807.03247): two extra input channels
holding each pixel's x and y in [-1, 1]. Convolutions are translation-equivariant and only see
where they are through the zero padding, so without them a decoder must learn absolute position
("in the top left", "to the left of") from border effects; with them every feature can read it.

Layout map (``layout_res > 0``): a linear projection of the image embedding to a small feature
map (see :class:`DecoderConditioner`), bilinearly resized to the input and concatenated to it,
as an upsampler's low-res image is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from unclip.models.layers import TimestepEmbedder
from unclip.models.unet_blocks import AttentionBlock, ResBlock, group_norm, zero_module
from unclip.models.unet_conditioning import DecoderConditioner


class UNetLevel(nn.Module):
    """One ResBlock, optionally followed by attention: the unit the encoder and decoder stack."""

    def __init__(self, res: ResBlock, attn: AttentionBlock | None) -> None:
        super().__init__()
        self.res, self.attn = res, attn

    def forward(
        self,
        x: torch.Tensor,
        emb: torch.Tensor,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self.res(x, emb)
        return self.attn(x, context, context_mask) if self.attn is not None else x


class UNet(nn.Module):
    """Image denoiser conditioned on CLIP embeddings (and, as an upsampler, a low-res image).

    Args:
        resolution: output side length in pixels (square images).
        in_channels, out_channels: image channels of ``x_t`` and of the prediction.
        model_channels: width of the first level; level ``i`` has ``model_channels * mult[i]``.
        channel_mult: per-level channel multipliers; ``len`` levels, each but the last halving.
        num_blocks: residual blocks per level (the decoder uses ``num_blocks + 1``, as ADM).
        attn_resolutions: feature-map side lengths (pixels) at which attention follows each block.
        head_channels: channels per attention head (GLIDE: 64).
        dropout: dropout inside residual blocks.
        emb_dim: timestep/conditioning embedding width (default ``4 * model_channels``).
        context_dim: width of the attention context tokens (default ``emb_dim``).
        image_emb_dim, num_image_tokens, text_token_dim, image_drop_prob, text_drop_prob,
        normalize_image_emb, layout_res, layout_channels: see :class:`DecoderConditioner`.
        low_res_channels: channels of the low-res conditioning image (0 for a base decoder).
        coord_channels: append each pixel's (x, y) in [-1, 1] to the input (CoordConv).
        groups: GroupNorm groups.
    """

    def __init__(
        self,
        resolution: int = 64,
        in_channels: int = 3,
        out_channels: int = 3,
        model_channels: int = 128,
        channel_mult: Sequence[int] = (1, 2, 3, 4),
        num_blocks: int = 2,
        attn_resolutions: Sequence[int] = (32, 16, 8),
        head_channels: int = 64,
        dropout: float = 0.0,
        emb_dim: int | None = None,
        context_dim: int | None = None,
        image_emb_dim: int | None = None,
        num_image_tokens: int = 4,
        text_token_dim: int | None = None,
        image_drop_prob: float = 0.1,
        text_drop_prob: float = 0.5,
        normalize_image_emb: bool = True,
        layout_res: int = 0,
        layout_channels: int = 16,
        low_res_channels: int = 0,
        coord_channels: bool = False,
        groups: int = 32,
    ) -> None:
        super().__init__()
        levels = len(channel_mult)
        if levels < 1 or num_blocks < 1:
            raise ValueError("channel_mult needs at least one level and num_blocks must be >= 1")
        if resolution % 2 ** (levels - 1):
            raise ValueError(f"resolution {resolution} is not divisible by 2^{levels - 1} "
                             f"(channel_mult has {levels} levels)")
        reachable = {resolution // 2**i for i in range(levels)}
        if unknown := set(attn_resolutions) - reachable:
            raise ValueError(f"attn_resolutions {sorted(unknown)} are not feature-map sizes of "
                             f"this U-Net (it has {sorted(reachable, reverse=True)})")
        self.resolution, self.in_channels, self.out_channels = resolution, in_channels, out_channels
        self.low_res_channels, self.coord_channels = low_res_channels, bool(coord_channels)
        emb_dim = emb_dim or 4 * model_channels
        context_dim = context_dim or emb_dim

        self.time_embed = TimestepEmbedder(emb_dim)
        self.aug_embed = TimestepEmbedder(emb_dim) if low_res_channels else None
        self.conditioner = DecoderConditioner(
            emb_dim, context_dim, image_emb_dim, num_image_tokens, text_token_dim,
            image_drop_prob, text_drop_prob, normalize_image_emb, layout_res, layout_channels,
        )
        ctx = context_dim if self.conditioner.has_context else None

        def level(cin: int, cout: int, res: int, resample: str | None = None) -> UNetLevel:
            block = ResBlock(cin, cout, emb_dim, dropout, resample, groups)
            attn = (AttentionBlock(cout, head_channels, ctx, groups)
                    if res in attn_resolutions and resample is None else None)
            return UNetLevel(block, attn)

        extra = (low_res_channels + (2 if coord_channels else 0)
                 + (layout_channels if layout_res else 0))
        self.input_conv = nn.Conv2d(in_channels + extra, model_channels, 3, padding=1)
        self.down = nn.ModuleList()
        skips, ch, res = [model_channels], model_channels, resolution
        for i, mult in enumerate(channel_mult):
            for _ in range(num_blocks):
                self.down.append(level(ch, model_channels * mult, res))
                ch = model_channels * mult
                skips.append(ch)
            if i < levels - 1:
                self.down.append(level(ch, ch, res, "down"))
                res //= 2
                skips.append(ch)
        # middle: ResBlock-Attention-ResBlock (ADM), attention only if `res` is listed
        self.middle = nn.ModuleList([
            level(ch, ch, res),
            UNetLevel(ResBlock(ch, ch, emb_dim, dropout, None, groups), None),
        ])
        self.up = nn.ModuleList()
        for i, mult in reversed(list(enumerate(channel_mult))):
            for _ in range(num_blocks + 1):
                self.up.append(level(ch + skips.pop(), model_channels * mult, res))
                ch = model_channels * mult
            if i > 0:
                self.up.append(level(ch, ch, res, "up"))
                res *= 2
        self.out_norm = group_norm(ch, groups)
        self.out_conv = zero_module(nn.Conv2d(ch, out_channels, 3, padding=1))
        self.to(memory_format=torch.channels_last)

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        *,
        image_emb: torch.Tensor | None = None,
        text_tokens: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        low_res: torch.Tensor | None = None,
        aug_level: torch.Tensor | None = None,
        cond_drop: torch.Tensor | None = None,
        text_drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict from ``x_t`` (B, C, H, W) at times ``t`` (B,) in [0, 1]; returns (B, C, H, W).

        ``low_res`` (B, C, h, w) is required by upsamplers; ``aug_level`` (B,) in [0, 1] is the
        noise-augmentation level applied to it (``None`` = 0, a clean low-res image). ``cond_drop``
        (B,) bool replaces the image and caption conditions of its rows by the learned nulls;
        ``text_drop`` (B,) bool the caption condition alone.
        """
        b = x_t.shape[0]
        self._check(x_t, t, low_res, aug_level)
        dtype = self.input_conv.weight.dtype
        emb = self.time_embed(t)
        cond = self.conditioner(b, image_emb, text_tokens, text_mask, cond_drop, device=x_t.device,
                                text_drop=text_drop)
        if cond.emb is not None:
            emb = emb + cond.emb
        x = x_t.to(dtype)
        if self.low_res_channels:
            x = torch.cat([x, resized_like(low_res.to(dtype), x_t)], dim=1)
            level = aug_level if aug_level is not None else torch.zeros_like(t)
            emb = emb + self.aug_embed(level.to(t.device))
        if self.coord_channels:
            x = torch.cat([x, coordinate_grid(x)], dim=1)
        if cond.layout is not None:
            x = torch.cat([x, resized_like(cond.layout.to(dtype), x_t)], dim=1)
        h = self.input_conv(x.contiguous(memory_format=torch.channels_last))
        skips = [h]
        for block in self.down:
            h = block(h, emb, cond.context, cond.context_mask)
            skips.append(h)
        for block in self.middle:
            h = block(h, emb, cond.context, cond.context_mask)
        for block in self.up:
            if block.res.resample is None:
                h = torch.cat([h, skips.pop().to(h.dtype)], dim=1)
            h = block(h, emb, cond.context, cond.context_mask)
        return self.out_conv(F.silu(self.out_norm(h))).to(x_t.dtype)

    def _check(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        low_res: torch.Tensor | None,
        aug_level: torch.Tensor | None,
    ) -> None:
        b = x_t.shape[0]
        if x_t.ndim != 4 or x_t.shape[1] != self.in_channels:
            raise ValueError(f"x_t must be (B, {self.in_channels}, H, W), got {tuple(x_t.shape)}")
        if t.shape != (b,):
            raise ValueError(f"t must have shape ({b},), got {tuple(t.shape)}")
        if self.low_res_channels:
            if low_res is None:
                raise ValueError("this U-Net is an upsampler: pass low_res (B, C, h, w)")
            if low_res.ndim != 4 or low_res.shape[:2] != (b, self.low_res_channels):
                raise ValueError(f"low_res must be ({b}, {self.low_res_channels}, h, w), "
                                 f"got {tuple(low_res.shape)}")
            if aug_level is not None and aug_level.shape != (b,):
                raise ValueError(f"aug_level must have shape ({b},), got {tuple(aug_level.shape)}")
        elif low_res is not None or aug_level is not None:
            raise ValueError("low_res/aug_level given, but this U-Net is not an upsampler "
                             "(low_res_channels=0)")


def resized_like(maps: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``maps`` (B, C, h, w) bilinearly resized to ``x``'s height and width: the low-res image of
    an upsampler and the layout map enter the U-Net this way."""
    return F.interpolate(maps, size=x.shape[-2:], mode="bilinear", align_corners=False)


def coordinate_grid(x: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) pixel-centre coordinates of ``x`` in [-1, 1]: channel 0 is x (left to right),
    channel 1 is y (top to bottom), as CoordConv (1807.03247); independent of the resolution."""
    b, _, height, width = x.shape
    ys = torch.linspace(-1.0, 1.0, height, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1.0, 1.0, width, device=x.device, dtype=x.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y]).expand(b, 2, height, width)
