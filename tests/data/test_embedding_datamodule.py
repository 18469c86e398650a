"""EmbeddingDataModule over shards in the precompute layout of docs/interfaces.md."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.conftest import embedding_sample, npy, write_tar
from unclip.data.embeddings import EmbeddingDataModule


def test_batches_follow_the_interface(embeddings_dir: Path) -> None:
    dm = EmbeddingDataModule(f"{embeddings_dir}/train/*.tar", f"{embeddings_dir}/val/*.tar",
                             batch_size=4, num_workers=2, epoch_length=20)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"image_emb", "text_emb", "text_tokens", "text_mask", "caption", "key",
                          "meta"}
    assert batch["image_emb"].shape == batch["text_emb"].shape == (4, 8)
    assert batch["text_tokens"].shape == (4, 5, 4) and batch["text_tokens"].dtype == torch.float32
    assert batch["text_mask"].shape == (4, 5) and batch["text_mask"].dtype == torch.bool
    assert len(batch["caption"]) == len(batch["key"]) == 4
    for caption, meta in zip(batch["caption"], batch["meta"], strict=True):
        assert meta["caption"]["text"] == caption
    assert len(dm.train_dataloader()) == 6  # 20 // 4 = 5 batches, rounded up to 3 per worker


def test_values_survive_the_round_trip(embeddings_dir: Path) -> None:
    dm = EmbeddingDataModule(val_shards=f"{embeddings_dir}/val/*.tar", batch_size=3,
                             num_workers=0, with_images=True, resolution=32)
    batch = next(iter(dm.val_dataloader()))
    expected = embedding_sample(100)
    assert batch["key"][0] == expected["__key__"]
    stored = np.load(io.BytesIO(expected["txt_tokens.npy"]))
    assert torch.equal(batch["text_tokens"][0], torch.from_numpy(stored.astype(np.float32)))
    assert batch["text_mask"][0].tolist() == [True, True, True, False, False]  # 2 + 100 % 3
    assert batch["image"].shape == (3, 3, 32, 32)


def test_sidecars(embeddings_dir: Path) -> None:
    dm = EmbeddingDataModule(f"{embeddings_dir}/train/*.tar", num_workers=0)
    assert dm.stats == {"image": {"mean": [0.0] * 8}}
    assert dm.clip_identity == {"embed_dim": 8}
    assert EmbeddingDataModule(val_shards=f"{embeddings_dir}/val/*.tar").sidecar(
        "stats.json", "val") is None


def test_bad_embedding_samples_are_counted(tmp_path: Path) -> None:
    good = [embedding_sample(i, image=False) for i in range(4)]
    missing = embedding_sample(10, image=False)
    del missing["txt_emb.npy"]
    wrong_dim = embedding_sample(11, dim=6, image=False)
    pickled = embedding_sample(12, image=False)
    pickled["txt_mask.npy"] = npy(np.array([1, 0]))[:20]  # truncated .npy
    no_image = embedding_sample(13, image=False)
    no_caption = embedding_sample(14)
    del no_caption["txt"]
    write_tar(tmp_path / "e.tar", [*good[:2], missing, wrong_dim, pickled, *good[2:], no_caption])
    write_tar(tmp_path / "f.tar", [no_image])
    dm = EmbeddingDataModule(val_shards=[str(tmp_path / "e.tar")], batch_size=2, num_workers=0)
    assert sum(len(b["key"]) for b in dm.val_dataloader()) == 4
    bad = {k: v for k, v in dm.skipped_samples("val").items() if v and k != "delivered"}
    assert bad == {"missing_embedding": 1, "invalid_array": 2, "missing_caption": 1}

    images = EmbeddingDataModule(val_shards=str(tmp_path / "f.tar"), with_images=True,
                                 num_workers=0)
    assert list(images.val_dataloader()) == []
    assert images.skipped_samples("val")["missing_image"] == 1


def test_embed_dim_pins_the_width(tmp_path: Path) -> None:
    write_tar(tmp_path / "e.tar", [embedding_sample(i, dim=6) for i in range(3)])
    dm = EmbeddingDataModule(val_shards=str(tmp_path / "e.tar"), embed_dim=8, num_workers=0)
    assert list(dm.val_dataloader()) == []
    assert dm.skipped_samples("val")["invalid_array"] == 3


def test_unknown_pattern_names_it(tmp_path: Path) -> None:
    dm = EmbeddingDataModule(f"{tmp_path}/emb-{{0..3}}.tar")
    with pytest.raises(ValueError, match=r"emb-\{0\.\.3\}"):
        dm.setup("fit")
    assert json.dumps(dm.hparams["train_shards"])  # hyper-parameters are saved


def test_identity_width_outranks_a_bad_first_sample(tmp_path: Path) -> None:
    """A wrong-width first sample must not become the width later samples are held to."""
    samples = [embedding_sample(0, dim=6, image=False)]
    samples += [embedding_sample(i, image=False) for i in range(1, 5)]
    (tmp_path / "train").mkdir()
    write_tar(tmp_path / "train" / "shard-000000.tar", samples)
    (tmp_path / "train" / "clip_identity.json").write_text(json.dumps({"embed_dim": 8}))
    dm = EmbeddingDataModule(f"{tmp_path}/train/*.tar", batch_size=2, num_workers=0,
                             shuffle_buffer=1)
    assert dm.make_decoder("train").embed_dim == 8
    keys = [k for batch in dm.train_dataloader() for k in batch["key"]]
    assert sorted(keys) == sorted(s["__key__"] for s in samples[1:])
