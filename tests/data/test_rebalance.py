"""Rebalancing the training stream by scene size (unclip.data.rebalance) on real shards."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.data.conftest import embedding_sample, write_tar
from tests.data.lightning_helpers import KeyRecorder, cpu_trainer
from unclip.data.embeddings import EmbeddingDataModule
from unclip.data.rebalance import KeepByObjectCount, LeftOut
from unclip.data.robust import SkippedSamplesReport


def _scene(n: int) -> dict:
    return {"objects": [{"shape": "circle"}] * n}


def test_draws_are_fixed_by_seed_and_key_and_uniform() -> None:
    rule = KeepByObjectCount({1: 0.5}, seed=3)
    keys = [f"{i:06d}" for i in range(4000)]
    draws = [rule.draw(k) for k in keys]
    assert draws == [KeepByObjectCount({1: 0.5}, seed=3).draw(k) for k in keys]
    assert draws != [KeepByObjectCount({1: 0.5}, seed=4).draw(k) for k in keys]
    assert all(0.0 <= d < 1.0 for d in draws)
    assert abs(sum(draws) / len(draws) - 0.5) < 0.02
    assert abs(sum(d < 0.25 for d in draws) / len(draws) - 0.25) < 0.02


def test_the_rule_keeps_its_fraction_of_the_listed_count_only() -> None:
    rule = KeepByObjectCount({"1": 0.3}, seed=0)  # Hydra may hand keys over as strings
    kept = {1: 0, 2: 0}
    for i in range(3000):
        for n in (1, 2):
            try:
                rule(f"k{i}", _scene(n))
                kept[n] += 1
            except LeftOut:
                pass
    assert kept[2] == 3000
    assert abs(kept[1] / 3000 - 0.3) < 0.03


def _pair(first: str, second: str) -> dict:
    return {"objects": [{"shape": "circle", "color": first}, {"shape": "square", "color": second}]}


def test_pairs_of_one_colour_keep_their_own_fraction() -> None:
    rule = KeepByObjectCount({1: 0.2, 2: 0.4}, seed=0, same_color_pairs=1.0)
    kept = {"single": 0, "mixed": 0, "same": 0}
    for i in range(3000):
        for name, scene in (("single", _scene(1)), ("mixed", _pair("red", "blue")),
                            ("same", _pair("red", "red"))):
            try:
                rule(f"k{i}", scene)
                kept[name] += 1
            except LeftOut as left_out:
                assert str(left_out) == ("2 object(s) of one colour" if name == "same" else
                                         f"{len(scene['objects'])} object(s)")
    assert kept["same"] == 3000
    assert abs(kept["mixed"] / 3000 - 0.4) < 0.03
    assert abs(kept["single"] / 3000 - 0.2) < 0.03
    # below the pairs' fraction too: same-colour pairs are left out, mixed ones all kept
    rule = KeepByObjectCount({}, seed=0, same_color_pairs=0.5)
    with pytest.raises(LeftOut, match="of one colour"):
        for i in range(50):
            rule(f"k{i}", _pair("red", "red"))
    for i in range(50):
        rule(f"k{i}", _pair("red", "blue"))


def test_same_colour_rule_needs_colours_and_a_fraction() -> None:
    with pytest.raises(ValueError, match=r"keep_same_color_pairs = 0.0: a fraction in \(0, 1\]"):
        KeepByObjectCount({1: 0.5}, same_color_pairs=0.0)
    with pytest.raises(ValueError, match="each object's 'color'.*sample abc in s.tar"):
        KeepByObjectCount({}, same_color_pairs=0.5)("abc", _scene(2), "s.tar")
    KeepByObjectCount({}, same_color_pairs=0.5)("abc", _scene(1))  # singles need no colour


@pytest.mark.parametrize("keep, message", [
    ({"one": 0.5}, "'one' is not an object count"),
    ({0: 0.5}, "0 is not an object count"),
    ({1.5: 0.5}, "1.5 is not an object count"),
    ({1: 0.0}, r"keep_by_object_count\[1\] = 0.0: a fraction in \(0, 1\]"),
    ({2: 1.5}, r"keep_by_object_count\[2\] = 1.5"),
])
def test_bad_rules_are_named(keep, message) -> None:
    with pytest.raises(ValueError, match=message):
        KeepByObjectCount(keep)


def test_a_sample_without_objects_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="sample abc in s.tar has keys \\['caption'\\]"):
        KeepByObjectCount({1: 0.5})("abc", {"caption": "x"}, "s.tar")


def _shards(tmp_path: Path, singles: int, pairs: int, images: bool = False) -> str:
    samples = []
    for i in range(singles + pairs):
        sample = embedding_sample(i, image=images)
        sample["__key__"] = f"{i:06d}"
        sample["json"] = json.dumps(_scene(1 if i < singles else 2))
        samples.append(sample)
    samples.sort(key=lambda s: s["__key__"][::-1])  # singles and pairs interleaved
    half = len(samples) // 2
    write_tar(tmp_path / "a.tar", samples[:half])
    write_tar(tmp_path / "b.tar", samples[half:])
    return str(tmp_path / "{a,b}.tar")


@pytest.mark.parametrize("workers", [0, 2])
def test_training_stream_is_rebalanced_and_counted(tmp_path: Path, workers: int) -> None:
    shards = _shards(tmp_path, singles=60, pairs=60)

    def kept(seed: int) -> list[str]:
        dm = EmbeddingDataModule(train_shards=shards, val_shards=shards, batch_size=1,
                                 num_workers=workers, shuffle_buffer=1, seed=seed,
                                 keep_by_object_count={1: 0.25})
        keys = [k for batch in dm.train_dataloader() for k in batch["key"]]
        totals = dm.skipped_samples("train")
        # batch_size 1: no partial batch is dropped; no info.json: one pass
        first_pass = sorted(set(keys))
        assert totals["left_out"] > 0 and not any(
            v for k, v in totals.items() if k not in ("delivered", "left_out"))
        val = [k for batch in dm.val_dataloader() for k in batch["key"]]
        assert len(val) == 120  # validation keeps every sample
        return first_pass

    keys = kept(seed=0)
    singles = [k for k in keys if int(k) < 60]
    assert len(keys) - len(singles) == 60  # every pair
    assert 5 <= len(singles) <= 25  # about a quarter of the 60 singles
    assert kept(seed=0) == keys  # the same samples every run
    assert kept(seed=1) != keys


def test_a_lightning_run_logs_the_left_out_samples_apart_from_bad_data(tmp_path: Path,
                                                                       caplog) -> None:
    shards = _shards(tmp_path, singles=12, pairs=4, images=True)
    dm = EmbeddingDataModule(train_shards=shards, batch_size=1, num_workers=0, shuffle_buffer=1,
                             with_images=True, keep_by_object_count={1: 0.5})
    model = KeyRecorder()
    trainer = cpu_trainer(tmp_path, [SkippedSamplesReport()], max_epochs=1)
    with caplog.at_level(logging.INFO):
        trainer.fit(model, datamodule=dm)
    seen = len(model.train_keys[0])
    left_out = trainer.callback_metrics["data/left_out/train"]
    assert seen + left_out == 16 and 0 < left_out < 12
    assert trainer.callback_metrics["data/skipped/train"] == 0
    report = [r.getMessage() for r in caplog.records if "[data] train epoch 0" in r.getMessage()]
    assert report == [f"[data] train epoch 0: the rebalancing rule left out {int(left_out)} of "
                      f"16 good samples"]


def test_the_datamodule_keeps_same_colour_pairs_apart(tmp_path: Path) -> None:
    samples = []
    for i in range(80):
        sample = embedding_sample(i)
        sample["__key__"] = f"{i:06d}"
        sample["json"] = json.dumps(_pair("red", "red" if i % 4 == 0 else "blue"))
        samples.append(sample)
    write_tar(tmp_path / "a.tar", samples)
    dm = EmbeddingDataModule(train_shards=str(tmp_path / "a.tar"), batch_size=1, num_workers=0,
                             shuffle_buffer=1, keep_by_object_count={2: 0.25},
                             keep_same_color_pairs=1.0)
    keys = {int(k) for batch in dm.train_dataloader() for k in batch["key"]}
    assert {i for i in range(80) if i % 4 == 0} <= keys  # every same-colour pair
    assert 2 <= len(keys) - 20 <= 30  # about a quarter of the 60 others
    assert dm.hparams["keep_same_color_pairs"] == 1.0


def test_the_rule_is_saved_as_plain_numbers_for_weights_only_checkpoints(tmp_path: Path) -> None:
    import torch
    from omegaconf import OmegaConf

    dm = EmbeddingDataModule(train_shards=_shards(tmp_path, 2, 2),
                             keep_by_object_count=OmegaConf.create({1: 0.5}))
    assert dm.hparams["keep_by_object_count"] == {1: 0.5}
    assert type(dm.hparams["keep_by_object_count"]) is dict
    torch.save({"datamodule_hyper_parameters": dict(dm.hparams)}, tmp_path / "h.pt")
    loaded = torch.load(tmp_path / "h.pt", weights_only=True)
    assert loaded["datamodule_hyper_parameters"]["keep_by_object_count"] == {1: 0.5}
