"""DecoderModule: training on both input paths, EMA sampling, checkpoint round trip, configs."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from tests.decoder.shapes_data import ShapesBatches, add_embeddings, render_batch
from unclip.clip import FrozenCLIP
from unclip.clip.zero_shot import COLOR_SHAPE_PROMPTS
from unclip.diffusion.consistency import low_pass
from unclip.lit.decoder import DecoderModule, load_decoder

TINY_NET = dict(model_channels=16, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[8],
                head_channels=16, groups=8)
DIFFUSION = dict(schedule=dict(name="cosine", timesteps=1000), prediction="eps")


@pytest.fixture(scope="module")
def clip() -> FrozenCLIP:
    torch.manual_seed(0)
    return FrozenCLIP("tiny-clip")


def make_module(clip_identity, **kw) -> DecoderModule:
    torch.manual_seed(0)
    args = dict(network=TINY_NET, diffusion=DIFFUSION, resolution=16, clip_identity=clip_identity,
                optimizer=functools.partial(torch.optim.AdamW, weight_decay=0.01),
                num_val_samples=4, sampling=dict(steps=3))
    args.update(kw)
    return DecoderModule(**args)


def make_upsampler(clip_identity, low: int = 8, **kw) -> DecoderModule:
    net = dict(TINY_NET, attn_resolutions=[])
    return make_module(clip_identity, network=net, image_condition=False,
                       low_res=dict(resolution=low, max_level=0.3, sample_level=0.1), **kw)


def fit(module: DecoderModule, data: pl.LightningDataModule, root: Path, steps: int = 4,
        callbacks: list | None = None) -> pl.Trainer:
    callbacks = callbacks or []
    trainer = pl.Trainer(
        max_steps=steps, accelerator="cpu", precision="bf16-mixed", val_check_interval=steps,
        limit_val_batches=1, num_sanity_val_steps=0, callbacks=callbacks, logger=False,
        enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, pl.callbacks.ModelCheckpoint) for c in callbacks),
        default_root_dir=str(root), gradient_clip_val=1.0,
    )
    trainer.fit(module, data)
    return trainer


def test_trains_from_embedding_batches_and_logs(clip, tmp_path):
    module = make_module(clip.identity, text_condition=True)
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    trainer = fit(module, ShapesBatches(clip=clip), tmp_path)
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss"]) and torch.isfinite(metrics["val/loss"])
    assert any(k.startswith("train/loss_t") for k in metrics)
    assert metrics["train/images_per_sec"] > 0
    assert any(not torch.equal(before[k], v) for k, v in module.net.state_dict().items())
    grid = tmp_path / "samples" / "val_samples_step0000004.png"
    assert grid.is_file()
    assert module.last_samples.shape == (4, 3, 16, 16)


def test_runs_clip_on_the_fly_for_image_caption_batches(clip):
    module = make_module(None, clip=clip, text_condition=True)
    raw = render_batch("train", range(2))
    embedded = add_embeddings(raw, clip)
    b = module.embed_batch(raw)
    torch.testing.assert_close(b["image_emb"], embedded["image_emb"])
    assert torch.equal(b["text_mask"], embedded["text_mask"])
    assert "clip" not in "".join(module.state_dict())  # the frozen CLIP is not a submodule


def test_missing_embeddings_without_clip_is_named(clip):
    module = make_module(clip.identity)
    with pytest.raises(ValueError, match="lacks CLIP embeddings"):
        module.embed_batch(render_batch("train", range(2)))
    with pytest.raises(KeyError, match="'image'"):
        module.embed_batch({"image_emb": torch.zeros(2, 32)})


def test_ema_weights_differ_and_are_used_for_sampling(clip, tmp_path):
    module = make_module(clip.identity)
    ema = pl.callbacks.EMAWeightAveraging(decay=0.5)
    saver = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=4, save_last=True)
    fit(module, ShapesBatches(clip=clip), tmp_path, steps=4, callbacks=[ema, saver])
    ckpt_path = tmp_path / "last.ckpt"  # written at step 4, before that step's validation
    ckpt = torch.load(ckpt_path, weights_only=True)
    raw, avg = ckpt["current_model_state"], ckpt["state_dict"]
    assert any(not torch.equal(raw[k], avg[k]) for k in avg)

    # the validation grid (sampled at the last step) came from the EMA weights
    fixed = module._val_fixed
    def regenerate(state: dict) -> torch.Tensor:
        m = make_module(clip.identity)
        m.load_state_dict(state)
        m.eval()
        gen = torch.Generator().manual_seed(m.hparams["val_seed"])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return m.sample(fixed["image_emb"], generator=gen)

    torch.testing.assert_close(regenerate(avg), module.last_samples)
    assert (regenerate(raw) - module.last_samples).abs().max() > 1e-3
    # and load_decoder uses them
    loaded = load_decoder(ckpt_path)
    assert loaded.ema_weights
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, avg[k])


def test_checkpoint_round_trip(clip, tmp_path):
    module = make_module(clip.identity, text_condition=True)
    trainer = fit(module, ShapesBatches(clip=clip), tmp_path, steps=2)
    path = tmp_path / "decoder.ckpt"
    trainer.save_checkpoint(path)
    hp = torch.load(path, weights_only=True)["hyper_parameters"]  # plain containers only
    assert hp["clip_identity"] == clip.identity
    assert hp["resolution"] == 16 and hp["network"]["resolution"] == 16
    assert hp["network"]["image_emb_dim"] == clip.embed_dim
    assert hp["network"]["text_token_dim"] == clip.token_dim
    assert hp["diffusion"]["schedule"]["name"] == "cosine"
    loaded = load_decoder(path)
    assert not loaded.ema_weights and not loaded.training
    batch = add_embeddings(render_batch("val", range(3)), clip)
    kw = dict(text_tokens=batch["text_tokens"], text_mask=batch["text_mask"], autocast=False)
    module.eval()
    a = module.sample(batch["image_emb"], generator=torch.Generator().manual_seed(5), **kw)
    b = loaded.sample(batch["image_emb"], generator=torch.Generator().manual_seed(5), **kw)
    torch.testing.assert_close(a, b)
    assert a.shape == (3, 3, 16, 16) and a.abs().max() <= 1


def test_low_pass_consistency_is_refused_for_a_base_decoder(clip):
    module = make_module(clip.identity)
    with pytest.raises(ValueError, match="low_pass_sigma applies to upsamplers only"):
        module.sample(torch.zeros(1, clip.embed_dim), low_pass_sigma=2.0)


def test_upsampler_trains_and_samples_from_low_res(clip, tmp_path):
    module = make_upsampler(clip.identity)
    assert module.hparams["network"]["low_res_channels"] == 3
    assert module.hparams["network"]["image_emb_dim"] is None
    fit(module, ShapesBatches(clip=clip), tmp_path, steps=2)
    assert module.last_samples.shape == (4, 3, 16, 16)
    low = module.low_res_of(render_batch("val", range(2))["image"])
    assert low.shape == (2, 3, 8, 8)
    module.eval()
    a = module.sample(low_res=low, generator=torch.Generator().manual_seed(0))
    b = module.sample(low_res=-low, generator=torch.Generator().manual_seed(0))
    assert a.shape == (2, 3, 16, 16) and (a - b).abs().max() > 1e-3
    with pytest.raises(ValueError, match="pass low_res"):
        module.condition()
    # low-pass consistency: the sample's colours below sigma come from the low-res input
    y = torch.nn.functional.interpolate(low, size=(16, 16), mode="bilinear", align_corners=False)
    tied = module.sample(low_res=low, generator=torch.Generator().manual_seed(0),
                         low_pass_sigma=2.0)
    gap = lambda x: (low_pass(x, 2.0) - low_pass(y, 2.0)).abs().mean()  # noqa: E731
    assert gap(tied) < 0.5 * gap(a)  # untrained: the final clamp to [-1, 1] moves it a little
    with pytest.raises(ValueError, match="takes 8 px inputs"):
        module.condition(low_res=torch.zeros(1, 3, 16, 16))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(network=dict(TINY_NET, widht=3)), "unknown decoder network keys"),
        (dict(network=dict(TINY_NET, image_emb_dim=7)), "image_emb_dim=7 but"),
        (dict(clip_identity=None), "no CLIP identity"),
        (dict(low_res=dict(resolution=32)), "must be below"),
        (dict(low_res=dict(resolution=8, max_lvl=0.2)), "unknown low_res keys"),
        (dict(sampling=dict(stpes=3)), "unknown sampling options"),
    ],
)
def test_bad_configs_are_named(clip, kwargs, match):
    args = dict(clip_identity=clip.identity)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        make_module(**args)


def test_quality_figures_on_held_out_images(clip):
    from unclip.lit.decoder_quality import ColorShapeReader, answers, decoder_quality, figures

    batch = add_embeddings(render_batch("test", range(8)), clip)
    single = [i for i, m in enumerate(batch["meta"]) if len(m["objects"]) == 1]
    decoder = make_module(clip.identity).eval()
    upsampler = make_upsampler(clip.identity, low=16, resolution=32).eval()
    result = decoder_quality(decoder, clip, batch, upsampler, steps=2)
    assert result["n"] == len(single) > 0
    for part in ("samples", "real", "upsampled", "real_upsampler_resolution"):
        assert 0 <= result[part]["accuracy"] <= 1 and -1 <= result[part]["cosine"] <= 1
    assert 0 <= result["upsampled"]["agreement"] <= 1
    # the reader on real images at full size, against their own embeddings: cosine 1
    reader = ColorShapeReader(clip)
    truth = answers([batch["meta"][i] for i in single])
    real, reading = figures(reader, batch["image"][single], batch["image_emb"][single], truth)
    assert abs(real["cosine"] - 1) < 1e-4
    assert real["accuracy"] == (reading == truth).float().mean().item()
    obj = batch["meta"][single[0]]["objects"][0]
    assert COLOR_SHAPE_PROMPTS[int(truth[0])].endswith(f" {obj['color']} {obj['shape']}")


def test_guided_sampling_uses_the_null_condition(clip):
    module = make_module(clip.identity, text_condition=True).eval()
    from tests.decoder.test_unet import randomize

    randomize(module.net)
    batch = add_embeddings(render_batch("val", range(2)), clip)
    kw = dict(text_tokens=batch["text_tokens"], text_mask=batch["text_mask"], autocast=False)

    def run(scale: float) -> torch.Tensor:
        gen = torch.Generator().manual_seed(0)
        return module.sample(batch["image_emb"], generator=gen, guidance_scale=scale, **kw)

    guided, plain, uncond = run(3.0), run(1.0), run(0.0)
    assert (guided - plain).abs().max() > 1e-3 and (plain - uncond).abs().max() > 1e-3


def test_two_condition_guidance_with_equal_scales_is_one_scale_guidance(clip):
    # 2211.09800 eq. 3 with s_I = s_T = s: out(null) + s (out(z, c) - out(null))
    # x0 prediction: the samples are the guided network outputs, not saturated by the clamp
    module = make_module(clip.identity, text_condition=True,
                         diffusion=dict(DIFFUSION, prediction="x0")).eval()
    with torch.no_grad():  # the zero-initialised output layer would ignore every condition
        for param in module.net.parameters():
            param.normal_(0.0, 0.1)
    batch = add_embeddings(render_batch("val", range(2)), clip)
    inputs = dict(image_emb=batch["image_emb"], text_tokens=batch["text_tokens"].float(),
                  text_mask=batch["text_mask"], steps=3, autocast=False, threshold=None)

    def draw(**kw):
        return module.sample(**inputs, generator=torch.Generator().manual_seed(0), **kw)

    one = draw(guidance_scale=3.0)
    same = (draw(guidance_scale=3.0, text_guidance_scale=3.0) - one).abs().max()
    other = (draw(guidance_scale=3.0, text_guidance_scale=0.0) - one).abs().max()
    assert same < 1e-5 and other > 100 * same


def test_analytic_reader_reads_true_renders():
    from unclip.lit.decoder_quality import analytic_correct, answers

    batch = render_batch("test", range(12))
    single = [i for i, m in enumerate(batch["meta"]) if len(m["objects"]) == 1]
    truth = answers([batch["meta"][i] for i in single])
    assert analytic_correct(batch["image"][single], truth).all()
    wrong = (truth + 1) % len(COLOR_SHAPE_PROMPTS)
    assert not analytic_correct(batch["image"][single], wrong).any()
