"""The decoder's best of k: CLIP reranking of decoded candidates (unclip.rerank)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.pipeline.test_pipeline import PRIOR, UP
from unclip.pipeline import DecoderSettings
from unclip.rerank import best_of


def test_each_image_keeps_its_highest_cosine_candidate() -> None:
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # image 0's candidates: 45 deg, 10 deg (but short), 80 deg (long); image 1's: 90, 30, 0 deg
    angles = torch.tensor([45.0, 10.0, 80.0, 90.0, 30.0, 0.0]).deg2rad()
    norms = torch.tensor([1.0, 0.1, 50.0, 1.0, 1.0, 1.0])
    embeds = norms[:, None] * torch.stack([angles.cos(), angles.sin()], dim=1)
    embeds[3:] = embeds[3:].flip(-1)  # image 1's angles are measured from its target, (0, 1)
    candidates = torch.arange(6.0)[:, None, None, None].expand(6, 3, 2, 2)
    chosen, index = best_of(candidates, embeds, targets, k=3)
    assert index.tolist() == [1, 2]  # cosine, not the dot product: norm does not win
    assert chosen.shape == (2, 3, 2, 2) and chosen[:, 0, 0, 0].tolist() == [1.0, 5.0]


def test_k_one_keeps_every_candidate_and_bad_counts_are_named() -> None:
    x, emb = torch.randn(4, 3, 2, 2), torch.randn(4, 8)
    chosen, index = best_of(x, emb, torch.randn(4, 8), k=1)
    assert torch.equal(chosen, x) and index.tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="3 targets with k=2 need 6 candidates, got 4"):
        best_of(x, emb, torch.randn(3, 8), k=2)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        best_of(x, emb, torch.randn(4, 8), k=0)


def test_the_pipeline_decodes_k_candidates_and_keeps_the_one_closest_to_the_caption(pipe
                                                                                      ) -> None:
    prompts = ["a red circle to the left of a blue square", "a green triangle"]
    z, text = pipe.image_embeddings(prompts, PRIOR, seed=3)
    k, settings = 3, DecoderSettings(sampler="ddim", steps=4, guidance_scale=2.0)
    chosen = pipe.decode(z, text=text, seed=5, upsample=False,
                         decoder_settings=DecoderSettings(**{**settings.to_dict(), "best_of": k}))
    # the same k candidates, decoded as one batch of repeated rows with best_of=1
    rep = type(text)(*(t.repeat_interleave(k, dim=0) for t in text))
    candidates = pipe.decode(z.repeat_interleave(k, dim=0), text=rep, seed=5, upsample=False,
                             decoder_settings=settings)
    cos = F.cosine_similarity(pipe.encode_images(candidates).unflatten(0, (2, k)),
                              text.pooled[:, None], dim=-1)
    torch.testing.assert_close(chosen, candidates.unflatten(0, (2, k))[[0, 1], cos.argmax(1)])
    full = pipe.text_to_image(prompts, prior_settings=PRIOR, upsampler_settings=UP, seed=3,
                              decoder_settings=DecoderSettings(sampler="ddim", steps=4, best_of=k))
    assert full.images.shape == (2, 3, 32, 32) and full.settings["decoder"]["best_of"] == k


def test_reranking_is_refused_where_the_decoder_noise_is_fixed(pipe, images) -> None:
    two = DecoderSettings(sampler="ddim", steps=4, best_of=2)
    z = pipe.encode_images(images)
    with pytest.raises(ValueError, match="best_of > 1 draws each candidate's own noise"):
        pipe.decode(z, decoder_settings=two, x_T=torch.randn(2, 3, 16, 16), upsample=False)
    with pytest.raises(ValueError, match="interpolate holds the decoder noise fixed.*got 2"):
        pipe.interpolate(images[0], images[1], frames=2, decoder_settings=two)
    with pytest.raises(ValueError, match="text_diff holds the decoder noise fixed"):
        pipe.text_diff(images[0], "a red circle", "a blue circle", [0.0], noise="random",
                       decoder_settings=two)


def test_without_a_caption_candidates_are_ranked_against_the_image_embedding(pipe, images
                                                                              ) -> None:
    z, k = pipe.encode_images(images), 3
    settings = DecoderSettings(sampler="ddim", steps=4)
    chosen = pipe.decode(z, seed=2, upsample=False,
                         decoder_settings=DecoderSettings(sampler="ddim", steps=4, best_of=k))
    candidates = pipe.decode(z.repeat_interleave(k, dim=0), seed=2, upsample=False,
                             decoder_settings=settings)
    cos = F.cosine_similarity(pipe.encode_images(candidates).unflatten(0, (2, k)),
                              z[:, None], dim=-1)
    torch.testing.assert_close(chosen, candidates.unflatten(0, (2, k))[[0, 1], cos.argmax(1)])
    out = pipe.variations(images, num_variations=2, decoder_settings=DecoderSettings(
        sampler="ddim", steps=4, eta=1.0, best_of=2), upsampler_settings=UP)
    assert out.images.shape == (4, 3, 32, 32) and out.settings["decoder"]["best_of"] == 2
