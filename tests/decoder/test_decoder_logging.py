"""Loss by timestep bucket, sample grids, and their W&B (offline) logging."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_lightning.loggers import WandbLogger

from unclip.lit.decoder_logging import bucket_losses, log_grid, sample_grid


def test_bucket_losses_average_rows_by_time():
    loss = torch.tensor([1.0, 2.0, 3.0, 4.0, 6.0])
    t = torch.tensor([0.1, 0.2, 0.6, 0.9, 1.0])  # t = 1 belongs to the last bucket
    out = bucket_losses(loss, t, 4)
    assert set(out) == {"t0.00-0.25", "t0.50-0.75", "t0.75-1.00"}  # empty bucket left out
    assert out["t0.00-0.25"] == 1.5 and out["t0.50-0.75"] == 3.0 and out["t0.75-1.00"] == 5.0


def test_sample_grid_rows_and_range():
    low, full = torch.full((3, 3, 8, 8), -1.0), torch.ones(3, 3, 16, 16)
    grid = sample_grid([low, full], 16)
    pad = 2
    assert grid.shape == (3, 2 * 16 + 3 * pad, 3 * 16 + 4 * pad)
    assert grid.min() >= 0 and grid.max() <= 1
    assert grid[:, pad : pad + 16, pad : pad + 16].max() == 0  # -1 -> black
    assert grid[:, 2 * pad + 16 : 2 * pad + 32, pad : pad + 16].min() == 1  # +1 -> white


def test_log_grid_writes_png_and_wandb_media(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger(project="unclip-test", save_dir=str(tmp_path), offline=True)
    grid = sample_grid([torch.rand(2, 3, 8, 8) * 2 - 1], 8)
    try:
        path = log_grid(grid, [logger], tmp_path / "samples", "val/samples", 7, "rows: sample")
        run_dir = logger.experiment.dir
    finally:
        logger.experiment.finish()
    assert path.name == "val_samples_step0000007.png"
    assert Image.open(path).size == (grid.shape[2], grid.shape[1])
    media = list((tmp_path / "wandb").glob("offline-run-*/files/media/images/val/samples_*.png"))
    assert media, f"no W&B image under {run_dir}"
    expected = grid.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert (np.asarray(Image.open(media[0]).convert("RGB")) == expected).all()  # not black


@pytest.mark.parametrize("buckets", [1, 3])
def test_bucket_losses_cover_every_row(buckets):
    t = torch.linspace(0, 1, 50)
    loss = torch.rand(50)
    out = bucket_losses(loss, t, buckets)
    counts = torch.bincount((t * buckets).long().clamp(0, buckets - 1), minlength=buckets)
    total = sum(v * counts[i] for i, v in enumerate(out.values()))
    torch.testing.assert_close(total, loss.sum())
