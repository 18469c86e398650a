"""Proposed changes to other parts of the package, applied as monkeypatches for measurement.

Each entry is a change we propose for a file owned elsewhere; ``--patch NAME`` on a benchmark
applies it in a separate worker so its gain is measured side by side with the unpatched code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Setter = Callable[[Any, str, Any], None]
PATCHES: dict[str, Callable[[Setter], None]] = {}


def patch(fn: Callable[[Setter], None]) -> Callable[[Setter], None]:
    PATCHES[fn.__name__] = fn
    return fn


def apply(name: str, set_attr: Setter = setattr) -> None:
    """Apply the patch called ``name`` (a ValueError lists the choices).

    ``set_attr`` does the assignments (``setattr``; tests pass ``monkeypatch.setattr``, which
    undoes them).
    """
    if name not in PATCHES:
        raise ValueError(f"unknown patch {name!r}; choose one of {', '.join(PATCHES)}")
    PATCHES[name](set_attr)


@patch
def attention_math_cpu(set_attr: Setter = setattr) -> None:
    """unet_blocks.AttentionBlock: on CPU, attention as two bf16 matmuls + fp32 softmax.

    PyTorch's CPU flash-attention kernel is slow in bf16 backward for these shapes (64 queries,
    68 keys, 32-wide heads: 62 ms vs 12 ms for the explicit matmuls, fwd+bwd, 1 thread); CUDA
    keeps ``scaled_dot_product_attention`` (flash / memory-efficient kernels).
    """
    import torch

    from unclip.models import unet_blocks

    def forward(self, x, context=None, context_mask=None):
        b, c, height, width = x.shape
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
        out = cpu_attention(q, k, v, mask)
        out = self.proj(out.transpose(1, 2).reshape(b, height * width, c))
        return x + out.reshape(b, height, width, c).permute(0, 3, 1, 2)

    set_attr(unet_blocks.AttentionBlock, "forward", forward)


@patch
def no_image_only_mask(set_attr: Setter = setattr) -> None:
    """unet_conditioning.DecoderConditioner: no context mask when every token is real.

    Without caption tokens (the base decoder and upsamplers) all K image tokens are real, so
    the (B, HW + K) boolean mask only costs: on CUDA it rules out the flash kernel.
    """
    from unclip.models import unet_conditioning

    original = unet_conditioning.DecoderConditioner.forward

    def forward(self, batch, image_emb=None, text_tokens=None, text_mask=None, cond_drop=None,
                device=None):
        out = original(self, batch, image_emb, text_tokens, text_mask, cond_drop, device)
        if not self.text_token_dim:
            out = out._replace(context_mask=None)
        return out

    set_attr(unet_conditioning.DecoderConditioner, "forward", forward)


@patch
def foreach_adamw(set_attr: Setter = setattr) -> None:
    """configs/{decoder,prior}/*.yaml optimizer: ``foreach: true`` (CPU's default is the
    per-parameter loop; ``fused`` is refused by Lightning together with gradient clipping)."""
    import functools

    import torch

    set_attr(torch.optim.AdamW, "__init__",
             functools.partialmethod(torch.optim.AdamW.__init__, foreach=True))


@patch
def math_and_mask(set_attr: Setter = setattr) -> None:
    """Both attention changes above."""
    attention_math_cpu(set_attr)
    no_image_only_mask(set_attr)


def cpu_attention(q, k, v, mask=None, dropout_p: float = 0.0, training: bool = False):
    """softmax(q k^T / sqrt(d)) v as two matmuls and an fp32 softmax (CPU); SDPA elsewhere.

    ``mask`` is boolean, True where attention is allowed (SDPA's convention). PyTorch's CPU
    flash-attention kernel is slow for short sequences in bf16 backward; on CUDA the fused
    kernels win and are kept.
    """
    import torch.nn.functional as F

    if q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                              dropout_p=dropout_p if training else 0.0)
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.float().softmax(dim=-1).to(v.dtype)
    if training and dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    return weights @ v


@patch
def prior_attention_math_cpu(set_attr: Setter = setattr) -> None:
    """prior_transformer.PriorBlock: attention through :func:`cpu_attention` on CPU.

    The prior's sequences are short (caption tokens + 4) and its batches large (256): PyTorch's
    CPU flash kernel takes 60% of a bf16 training step, 52% in its backward alone.
    """
    from unclip.models import prior_transformer

    def forward(self, x, attn_mask):
        b, s, w = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, s, 3, self.heads, w // self.heads).unbind(2)
        a = cpu_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask,
                          self.dropout, self.training)
        x = x + self.out(a.transpose(1, 2).reshape(b, s, w))
        return x + self.mlp(self.norm2(x))

    set_attr(prior_transformer.PriorBlock, "forward", forward)


def bucket_losses_sync_free(loss, t, buckets: int) -> dict:
    """decoder_logging.bucket_losses without host reads: per-bucket sums and counts with
    ``index_add_``; an empty bucket's mean is NaN instead of a missing key (0.75^B odds with 4
    buckets: 1e-4 at B = 32)."""
    import torch

    index = (t.detach().float() * buckets).long().clamp_(0, buckets - 1)
    values = loss.detach().float()
    sums = torch.zeros(buckets, device=values.device).index_add_(0, index, values)
    counts = torch.zeros(buckets, device=values.device).index_add_(0, index,
                                                                   torch.ones_like(values))
    means = sums / counts
    return {f"t{i / buckets:.2f}-{(i + 1) / buckets:.2f}": means[i] for i in range(buckets)}


@patch
def training_syncs(set_attr: Setter = setattr) -> None:
    """No host-device syncs in the decoder/upsampler training step.

    - lit/decoder.py uses :func:`bucket_losses_sync_free` (decoder_logging.bucket_losses reads
      ``rows.any()`` and indexes with a boolean mask per bucket: 6-7 syncs a step);
    - augment.LowResAugment.train noises without noise_augment's ``bool((level < 0).any())``
      range checks (2 syncs a step): its levels are drawn inside [0, max_level].
    """
    import torch

    from unclip import augment
    from unclip.lit import decoder

    set_attr(decoder, "bucket_losses", bucket_losses_sync_free)

    def train(self, low_res, diffusion, generator=None):
        b, device = low_res.shape[0], low_res.device
        if self.blur_prob > 0:
            rows = torch.rand(b, generator=generator, device=device) < self.blur_prob
            blurred = augment.gaussian_blur(low_res, self.blur_kernel, self.blur_sigma)
            low_res = torch.where(rows[:, None, None, None], blurred, low_res)
        level = self.max_level * torch.rand(b, generator=generator, device=device)
        eps = torch.randn(low_res.shape, generator=generator, device=device,
                          dtype=low_res.dtype)  # noise_augment minus its range checks
        return diffusion.q_sample(low_res, level, eps).to(low_res.dtype), level

    set_attr(augment.LowResAugment, "train", train)
