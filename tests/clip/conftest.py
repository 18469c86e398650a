"""Fixtures of the CLIP tests: a tiny random open_clip model and small real shapes shards."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from unclip.clip import FrozenCLIP
from unclip.data.shapes.writer import write_dataset


@pytest.fixture(scope="session")
def tiny_clip() -> FrozenCLIP:
    """``tiny-clip`` (unclip/clip_configs/tiny-clip.json), randomly initialised from seed 0."""
    torch.manual_seed(0)
    return FrozenCLIP("tiny-clip")


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory, tiny_clip: FrozenCLIP) -> Path:
    """The tiny model's weights as a plain open_clip state dict file."""
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    torch.save(tiny_clip.model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small shapes dataset: train 48 samples in 3 shards, val 32 in 2 shards."""
    out = tmp_path_factory.mktemp("shapes")
    write_dataset(out, {"train": 48, "val": 32}, seed=0, workers=0, shard_size=16,
                  progress=False)
    return out
