"""What the decoder logs besides its loss: loss by timestep bucket, sample grids."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import Logger, WandbLogger
from torchvision.utils import make_grid, save_image


def bucket_losses(loss: torch.Tensor, t: torch.Tensor, buckets: int) -> dict[str, torch.Tensor]:
    """Mean loss of the rows whose ``t`` falls in each of ``buckets`` equal parts of [0, 1].

    Keys name the interval, ``"t0.00-0.25"``; empty buckets are left out.
    """
    index = (t.detach().float() * buckets).long().clamp_(0, buckets - 1)
    out = {}
    for i in range(buckets):
        rows = index == i
        if rows.any():
            out[f"t{i / buckets:.2f}-{(i + 1) / buckets:.2f}"] = loss.detach()[rows].mean()
    return out


def bucket_means(loss: torch.Tensor, t: torch.Tensor, buckets: int) -> dict[str, torch.Tensor]:
    """:func:`bucket_losses` without host reads (no GPU sync): every bucket has a key, and an
    empty bucket's mean is NaN (odds 0.75^B with 4 buckets: 1e-4 at B = 32)."""
    index = (t.detach().float() * buckets).long().clamp_(0, buckets - 1)
    values = loss.detach().float()
    sums = values.new_zeros(buckets).index_add_(0, index, values)
    counts = values.new_zeros(buckets).index_add_(0, index, torch.ones_like(values))
    means = sums / counts
    return {f"t{i / buckets:.2f}-{(i + 1) / buckets:.2f}": means[i] for i in range(buckets)}


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> [0, 1] float32 for saving and display."""
    return ((images.detach().float().cpu() + 1) / 2).clamp_(0, 1)


def sample_grid(rows: list[torch.Tensor], size: int) -> torch.Tensor:
    """Stack image rows (each (N, 3, h, w) in [-1, 1]) into one grid, all resized to ``size``.

    Smaller rows (low-res inputs) are shown with nearest-neighbour upsampling so their pixels
    stay visible.
    """
    resized = [F.interpolate(r.float(), size=(size, size), mode="nearest")
               if r.shape[-1] != size else r for r in rows]
    images = to_unit_range(torch.cat(resized))
    return make_grid(images, nrow=rows[0].shape[0], padding=2, pad_value=1.0)


def log_grid(
    grid: torch.Tensor, loggers: list[Logger], out_dir: Path, key: str, step: int, caption: str
) -> Path:
    """Save ``grid`` as ``out_dir/<key>_step<step>.png`` and send it to W&B loggers."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{key.replace('/', '_')}_step{step:07d}.png"
    save_image(grid, path)
    # W&B gets uint8 HWC pixels: a float tensor in [0, 1] is stored unscaled (a black image)
    pixels = grid.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[pixels], step=step, caption=[caption])
    return path
