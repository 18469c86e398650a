"""The paper-size prior config (prior/dalle2) builds the paper's network."""

from __future__ import annotations

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from unclip.lit.prior import PriorModule
from unclip.models.prior_transformer import PriorTransformer

# 2204.06125 used CLIP ViT-H/16: 1024-wide embeddings and token encodings.
PAPER_CLIP = ["prior.clip_identity=null", "prior.network.dim=1024", "prior.network.token_dim=1024"]


def _prior_cfg(hydra_cfg):
    return hydra_cfg("train_prior", ["prior=dalle2", *PAPER_CLIP]).prior


def test_dalle2_config_has_the_paper_hyperparameters(hydra_cfg):
    cfg = OmegaConf.to_container(_prior_cfg(hydra_cfg), resolve=True)
    net = cfg["network"]
    assert (net["width"], net["depth"], net["text_context"]) == (2048, 24, 256)
    assert net["cond_drop_prob"] == 0.1
    assert cfg["lr"] == 1.1e-4
    opt = cfg["optimizer"]
    assert opt["_target_"] == "torch.optim.AdamW"
    assert (opt["weight_decay"], opt["betas"][1], opt["eps"]) == (6.0e-2, 0.96, 1e-6)
    assert cfg["diffusion"]["schedule"] == {"name": "cosine", "timesteps": 1000}
    assert cfg["diffusion"]["prediction"] == "x0"
    assert cfg["sampling"]["steps"] == 64 and cfg["sampling"]["best_of"] == 2


def test_dalle2_prior_has_about_one_billion_parameters(hydra_cfg):
    network = OmegaConf.to_container(_prior_cfg(hydra_cfg).network, resolve=True)
    with torch.device("meta"):  # shapes only: no 5 GB of weights in the default tests
        net = PriorTransformer(**network)
    n = sum(p.numel() for p in net.parameters())
    assert 1.1e9 < n < 1.3e9  # 24 blocks x 12 x 2048^2 = 1.21e9 (the paper's "1B prior")


@pytest.mark.slow
def test_dalle2_prior_instantiates_and_runs_a_forward_on_cpu(hydra_cfg):
    module = hydra.utils.instantiate(_prior_cfg(hydra_cfg)).eval()
    assert isinstance(module, PriorModule)
    b, length = 2, 77
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = module.net(
            torch.randn(b, 1024), torch.rand(b), text_emb=torch.randn(b, 1024),
            text_tokens=torch.randn(b, length, 1024),
            text_mask=torch.arange(length)[None] < torch.tensor([[10], [77]]),
        )
    assert out.shape == (b, 1024) and torch.isfinite(out).all()
