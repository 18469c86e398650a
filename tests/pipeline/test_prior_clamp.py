"""The pipeline passes PriorSettings.clamp_l2norm to the prior, for captions and empty prompts."""

from __future__ import annotations

import torch

from unclip.pipeline import PriorSettings


def test_clamp_l2norm_reaches_conditional_and_unconditional_rows(pipe) -> None:
    prompts = ["a red circle", ""]
    base = dict(sampler="ddpm", steps=3, guidance_scale=3.0, best_of=1)
    with torch.no_grad():
        plain, _ = pipe.image_embeddings(prompts, PriorSettings(**base), seed=1)
        clamped, _ = pipe.image_embeddings(prompts, PriorSettings(**base, clamp_l2norm=True),
                                           seed=1)
        again, _ = pipe.image_embeddings(prompts, PriorSettings(**base, clamp_l2norm=True),
                                         seed=1)
    torch.testing.assert_close(clamped, again)
    assert ((clamped - plain).abs().amax(dim=1) > 1e-4).all()  # both rows: caption and empty
