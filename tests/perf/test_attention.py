"""``unclip.models.layers.attention``: the CPU matmul path equals PyTorch's SDPA, masks included,
and the U-Net and prior blocks give the same outputs through it as through SDPA."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unclip.models import layers, prior_transformer, unet_blocks
from unclip.models.layers import attention


def qkv(b: int = 3, heads: int = 2, sq: int = 7, sk: int = 7, d: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, heads, s, d, generator=g) for s in (sq, sk, sk)]


def prior_style_mask(b: int = 3, s: int = 7) -> torch.Tensor:
    """Causal & key padding (B, 1, S, S), row 1 padded from position 2, row 2 fully masked at
    its first query (no key allowed: SDPA gives zeros there)."""
    keys = torch.ones(b, s, dtype=torch.bool)
    keys[1, 2:5] = False
    causal = torch.ones(s, s, dtype=torch.bool).tril()
    mask = (causal & keys[:, None, :])[:, None].clone()
    mask[2, 0, 0, :] = False
    mask[0, 0, 3, :] = False
    return mask


def sdpa(q, k, v, mask=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def test_matches_sdpa_with_causal_and_padding_masks_and_fully_masked_rows():
    q, k, v = (t.requires_grad_(True) for t in qkv())
    mask = prior_style_mask()
    out = attention(q, k, v, mask)
    ref = sdpa(q, k, v, mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    assert out[2, :, 0].abs().max() == 0 and out[0, :, 3].abs().max() == 0  # no key: zeros
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    refs = torch.autograd.grad(ref.square().sum(), (q, k, v))
    for g, r in zip(grads, refs, strict=True):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("mask", ["none", "broadcast_bool", "additive"])
def test_matches_sdpa_for_other_masks(mask):
    q, k, v = qkv(sq=5, sk=9)
    m = None
    if mask == "broadcast_bool":  # the U-Net's (B, 1, 1, HW + L) key mask
        m = torch.tensor([[1] * 9, [1] * 6 + [0] * 3, [1] * 5 + [0] * 4], dtype=torch.bool)
        m = m[:, None, None, :]
    elif mask == "additive":
        m = torch.randn(3, 1, 5, 9)
    torch.testing.assert_close(attention(q, k, v, m), sdpa(q, k, v, m), atol=1e-6, rtol=1e-5)


def test_bf16_close_to_float32():
    q, k, v = qkv(sq=16, sk=20, d=32)
    mask = torch.rand(3, 1, 1, 20) > 0.3
    mask[..., 0] = True
    out = attention(*(t.bfloat16() for t in (q, k, v)), mask)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), sdpa(q, k, v, mask), atol=3e-2, rtol=3e-2)


def test_dropout_only_when_asked():
    q, k, v = qkv()
    torch.testing.assert_close(attention(q, k, v), attention(q, k, v, dropout_p=0.0))
    torch.manual_seed(0)
    assert not torch.allclose(attention(q, k, v, dropout_p=0.5), attention(q, k, v))


def test_other_devices_use_sdpa(monkeypatch):
    calls = []

    def fake_sdpa(q, k, v, attn_mask=None, dropout_p=0.0):
        calls.append((attn_mask, dropout_p))
        return q

    monkeypatch.setattr(layers.F, "scaled_dot_product_attention", fake_sdpa)
    q, k, v = (t.to("meta") for t in qkv())
    mask = prior_style_mask().to("meta")
    assert attention(q, k, v, mask, dropout_p=0.1) is q
    assert calls == [(mask, 0.1)]
    attention(*qkv())  # CPU: the matmul path
    assert len(calls) == 1


@pytest.fixture
def sdpa_blocks(monkeypatch):
    """Swap the blocks' attention for plain SDPA (the reference)."""

    def use_sdpa():
        def ref(q, k, v, mask=None, dropout_p=0.0):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)

        monkeypatch.setattr(unet_blocks, "attention", ref)
        monkeypatch.setattr(prior_transformer, "attention", ref)

    return use_sdpa


@pytest.mark.parametrize("text", [False, True])
def test_unet_matches_sdpa(sdpa_blocks, text):
    from unclip.models.unet import UNet

    torch.manual_seed(0)
    net = UNet(resolution=16, model_channels=16, channel_mult=[1, 2], num_blocks=1,
               attn_resolutions=[8], head_channels=16, image_emb_dim=8, groups=8,
               text_token_dim=6 if text else None).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x, t, cond = torch.randn(3, 3, 16, 16), torch.rand(3), {"image_emb": torch.randn(3, 8)}
    if text:
        cond |= {"text_tokens": torch.randn(3, 5, 6),
                 "text_mask": torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]],
                                           dtype=torch.bool)}
    drop = torch.tensor([False, True, False])
    with torch.no_grad():
        out = net(x, t, cond_drop=drop, **cond)
        sdpa_blocks()
        ref = net(x, t, cond_drop=drop, **cond)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_prior_matches_sdpa(sdpa_blocks):
    torch.manual_seed(0)
    net = prior_transformer.PriorTransformer(dim=16, token_dim=12, width=32, depth=2, heads=4,
                                             text_context=6).eval()
    args = (torch.randn(4, 16), torch.rand(4))
    cond = {"text_emb": torch.randn(4, 16), "text_tokens": torch.randn(4, 6, 12),
            "text_mask": torch.arange(6)[None] < torch.tensor([[2], [6], [3], [0]]),
            "cond_drop": torch.tensor([False, False, True, False])}
    with torch.no_grad():
        out = net(*args, **cond)
        sdpa_blocks()
        ref = net(*args, **cond)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
