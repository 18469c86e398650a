"""``torch.compile`` of the decoder U-Net works on CPU (inductor), forward and backward, in fp32
and under bf16 autocast, and matches eager execution. Slow: compiling takes minutes here."""

from __future__ import annotations

import contextlib

import pytest
import torch


def flat(grads: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.flatten() for g in grads])


@pytest.mark.slow
def test_compiled_unet_matches_eager_on_cpu():
    from unclip.models.unet import UNet

    torch.manual_seed(0)
    net = UNet(resolution=16, model_channels=16, channel_mult=[1, 2], num_blocks=1,
               attn_resolutions=[8], head_channels=16, image_emb_dim=8, groups=8)
    with torch.no_grad():
        for p in net.parameters():
            if bool((p == 0).all()):
                p.normal_(std=0.05)
    x, t, emb = torch.randn(2, 3, 16, 16), torch.rand(2), torch.randn(2, 8)
    drop = torch.tensor([False, True])
    compiled = torch.compile(net)

    def run(model, bf16: bool):
        net.zero_grad(set_to_none=True)
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            out = model(x, t, image_emb=emb, cond_drop=drop)
        out.float().square().mean().backward()
        return out.float(), flat([p.grad.float().clone() for p in net.parameters()])

    # fp32: the same math, up to reassociation in fused kernels
    ref, ref_grad = run(net, False)
    out, grad = run(compiled, False)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    assert float((grad - ref_grad).norm() / ref_grad.norm()) < 1e-3
    # bf16 autocast: inductor keeps fp32 inside fused kernels where eager rounds to bf16, so
    # both are bf16-accurate approximations of the fp32 result
    ref16, ref16_grad = run(net, True)
    out16, grad16 = run(compiled, True)
    assert out16.dtype == ref16.dtype
    torch.testing.assert_close(out16, ref, atol=3e-2, rtol=3e-2)
    eager_err = float((ref16_grad - ref_grad).norm() / ref_grad.norm())
    compiled_err = float((grad16 - ref_grad).norm() / ref_grad.norm())
    assert compiled_err < max(0.05, 2 * eager_err)
