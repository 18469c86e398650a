"""Sharding across 2 simulated ranks x 2 DataLoader workers: disjoint, and together complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.conftest import TRAIN, VAL
from tests.data.lightning_helpers import KeyRecorder, cpu_trainer
from unclip.data.image_caption import ImageCaptionDataModule


def _keys_per_rank(monkeypatch, make_loader) -> list[list[str]]:
    result = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))  # what torchrun/Lightning DDP set
        monkeypatch.setenv("WORLD_SIZE", "2")
        result.append([k for batch in make_loader() for k in batch["key"]])
    return result


@pytest.mark.parametrize("stage", ["train", "val"])
def test_ranks_and_workers_see_disjoint_samples(shapes_dir: Path, monkeypatch, stage) -> None:
    dm = ImageCaptionDataModule(f"{shapes_dir}/train/*.tar", f"{shapes_dir}/val/*.tar",
                                batch_size=5, num_workers=2, shuffle_buffer=10)
    total = TRAIN if stage == "train" else VAL
    make = dm.train_dataloader if stage == "train" else dm.val_dataloader
    rank0, rank1 = _keys_per_rank(monkeypatch, make)
    assert len(rank0) == len(set(rank0)) and len(rank1) == len(set(rank1))  # workers disjoint
    assert not set(rank0) & set(rank1)  # ranks disjoint
    assert len(rank0) + len(rank1) == total  # and nothing is lost
    if stage == "train":  # 40 samples / (2 ranks x batch 5) = 4 batches per rank, 2 per worker
        assert len(dm.train_dataloader()) == 4


@pytest.mark.parametrize("persistent", [False, True])
def test_trainer_epochs_reshuffle(shapes_dir: Path, tmp_path: Path, persistent: bool) -> None:
    dm = ImageCaptionDataModule(f"{shapes_dir}/train/*.tar", batch_size=4, num_workers=2,
                                shuffle_buffer=20, persistent_workers=persistent)
    model = KeyRecorder()
    cpu_trainer(tmp_path, [], max_epochs=2, limit_val_batches=0).fit(model, datamodule=dm)
    first, second = model.train_keys[0], model.train_keys[1]
    assert len(first) == len(second) == TRAIN and sorted(first) == sorted(second)
    assert first != second


class _KeyFiles(KeyRecorder):
    """Writes each rank's training keys to ``<out>/rank<r>.txt`` (spawned ranks share no memory)."""

    def __init__(self, out: str) -> None:
        super().__init__()
        self.out = out

    def on_train_epoch_end(self) -> None:
        keys = self.train_keys.get(self.current_epoch, [])
        Path(self.out, f"rank{self.global_rank}.txt").write_text("\n".join(keys))


@pytest.mark.slow
def test_real_ddp_ranks_read_disjoint_shards(shapes_dir: Path, tmp_path: Path) -> None:
    dm = ImageCaptionDataModule(f"{shapes_dir}/train/*.tar", batch_size=5, num_workers=2,
                                shuffle_buffer=10)
    trainer = cpu_trainer(tmp_path, [], max_epochs=1, limit_val_batches=0, devices=2,
                          strategy="ddp_spawn")
    trainer.fit(_KeyFiles(str(tmp_path)), datamodule=dm)
    rank0, rank1 = ((tmp_path / f"rank{r}.txt").read_text().split() for r in (0, 1))
    assert len(rank0) == len(rank1) == TRAIN // 2
    assert not set(rank0) & set(rank1) and len(set(rank0) | set(rank1)) == TRAIN
