"""No host-device synchronisation in the training step (benchmarks/syncs.py's recorder).

On CPU nothing waits, but the recorder sees every op that would make a CUDA stream wait for the
host (``.item()``, ``bool(t)``, ``nonzero``, boolean-mask indexing...), so these run anywhere.
The training steps used to sync in the decoder's loss-by-timestep logging (``if rows.any()``,
boolean indexing), the upsampler's augmentation level checks and the prior's per-forward padding
cut (issue #10); these tests keep them out.
"""

from __future__ import annotations

import pytest
import torch
from syncs import SyncRecorder


def tiny_unet(**kw):
    from unclip.models.unet import UNet

    torch.manual_seed(0)
    return UNet(resolution=16, model_channels=16, channel_mult=[1, 2], num_blocks=1,
                attn_resolutions=[8], head_channels=16, groups=8, **kw)


def test_recorder_sees_host_reads():
    x = torch.randn(4)
    with SyncRecorder() as rec:
        _ = bool((x > 0).any())
        _ = x[x > 0]
        _ = x.sum() * 2  # no read
    assert {op for op, _ in rec.counts} == {"_local_scalar_dense", "index"}


@pytest.mark.parametrize("kw", [{"image_emb_dim": 8}, {"image_emb_dim": 8, "text_token_dim": 6},
                                {"low_res_channels": 3}])
def test_unet_forward_backward_has_no_syncs(kw):
    net = tiny_unet(**kw).train()
    cond = {}
    if "image_emb_dim" in kw:
        cond["image_emb"] = torch.randn(2, 8)
    if "text_token_dim" in kw:
        cond |= {"text_tokens": torch.randn(2, 5, 6),
                 "text_mask": torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)}
    if kw.get("low_res_channels"):
        cond |= {"low_res": torch.randn(2, 3, 8, 8), "aug_level": torch.rand(2)}
    with SyncRecorder() as rec, torch.autocast("cpu", dtype=torch.bfloat16):
        net(torch.randn(2, 3, 16, 16), torch.rand(2), **cond).float().mean().backward()
    assert not rec.counts, rec.counts


def step_syncs(stage: str) -> dict:
    import _ours

    if stage == "prior":
        module = _ours.build_prior("small", network={"width": 32, "depth": 1, "heads": 4})
        batch = _ours.decoder_batch(4, 1)
        batch.pop("image")
    else:
        module = _ours.build_decoder(
            "base32" if stage == "decoder" else "upsampler64",
            network={"model_channels": 32, "channel_mult": [1, 2], "num_blocks": 1,
                     "attn_resolutions": [] if stage == "upsampler" else [16]})
        batch = _ours.decoder_batch(4, 32)
    step = _ours.manual_step_fn(module, batch, torch.device("cpu"), "bf16")
    with SyncRecorder() as rec:
        step()
    return dict(rec.counts)


@pytest.mark.parametrize("stage", ["decoder", "upsampler", "prior"])
def test_training_step_has_no_syncs(stage):
    counts = step_syncs(stage)
    assert not counts, counts
