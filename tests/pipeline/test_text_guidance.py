"""Two-condition guidance of the decoder through the pipeline (text_guidance_scale)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.pipeline.conftest import DIFFUSION, UNET
from tests.pipeline.test_pipeline import PRIOR
from unclip.lit.decoder import DecoderModule
from unclip.pipeline import DecoderSettings, UnCLIPPipeline

JOINT = DecoderSettings(sampler="ddim", steps=4, guidance_scale=2.0)
PROMPTS = ["a red circle to the left of a blue square", "a green triangle"]


def _decode(pipe: UnCLIPPipeline, settings: DecoderSettings, caption: bool = True
            ) -> torch.Tensor:
    z, text = pipe.image_embeddings(PROMPTS, PRIOR, seed=3)
    return pipe.decode(z, text=text if caption else None, decoder_settings=settings, seed=5,
                       upsample=False)


def test_equal_scales_decode_as_joint_guidance_and_a_larger_caption_scale_differs(pipe):
    joint = _decode(pipe, JOINT)
    same = _decode(pipe, dataclasses.replace(JOINT, text_guidance_scale=2.0))
    torch.testing.assert_close(same, joint, atol=1e-3, rtol=1e-3)
    more = _decode(pipe, dataclasses.replace(JOINT, text_guidance_scale=6.0))
    assert (more - joint).abs().max() > 1e-2
    out = pipe.text_to_image(PROMPTS, prior_settings=PRIOR, seed=3, upsampler_settings=None,
                             decoder_settings=dataclasses.replace(JOINT, text_guidance_scale=6.0))
    assert out.settings["decoder"]["text_guidance_scale"] == 6.0


def test_without_a_caption_the_embedding_guidance_alone_applies(pipe):
    plain = _decode(pipe, JOINT, caption=False)
    two = _decode(pipe, dataclasses.replace(JOINT, text_guidance_scale=6.0), caption=False)
    torch.testing.assert_close(two, plain)


def test_an_image_only_decoder_is_refused_by_name(pipe):
    torch.manual_seed(0)
    image_only = DecoderModule(network=UNET, diffusion=DIFFUSION, resolution=16,
                               clip_identity=dict(pipe.clip.identity), image_condition=True,
                               text_condition=False)
    other = UnCLIPPipeline(pipe.clip, pipe.prior, image_only)
    with pytest.raises(ValueError, match="text_guidance_scale needs a caption-conditioned"):
        _decode(other, dataclasses.replace(JOINT, text_guidance_scale=4.0))
