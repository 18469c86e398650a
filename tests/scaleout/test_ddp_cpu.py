"""Two gloo processes (trainer=ddp_cpu) train the prior and the decoder through the real entry
points: the ranks see disjoint samples that together make up the epoch, their weights stay
identical, the batch sizes (per device and global) are logged, the LR follows the global batch
when asked, and the checkpoint loads and samples in a single process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from tests.scaleout.runs import PER_SHARD, TRAIN_SHARDS, data_overrides, run_entry, write_dataset
from unclip.pipeline.loading import load_stage

PER_DEVICE, WORLD = 4, 2
STEPS = TRAIN_SHARDS * PER_SHARD // (PER_DEVICE * WORLD)  # exactly one epoch
BASE_LR = 2e-4


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("emb")
    return root, write_dataset(root)


def _overrides(stage: str, root: Path) -> list[str]:
    common = [
        f"experiment=smoke/{stage}", "trainer=ddp_cpu", "callbacks=[default,sample_ledger]",
        *data_overrides(root), f"data.batch_size={PER_DEVICE}", "data.num_workers=0",
        "data.shuffle_buffer=8", f"data.epoch_length={TRAIN_SHARDS * PER_SHARD}",
        f"trainer.max_steps={STEPS}", f"trainer.val_check_interval={STEPS}",
        "trainer.log_every_n_steps=1", f"callbacks.model_checkpoint.every_n_train_steps={STEPS}",
        f"{stage}.lr={BASE_LR}",
    ]
    if stage == "prior":  # the explicit option: lr tuned at global batch 4, run at 8 -> x2
        return [*common, "++lr_scaling={rule: linear, base_batch_size: 4}"]
    return [*common, f"decoder.clip_identity={root}/train/clip_identity.json"]


@pytest.fixture(scope="module", params=["prior", "decoder"])
def ddp_run(request, dataset, tmp_path_factory) -> tuple[str, Path, list[str], str]:
    """(stage, run dir, every train key, output) of one 2-process run."""
    stage = request.param
    root, keys = dataset
    out = tmp_path_factory.mktemp(f"ddp_{stage}") / "run"
    text = run_entry(f"train_{stage}.py", [*_overrides(stage, root), f"hydra.run.dir={out}"],
                     out.parent)
    return stage, out, keys, text


def _ledgers(out: Path) -> list[dict]:
    return [json.loads((out / "sample_ledger" / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_ranks_train_on_disjoint_samples_covering_the_epoch(ddp_run) -> None:
    _, out, all_keys, _ = ddp_run
    ledgers = _ledgers(out)
    assert [led["rank"] for led in ledgers] == [0, 1]
    assert all(led["world_size"] == WORLD for led in ledgers)
    seen = []
    for led in ledgers:
        assert len(led["keys"]) == STEPS and all(len(b) == PER_DEVICE for b in led["keys"])
        flat = [k for batch in led["keys"] for k in batch]
        assert len(flat) == len(set(flat))  # no sample twice on one rank
        seen.append(set(flat))
    assert not seen[0] & seen[1]  # no sample on both ranks
    assert seen[0] | seen[1] == set(all_keys)  # one epoch: every sample exactly once


def test_parameters_identical_across_ranks_after_training(ddp_run) -> None:
    _, out, _, _ = ddp_run
    rank0, rank1 = _ledgers(out)
    assert rank0["global_step"] == rank1["global_step"] == STEPS
    assert rank0["initial_checksum"] == rank1["initial_checksum"]
    assert rank0["final_checksum"] != rank0["initial_checksum"]  # the weights did train
    assert rank0["final_checksum"] == rank1["final_checksum"]  # gradients were all-reduced


def test_batch_sizes_logged_per_device_and_global(ddp_run) -> None:
    stage, out, _, text = ddp_run
    expected = {"per_device": PER_DEVICE, "devices": WORLD, "accumulate_grad_batches": 1,
                "global": PER_DEVICE * WORLD}
    hparams = yaml.safe_load((out / "csv" / "version_0" / "hparams.yaml").read_text())
    assert hparams["batch_sizes"] == expected
    assert f"{PER_DEVICE} per device x {WORLD} devices x 1 accumulated = 8 global" in text
    for led in _ledgers(out):  # what the ranks actually trained on
        assert led["batch_size"] == {"per_device": PER_DEVICE, "global": PER_DEVICE * WORLD}
    lr = torch.load(out / "checkpoints" / "final.ckpt", weights_only=True)[
        "hyper_parameters"]["lr"]
    assert lr == pytest.approx(BASE_LR * 2 if stage == "prior" else BASE_LR)
    assert hparams[stage]["lr"] == pytest.approx(lr)


def test_checkpoint_loads_in_one_process_and_samples(ddp_run) -> None:
    stage, out, _, _ = ddp_run
    module = load_stage(stage, out / "checkpoints" / "final.ckpt", "cpu")
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(2, 16, generator=gen)
    if stage == "prior":
        tokens = torch.randn(2, 6, 12, generator=gen)
        mask = torch.ones(2, 6, dtype=torch.bool)
        sample = module.sample(emb, tokens, mask, generator=gen, steps=2, best_of=1)
        assert sample.shape == (2, 16)
    else:
        sample = module.sample(emb, generator=gen, steps=2)
        assert sample.shape == (2, 3, 16, 16)
    assert torch.isfinite(sample).all()


def test_each_rank_writes_its_own_log_file(ddp_run) -> None:
    stage, out, _, _ = ddp_run
    rank0, rank1 = out / f"train_{stage}.log", out / f"train_{stage}.rank1.log"
    assert rank0.is_file() and rank1.is_file()
    assert "batch size" in rank0.read_text()  # rank 0's lines stay in the usual file
