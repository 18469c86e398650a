"""Small in-memory image-caption batches from the real shapes generator, for decoder tests.

The layout is the image-caption batch of docs/interfaces.md (``image`` in [-1, 1], ``caption``,
``key``); ``with_embeddings`` adds what embedding shards hold (``image_emb`` and caption
tokens from a FrozenCLIP), so both input paths of the decoder run on real data.
"""

from __future__ import annotations

import random

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from unclip.data.shapes.captions import sample_caption
from unclip.data.shapes.render import render_scene
from unclip.data.shapes.scene import sample_scene, sample_seed


def render_batch(split: str, indices: range) -> dict[str, object]:
    """Images (N, 3, 64, 64) in [-1, 1], captions, keys and ground truth of shapes samples."""
    images, captions, keys, metas = [], [], [], []
    for i in indices:
        seed = sample_seed(0, split, i)
        scene = sample_scene(seed)
        pixels = np.asarray(render_scene(scene), dtype=np.float32) / 127.5 - 1.0
        images.append(torch.from_numpy(pixels).permute(2, 0, 1))
        captions.append(sample_caption(scene, random.Random(f"{seed}/caption")).text)
        keys.append(f"{split}_{i:08d}")
        metas.append(scene.to_json())
    return {"image": torch.stack(images), "caption": captions, "key": keys, "meta": metas}


def add_embeddings(batch: dict, clip: torch.nn.Module) -> dict:
    """The fields an embedding shard adds: image embedding, caption tokens and mask."""
    with torch.no_grad():
        enc = clip.encode_text(batch["caption"])
        return {**batch, "image_emb": clip.encode_image(batch["image"]),
                "text_tokens": enc.tokens.half(), "text_mask": enc.mask}


class _Rows(Dataset):
    def __init__(self, batch: dict) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return len(self.batch["key"])

    def __getitem__(self, i: int) -> dict:
        return {k: v[i] for k, v in self.batch.items()}


def _collate(rows: list[dict]) -> dict:
    return {k: torch.stack([r[k] for r in rows]) if isinstance(rows[0][k], torch.Tensor)
            else [r[k] for r in rows] for k in rows[0]}


class ShapesBatches(pl.LightningDataModule):
    """``n_train``/``n_val`` rendered shapes samples; with ``clip``, embedding-shard batches."""

    def __init__(self, n_train: int = 16, n_val: int = 8, batch_size: int = 4,
                 clip: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.train_batch = render_batch("train", range(n_train))
        self.val_batch = render_batch("val", range(n_val))
        if clip is not None:
            self.train_batch = add_embeddings(self.train_batch, clip)
            self.val_batch = add_embeddings(self.val_batch, clip)
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Rows(self.train_batch), batch_size=self.batch_size, shuffle=True,
                          collate_fn=_collate, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_Rows(self.val_batch), batch_size=self.batch_size, collate_fn=_collate)

