"""Every configs/decoder/*.yaml builds a stage that runs a forward pass (small width; the
paper-size ones also at full width, marked slow)."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from tests.conftest import CONFIG_DIR
from unclip.lit.decoder import DecoderModule
from unclip.models.unet_blocks import AttentionBlock

DECODER_CONFIGS = sorted(p.stem for p in (CONFIG_DIR / "decoder").glob("*.yaml"))
IDENTITY = {"model_name": "test", "embed_dim": 24, "token_dim": 20, "context_length": 7}


def decoder_config(name: str, overrides: list[str] | None = None) -> dict:
    """``configs/decoder/<name>.yaml`` as a plain dict (without the data-dependent identity)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose(f"decoder/{name}", overrides=overrides or []).decoder
    GlobalHydra.instance().clear()
    cfg = OmegaConf.to_container(cfg, resolve=False)
    for key in ("_target_", "clip_identity", "optimizer", "scheduler"):
        cfg.pop(key, None)
    return cfg


def build_and_forward(cfg: dict, batch: int = 1) -> tuple[DecoderModule, torch.Tensor]:
    torch.manual_seed(0)
    module = DecoderModule(**cfg, clip_identity=IDENTITY).eval()
    r = module.hparams["resolution"]
    kw: dict[str, torch.Tensor] = {}
    if module.hparams["image_condition"]:
        kw["image_emb"] = torch.randn(batch, IDENTITY["embed_dim"])
    if module.hparams["text_condition"]:
        kw["text_tokens"] = torch.randn(batch, IDENTITY["context_length"], IDENTITY["token_dim"])
        kw["text_mask"] = torch.ones(batch, IDENTITY["context_length"], dtype=torch.bool)
    if module.is_upsampler:
        low = module.hparams["low_res"]["resolution"]
        kw["low_res"] = torch.rand(batch, 3, low, low) * 2 - 1
        kw["aug_level"] = torch.full((batch,), 0.1)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = module.net(torch.randn(batch, 3, r, r), torch.rand(batch), **kw)
    return module, out


def test_all_four_issue_configs_exist():
    assert {"base32", "upsampler64", "glide64", "upsampler256"} <= set(DECODER_CONFIGS)


@pytest.mark.parametrize("name", DECODER_CONFIGS)
def test_config_builds_and_runs_at_small_width(name):
    cfg = decoder_config(name, ["decoder.network.model_channels=32",
                                "decoder.network.head_channels=32", "decoder.num_val_samples=0"])
    module, out = build_and_forward(cfg, batch=2)
    r = module.hparams["resolution"]
    assert out.shape == (2, 3, r, r) and out.dtype == torch.float32


def test_paper_shapes():
    glide = decoder_config("glide64")
    assert glide["resolution"] == 64 and glide["text_condition"] and glide["image_condition"]
    net = glide["network"]
    assert (net["model_channels"], net["channel_mult"], net["num_blocks"]) == (512, [1, 2, 3, 4], 3)
    assert net["attn_resolutions"] == [32, 16, 8] and net["num_image_tokens"] == 4
    assert (net["image_drop_prob"], net["text_drop_prob"]) == (0.1, 0.5)
    up = decoder_config("upsampler256")
    assert up["resolution"] == 256 and up["low_res"]["resolution"] == 64
    assert up["network"]["model_channels"] == 320 and up["network"]["attn_resolutions"] == []
    assert (up["low_res"]["blur_kernel"], up["low_res"]["blur_sigma"]) == (3, 0.6)
    # the shapes upsampler 32 -> 64 has no attention either, and no CLIP conditioning
    module = DecoderModule(**decoder_config("upsampler64"), clip_identity=IDENTITY)
    assert not any(isinstance(m, AttentionBlock) for m in module.net.modules())
    assert module.hparams["network"]["image_emb_dim"] is None


@pytest.mark.slow
@pytest.mark.parametrize("name", ["glide64", "upsampler256"])
def test_paper_size_config_runs_one_forward_on_cpu(name):
    """Full width, batch 1 (glide64: 2.2B parameters, ~1 min to build and run on 1 core)."""
    module, out = build_and_forward(decoder_config(name))
    r = module.hparams["resolution"]
    assert out.shape == (1, 3, r, r) and torch.isfinite(out).all()
