"""configs/data/*.yaml instantiate their DataModules and read real shards."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

from unclip.data.embeddings import EmbeddingDataModule
from unclip.data.image_caption import ImageCaptionDataModule

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "data"


def _data(name: str, data_dir: Path, **overrides) -> object:
    cfg = OmegaConf.merge({"paths": {"data_dir": str(data_dir)}, "seed": 7},
                          {"data": OmegaConf.load(CONFIGS / f"{name}.yaml")},
                          {"data": overrides})
    return hydra.utils.instantiate(cfg.data)


@pytest.fixture
def data_dir(tmp_path: Path, shapes_dir: Path, embeddings_dir: Path) -> Path:
    (tmp_path / "embeddings").mkdir()
    (tmp_path / "shapes").symlink_to(shapes_dir)
    (tmp_path / "embeddings" / "shapes").symlink_to(embeddings_dir)
    return tmp_path


def test_shapes_config(data_dir: Path) -> None:
    dm = _data("shapes", data_dir, num_workers=0, batch_size=4)
    assert isinstance(dm, ImageCaptionDataModule) and dm.seed == 7 and dm.resolution == 64
    dm.setup("fit")  # no test split on disk: fitting does not need it
    assert next(iter(dm.train_dataloader()))["image"].shape == (4, 3, 64, 64)
    with pytest.raises(ValueError, match="test"):
        dm.setup("test")


def test_webdataset_config(data_dir: Path) -> None:
    with pytest.raises(Exception, match="train_shards"):
        _data("webdataset", data_dir)
    shards = f"{data_dir}/shapes/train/shapes-{{000000..000003}}.tar"
    dm = _data("webdataset", data_dir, train_shards=shards, epoch_length=16, num_workers=0,
               batch_size=4, resolution=32, pin_memory=False)
    batches = list(dm.train_dataloader())
    assert len(batches) == 4 and batches[0]["image"].shape == (4, 3, 32, 32)


def test_embeddings_config(data_dir: Path) -> None:
    dm = _data("embeddings", data_dir, num_workers=0, batch_size=4, with_images=True)
    assert isinstance(dm, EmbeddingDataModule) and dm.stats is not None
    batch = next(iter(dm.val_dataloader()))
    assert batch["image_emb"].shape == (4, 8) and batch["image"].shape == (4, 3, 64, 64)
