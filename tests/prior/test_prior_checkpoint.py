"""A few real Lightning steps with EMA; the checkpoint rebuilds the same prior."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EMAWeightAveraging, ModelCheckpoint

from tests.prior.helpers import IDENTITY, ToyEmbeddings, first_batch, make_module
from unclip.checkpoint import export_safetensors
from unclip.lit.prior import load_prior


def fit(tmp_path: Path, steps: int = 4, ema: bool = True, **module_kw) -> pl.Trainer:
    data = pl.LightningDataModule.from_datasets(
        train_dataset=ToyEmbeddings(64, seed=0), val_dataset=ToyEmbeddings(16, seed=1),
        batch_size=8,
    )
    callbacks = [ModelCheckpoint(dirpath=tmp_path, save_last=True)]
    if ema:
        callbacks.append(EMAWeightAveraging(decay=0.5))
    trainer = pl.Trainer(
        accelerator="cpu", precision="bf16-mixed", max_steps=steps, limit_val_batches=1,
        val_check_interval=steps, gradient_clip_val=1.0, logger=False, callbacks=callbacks,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )
    trainer.fit(make_module(**module_kw), datamodule=data)
    return trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[pl.Trainer, Path]:
    tmp = tmp_path_factory.mktemp("prior_ckpt")
    trainer = fit(tmp, ceiling_batches=4)
    return trainer, tmp / "last.ckpt"


def test_validation_logs_every_metric(trained):
    trainer, _ = trained
    logged = trainer.callback_metrics
    for name in ("val/loss", "val/cos_pred_true", "val/cos_text_true", "val/cos_pred_unrelated",
                 "val/top1_pred", "val/top1_text", "val/cos_ceiling", "val/cos_pred_true_known"):
        assert name in logged and torch.isfinite(logged[name]), name
    assert "train/loss" in logged


def test_checkpoint_loads_weights_only_with_identity_and_norm(trained):
    _, path = trained
    ckpt = torch.load(path, weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert hp["clip_identity"] == IDENTITY
    assert hp["norm"]["image"] == {"kind": "l2", "dim": 16, "eps": 1e-6}
    assert hp["diffusion"]["schedule"]["timesteps"] == 1000
    assert hp["network"]["width"] == 32
    assert ckpt["global_step"] == 4


def test_load_prior_uses_the_ema_weights(trained):
    trainer, path = trained
    ckpt = torch.load(path, weights_only=True)
    raw, ema = ckpt["current_model_state"], ckpt["state_dict"]
    assert any(not torch.equal(raw[k], ema[k]) for k in ema)  # EMA differs from the raw weights
    prior = load_prior(path)
    assert not prior.training
    for name, value in prior.state_dict().items():
        torch.testing.assert_close(value, ema[name])
    # the rebuilt prior samples exactly like the trained module with the same weights
    trained_module = trainer.lightning_module.eval()
    trained_module.load_state_dict(ema)
    batch = first_batch(3)
    cond = (batch["text_emb"], batch["text_tokens"], batch["text_mask"])
    a = prior.sample(*cond, generator=torch.Generator().manual_seed(0))
    b = trained_module.sample(*cond, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)


def test_meanstd_statistics_survive_the_checkpoint(tmp_path):
    stats = {
        "image": {"mean": [0.1 * i for i in range(16)], "std": [1.5] * 16},
        "text": {"mean": [0.0] * 16, "std": [2.0] * 16},
    }
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    norm = {"kind": "meanstd", "stats": str(tmp_path / "stats.json")}
    fit(tmp_path, steps=2, ema=False, norm=norm)
    prior = load_prior(tmp_path / "last.ckpt")
    x = torch.randn(2, 16)
    mean = torch.tensor(stats["image"]["mean"])
    torch.testing.assert_close(prior.image_norm.normalize(x), (x - mean) / 1.5)
    torch.testing.assert_close(prior.text_norm.normalize(x), x / 2.0)


def test_load_prior_refuses_other_checkpoints(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 1.0}}, path)
    with pytest.raises(ValueError, match="not a prior checkpoint"):
        load_prior(path)


def test_safetensors_export_reloads_the_same_prior(trained, tmp_path):
    _, path = trained
    prior = load_prior(path)
    export = tmp_path / "prior.safetensors"
    export_safetensors(prior.state_dict(), dict(prior.hparams), export)
    again = load_prior(export)
    assert again.hparams == prior.hparams
    for name, value in prior.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], value)
