"""The full pipeline with tiny random stages on CPU, in every mode (2204.06125 sec. 2-3)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from unclip.pipeline import (
    VARIATION_ETA,
    DecoderSettings,
    InversionSettings,
    PriorSettings,
    UnCLIPPipeline,
    UpsamplerSettings,
    slerp,
)

PRIOR = PriorSettings(sampler="ddim", steps=4, best_of=2)
DECODER = DecoderSettings(sampler="ddim", steps=4, guidance_scale=2.0)
UP = UpsamplerSettings(sampler="dpmpp_2m", steps=3, aug_level=0.1)
FAST = dict(decoder_settings=DECODER, upsampler_settings=UP)
INVERT = InversionSettings(steps=4)
VAR = DecoderSettings(sampler="ddim", steps=4, eta=VARIATION_ETA)


def t2i(pipe, prompts, n=1, seed=0, **kw):
    args = dict(prior_settings=PRIOR, **FAST)
    args.update(kw)
    return pipe.text_to_image(prompts, num_images_per_prompt=n, seed=seed, **args)


def test_text_to_image_shapes_ranges_and_recorded_settings(pipe):
    out = t2i(pipe, ["a large red circle in the top left", "a blue square"], n=2)
    assert out.images.shape == (4, 3, 32, 32) and out.image_embeds.shape == (4, 32)
    assert out.images.dtype == torch.float32 and bool(torch.isfinite(out.images).all())
    assert out.images.min() >= -1 and out.images.max() <= 1
    assert not torch.equal(out.images[0], out.images[1])  # n images of a prompt differ
    assert out.settings["prior"] == PRIOR.to_dict()
    assert out.settings["decoder"] == DECODER.to_dict()
    assert out.settings["upsamplers"] == [UP.to_dict()]


def test_same_seed_same_images_other_seed_other_images(pipe):
    a = t2i(pipe, ["a green triangle", "a red circle"], seed=3)
    b = t2i(pipe, ["a green triangle", "a red circle"], seed=3)
    c = t2i(pipe, ["a green triangle", "a red circle"], seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.image_embeds, b.image_embeds)
    assert not torch.allclose(a.images, c.images)


def test_bf16_autocast_is_used_when_asked_and_off_by_default_on_cpu(pipe):
    assert pipe.autocast is False  # from_checkpoints(autocast=None) on a CPU
    bf16 = UnCLIPPipeline(pipe.clip, pipe.prior, pipe.decoder, pipe.upsamplers, autocast=True)
    a, b = t2i(bf16, ["a red circle"], seed=2), t2i(bf16, ["a red circle"], seed=2)
    fp32 = t2i(pipe, ["a red circle"], seed=2)
    assert torch.equal(a.images, b.images) and bool(torch.isfinite(a.images).all())
    assert a.images.dtype == torch.float32 and not torch.equal(a.images, fp32.images)


def test_each_stage_has_its_own_noise_stream(pipe):
    a = t2i(pipe, ["a white circle"], seed=1)
    b = t2i(pipe, ["a white circle"], seed=1, decoder_settings=DecoderSettings(steps=3))
    assert torch.equal(a.image_embeds, b.image_embeds)  # the prior did not see the change
    assert not torch.allclose(a.images, b.images)


def test_empty_prompt_is_an_unconditional_request(pipe):
    a = t2i(pipe, ["a red circle", ""], seed=0, decoder_settings=DECODER)
    guided = PriorSettings(sampler="ddim", steps=4, best_of=2, guidance_scale=4.0)
    b = t2i(pipe, ["a red circle", ""], seed=0, prior_settings=guided)
    assert bool(torch.isfinite(a.images).all())
    # the null-condition row ignores prior guidance; the captioned row does not
    assert torch.equal(a.image_embeds[1], b.image_embeds[1])
    assert not torch.allclose(a.image_embeds[0], b.image_embeds[0])


def test_unicode_is_accepted_and_long_prompts_are_truncated_with_a_warning(pipe):
    out = t2i(pipe, ["un cercle rouge à gauche — 赤い円 🚀"])
    assert bool(torch.isfinite(out.images).all())
    with pytest.warns(UserWarning, match="truncated"):
        t2i(pipe, [" ".join(["a large red circle in the top left"] * 10)])


def test_variations_are_fresh_noise_decodes_of_the_image_embedding(pipe, images):
    out = pipe.variations(images, num_variations=2, seed=0, upsampler_settings=UP,
                          decoder_settings=VAR)
    again = pipe.variations(images, num_variations=2, seed=0, upsampler_settings=UP,
                            decoder_settings=VAR)
    assert out.images.shape == (4, 3, 32, 32)
    assert torch.equal(out.images, again.images)
    z = pipe.encode_images(images)
    assert torch.equal(out.image_embeds, z.repeat_interleave(2, dim=0))  # image-major rows
    assert not torch.allclose(out.images[0], out.images[1])
    default = pipe.variations(images[:1], seed=0, upsampler_settings=UP)
    assert default.settings["decoder"]["sampler"] == "ddim"
    assert default.settings["decoder"]["eta"] == VARIATION_ETA > 0  # as the paper


def test_interpolating_images_runs_from_one_embedding_to_the_other(pipe, images):
    out = pipe.interpolate(images[0], images[1], frames=3, seed=5, **FAST)
    z = pipe.encode_images(images)
    assert out.images.shape == (3, 3, 32, 32)
    assert torch.equal(out.image_embeds[0], z[0]) and torch.equal(out.image_embeds[-1], z[1])
    torch.testing.assert_close(out.image_embeds[1], slerp(z[0], z[1], 0.5))
    # decoder noise fixed across frames: frame 0 is the variation of image a with that seed
    first = pipe.variations(images[:1], seed=5, **FAST)
    # equal up to the last bits: a batch of 3 and a batch of 1 take different CPU kernels on
    # some machines (AMX: up to 1e-5 apart); another noise draw would differ by O(1)
    torch.testing.assert_close(out.images[0], first.images[0], atol=1e-4, rtol=0)
    assert not torch.allclose(out.images[0], out.images[-1])


def test_interpolating_prompts_uses_their_prior_embeddings(pipe):
    prompts = ["a red circle on the left", "a blue square on the right"]
    out = pipe.interpolate(*prompts, frames=4, prior_settings=PRIOR, seed=2, **FAST)
    z, _ = pipe.image_embeddings(prompts, PRIOR, seed=2)
    assert torch.equal(out.image_embeds[0], z[0]) and torch.equal(out.image_embeds[-1], z[1])
    assert out.images.shape == (4, 3, 32, 32) and out.settings["prior"] == PRIOR.to_dict()


def test_interpolation_with_inverted_noise(pipe, images):
    out = pipe.interpolate(images[0], images[1], frames=2, noise="inverted",
                           inversion_settings=INVERT, upsampler_settings=UP, seed=0)
    assert out.images.shape == (2, 3, 32, 32)
    assert out.settings["inversion"] == INVERT.to_dict()
    assert out.settings["decoder"] == INVERT.decoder_settings().to_dict()
    random = pipe.interpolate(images[0], images[1], frames=2, upsampler_settings=UP, seed=0,
                              decoder_settings=INVERT.decoder_settings())
    assert not torch.allclose(out.images, random.images)


def test_text_diff_angle_zero_is_the_variation_of_the_original(pipe, images):
    out = pipe.text_diff(images[0], "a red circle", "a blue circle", [0.0, 0.25, 0.5],
                         noise="random", seed=7, **FAST)
    variation = pipe.variations(images[:1], seed=7, **FAST)
    assert out.images.shape == (3, 3, 32, 32)
    assert torch.equal(out.images[0], variation.images[0])
    assert torch.equal(out.image_embeds[0], pipe.encode_images(images[:1])[0])
    assert not torch.allclose(out.images[0], out.images[2])


def test_text_diff_with_inverted_noise_starts_at_the_reconstruction(pipe, images):
    out = pipe.text_diff(images[1], "a square", "a circle", [0.0, 0.4], noise="inverted",
                         inversion_settings=INVERT, upsampler_settings=UP, seed=1)
    assert out.settings["decoder"] == INVERT.decoder_settings().to_dict()
    inv = pipe.invert(images[1:2], settings=INVERT)
    rec = pipe.reconstruct(inv, upsample=True, upsampler_settings=UP, seed=1)
    assert torch.equal(out.images[0], rec[0])


def test_invert_and_reconstruct(pipe, images):
    inv = pipe.invert(images, settings=INVERT)
    assert inv.x_T.shape == (2, 3, 16, 16) and inv.x_T.dtype == torch.float32
    assert torch.equal(inv.image_embeds, pipe.encode_images(images))
    assert torch.equal(inv.x_T, pipe.invert(images, settings=INVERT).x_T)  # deterministic
    base = pipe.reconstruct(inv)
    assert base.shape == (2, 3, 16, 16)
    assert torch.equal(base, pipe.reconstruct(inv, seed=9))  # no noise left to draw
    assert pipe.reconstruct(inv, upsample=True, upsampler_settings=UP).shape == (2, 3, 32, 32)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda p, im: p.variations(im * 127.5 + 127.5), ValueError, r"\[-1, 1\]"),
        (lambda p, im: p.variations(im[0]), ValueError, r"\(B, 3, H, W\)"),
        (lambda p, im: p.text_to_image("a red circle"), TypeError, "list of strings"),
        (lambda p, im: p.text_to_image([]), ValueError, "no prompts"),
        (lambda p, im: p.interpolate(im[0], im[1], frames=1), ValueError, "frames must be >= 2"),
        (lambda p, im: p.interpolate("a", "b", noise="inverted"), ValueError, "two images"),
        (lambda p, im: p.interpolate(im[0], "b"), TypeError, "two images .* or two prompts"),
        (lambda p, im: p.text_diff(im[0], "a", "b", [1.5]), ValueError, "angles"),
        (lambda p, im: p.text_diff(im[0], "a", "a", [0.5]), ValueError, "identical"),
        (lambda p, im: p.variations(im, upsampler_settings=[UP, UP]), ValueError,
         "2 upsampler settings for 1 upsamplers"),
    ],
)
def test_unusable_inputs_get_clear_errors(pipe, images, call, error, match):
    with pytest.raises(error, match=match):
        call(pipe, images)


def test_upsampler_low_pass_consistency_is_applied_and_recorded(pipe):
    tied, off = (dataclasses.replace(UP, low_pass_sigma=s) for s in (2.0, 0.0))
    a = t2i(pipe, ["a red circle"], upsampler_settings=tied)
    b = t2i(pipe, ["a red circle"], upsampler_settings=off)
    assert a.settings["upsamplers"][0]["low_pass_sigma"] == 2.0
    assert b.settings["upsamplers"][0]["low_pass_sigma"] == 0.0
    assert (a.images - b.images).abs().max() > 1e-3
    default = pipe.settings_record(upsamplers=UP)["upsamplers"][0]["low_pass_sigma"]
    assert default == pipe.upsamplers[0].hparams["sampling"].get("low_pass_sigma")
