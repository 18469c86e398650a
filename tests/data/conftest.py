"""Tiny real shard sets on disk for the data tests."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from unclip.data.shapes.writer import make_sample, write_dataset

# 8 train shards x 5 samples, val 5 + 5 + 2
TRAIN, VAL, SHARD = 40, 12, 5


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shapes")
    write_dataset(out, {"train": TRAIN, "val": VAL}, seed=3, workers=0, shard_size=SHARD,
                  progress=False)
    return out


def write_tar(path: Path, samples: list[dict]) -> Path:
    """Write samples (dicts of ``__key__`` and extension -> bytes/str) to one tar."""
    with wds.TarWriter(str(path)) as sink:
        for sample in samples:
            sink.write(sample)
    return path


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def embedding_sample(index: int, dim: int = 8, length: int = 5, width: int = 4,
                     image: bool = True) -> dict:
    """A sample in the precompute layout of docs/interfaces.md, built on a shapes sample."""
    rng = np.random.default_rng(index)
    base = make_sample(9, "train", index)
    mask = np.arange(length) < 2 + index % 3
    sample = {
        "__key__": base["__key__"],
        "img_emb.npy": npy(rng.standard_normal(dim).astype(np.float32)),
        "txt_emb.npy": npy(rng.standard_normal(dim).astype(np.float32)),
        "txt_tokens.npy": npy(rng.standard_normal((length, width)).astype(np.float16)),
        "txt_mask.npy": npy(mask),
        "txt": base["txt"],
        "json": base["json"],
    }
    if image:
        sample["png"] = base["png"]
    return sample


@pytest.fixture(scope="session")
def embeddings_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("embeddings")
    for split, start, shards in (("train", 0, 4), ("val", 100, 2)):
        (out / split).mkdir()
        for shard in range(shards):
            samples = [embedding_sample(start + shard * SHARD + i) for i in range(SHARD)]
            write_tar(out / split / f"emb-{shard:06d}.tar", samples)
    (out / "train" / "stats.json").write_text(json.dumps({"image": {"mean": [0.0] * 8}}))
    (out / "train" / "clip_identity.json").write_text(json.dumps({"embed_dim": 8}))
    return out
