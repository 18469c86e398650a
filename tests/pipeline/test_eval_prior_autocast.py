"""evaluate.py's prior sections sample the prior under the pipeline's bf16 autocast."""

from __future__ import annotations

import torch

from unclip.eval.run import sample_prior
from unclip.pipeline import PriorSettings, UnCLIPPipeline

SETTINGS = PriorSettings(sampler="ddpm", steps=3, best_of=2, guidance_scale=2.0)


def _held_out_batch(pipe: UnCLIPPipeline) -> dict[str, torch.Tensor]:
    text = pipe.encode_text(["a red circle", "a blue square to the left of a green triangle"])
    return {"text_emb": text.pooled, "text_tokens": text.tokens, "text_mask": text.mask}


def _autocast_seen(pipe: UnCLIPPipeline) -> tuple[set[bool], torch.Tensor]:
    seen: set[bool] = set()
    handle = pipe.prior.net.register_forward_hook(
        lambda *_: seen.add(torch.is_autocast_enabled("cpu")))
    try:
        pred = sample_prior(pipe, _held_out_batch(pipe), SETTINGS, seed=0)
    finally:
        handle.remove()
    return seen, pred


def test_prior_metrics_follow_the_pipelines_autocast(pipe: UnCLIPPipeline) -> None:
    bf16 = UnCLIPPipeline(pipe.clip, pipe.prior, pipe.decoder, pipe.upsamplers, autocast=True)
    seen_bf16, pred_bf16 = _autocast_seen(bf16)
    seen_fp32, pred_fp32 = _autocast_seen(pipe)
    assert seen_bf16 == {True} and seen_fp32 == {False}
    assert pred_bf16.shape == pred_fp32.shape == (2, pipe.prior.image_norm.dim)
    assert bool(torch.isfinite(pred_bf16.float()).all())
    assert not torch.equal(pred_bf16.float(), pred_fp32.float())
    # the same seed gives the same draw
    assert torch.equal(sample_prior(pipe, _held_out_batch(pipe), SETTINGS, seed=0), pred_fp32)
