"""train_prior through Hydra: the real configs train a few CPU steps on embedding shards."""

from __future__ import annotations

import torch

from tests.prior.helpers import IDENTITY, write_embedding_shards
from unclip.lit.prior import PriorModule, load_prior
from unclip.training import train


def tiny_overrides(root) -> list[str]:
    return [
        f"data.train_shards='{root}/train/*.tar'",
        f"data.val_shards='{root}/val/*.tar'",
        "data.test_shards=null",
        "data.batch_size=8",
        "data.num_workers=0",
        "data.persistent_workers=false",
        "data.shuffle_buffer=16",
        "prior.network.width=32",
        "prior.network.depth=2",
        "prior.network.heads=4",
        "prior.sampling.sampler=ddim",
        "prior.sampling.steps=3",
        "prior.ceiling_batches=2",
        "prior.scheduler.warmup_steps=1",
        "trainer.max_steps=3",
        "trainer.val_check_interval=3",
        "trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=1",
        "logger=csv",
        "callbacks.progress_bar.refresh_rate=0",
    ]


def test_train_prior_config_trains_checkpoints_and_reloads(hydra_cfg, tmp_path):
    root = write_embedding_shards(tmp_path / "emb")
    cfg = hydra_cfg("train_prior", [*tiny_overrides(root), "prior.norm.kind=meanstd"])
    metrics = train(cfg, "prior")
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    for name in ("val/loss", "val/cos_pred_true", "val/cos_text_true", "val/cos_ceiling"):
        assert name in metrics, name

    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    prior = load_prior(ckpt)
    assert isinstance(prior, PriorModule)
    assert prior.hparams["clip_identity"] == IDENTITY  # read from clip_identity.json
    stats_mean = prior.hparams["norm"]["image"]["mean"]  # read from stats.json, stored
    assert prior.hparams["norm"]["image"]["kind"] == "meanstd" and len(stats_mean) == 16
    assert prior.hparams["lr"] == cfg.prior.lr


def test_prior_lr_is_a_root_level_override(hydra_cfg, tmp_path):
    cfg = hydra_cfg("train_prior", ["prior.lr=1e-3"])
    assert cfg.prior.lr == 1e-3
    assert cfg.prior._target_ == "unclip.lit.prior.PriorModule"
