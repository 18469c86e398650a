"""Corrupted shards: every kind of bad data is skipped, counted by reason, and reported."""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path

import pytest

from tests.data.conftest import write_tar
from tests.data.lightning_helpers import KeyRecorder, cpu_trainer
from unclip.data.image_caption import ImageCaptionDataModule
from unclip.data.robust import REASONS, SkippedSamplesReport
from unclip.data.shapes.writer import make_sample

EXPECTED = {
    "undecodable_image": 1,
    "missing_caption": 1,
    "invalid_json": 1,
    "missing_image": 1,  # the sample cut in half by the truncation
    "truncated_shard": 1,
    "empty_shard": 1,
    "unreadable_shard": 1,
}
GOOD = 3 + 4  # shard a keeps 3 of 6 samples, shard b 4 before the cut


def _samples(split: str, start: int, n: int) -> list[dict]:
    return [make_sample(5, split, i) for i in range(start, start + n)]


def corrupted_shards(root: Path, split: str) -> list[str]:
    """Shards with one of every problem (see EXPECTED)."""
    root.mkdir(parents=True, exist_ok=True)
    a = _samples(split, 0, 6)
    a[1]["png"] = b"\x89PNG\r\n\x1a\n but then garbage"
    del a[3]["txt"]
    a[4]["json"] = '{"objects": [1, 2'
    write_tar(root / "a.tar", a)
    full = write_tar(root / "b-full.tar", _samples(split, 6, 6))
    with tarfile.open(full) as tar:  # cut inside the png of the fifth sample (members: json, png,
        member = [m for m in tar.getmembers() if m.name.endswith(".png")][4]  # txt per sample)
    (root / "b.tar").write_bytes(full.read_bytes()[: member.offset_data + 10])
    full.unlink()
    (root / "c.tar").write_bytes(b"")
    return [str(root / "a.tar"), str(root / "b.tar"), str(root / "c.tar"), "pipe:false"]


def _bad(totals: dict) -> dict:
    return {k: v for k, v in totals.items() if v and k not in ("delivered", "left_out")}


@pytest.mark.parametrize("workers", [0, 2])
def test_each_problem_is_counted_once_and_the_good_samples_arrive(tmp_path, workers) -> None:
    dm = ImageCaptionDataModule(val_shards=corrupted_shards(tmp_path, "val"), batch_size=2,
                                num_workers=workers)
    keys = [k for batch in dm.val_dataloader() for k in batch["key"]]
    assert len(keys) == len(set(keys)) == GOOD
    totals = dm.skipped_samples("val")
    assert _bad(totals) == EXPECTED and totals["delivered"] == GOOD
    assert set(totals) == {*REASONS, "delivered", "left_out"} and totals["left_out"] == 0


def test_lightning_run_completes_and_reports_the_skips(tmp_path, caplog) -> None:
    dm = ImageCaptionDataModule(
        train_shards=corrupted_shards(tmp_path / "train", "train"),
        val_shards=corrupted_shards(tmp_path / "val", "val"),
        batch_size=2, num_workers=2, epoch_length=4, shuffle_buffer=4,
    )
    model = KeyRecorder()
    trainer = cpu_trainer(tmp_path, [SkippedSamplesReport()], max_epochs=1,
                          num_sanity_val_steps=0)
    with caplog.at_level(logging.INFO):
        trainer.fit(model, datamodule=dm)
    metrics = trainer.callback_metrics
    for reason, count in EXPECTED.items():
        assert metrics[f"data/skipped/val/{reason}"] == count
    assert metrics["data/skipped/val"] == 4  # samples; shard problems are counted apart
    assert metrics["data/skipped/train"] >= 1 and len(model.train_keys[0]) == 4
    assert len(model.val_keys) == GOOD
    report = [r.getMessage() for r in caplog.records if "[data] val epoch 0" in r.getMessage()]
    assert report and "skipped 4 of 11 samples" in report[0]
    assert "undecodable_image=1" in report[0] and "truncated_shard=1" in report[0]


def test_report_is_quiet_and_zero_for_clean_data(shapes_dir, tmp_path, caplog) -> None:
    dm = ImageCaptionDataModule(val_shards=f"{shapes_dir}/val/*.tar", batch_size=4, num_workers=0)
    trainer = cpu_trainer(tmp_path, [SkippedSamplesReport()])
    with caplog.at_level(logging.INFO):
        trainer.validate(KeyRecorder(), datamodule=dm)
    assert trainer.callback_metrics["data/skipped/val"] == 0
    assert not [r for r in caplog.records if "[data]" in r.getMessage()]
