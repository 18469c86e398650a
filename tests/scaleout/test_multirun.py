"""A 2-job sweep (``-m prior.lr=1e-4,3e-4``, basic launcher, one process) completes, and each job
has its own run directory, checkpoint and W&B (offline) run holding its own config, under a
display name ending in its job number."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.scaleout.runs import data_overrides, run_entry, write_split

LRS = {"0": (1e-4, b'"lr":0.0001'), "1": (3e-4, b'"lr":0.0003')}


def test_two_job_sweep_lands_in_separate_run_and_wandb_dirs(tmp_path: Path) -> None:
    root = tmp_path / "emb"
    write_split(root / "train", 2, 16)
    write_split(root / "val", 1, 8, seed=1)
    sweep = tmp_path / "sweep"
    run_entry("train_prior.py", [
        "-m", "experiment=smoke/prior", "logger=wandb", "prior.lr=1e-4,3e-4", *data_overrides(root),
        "data.batch_size=4", "data.shuffle_buffer=8", "trainer.max_steps=3",
        "trainer.val_check_interval=3", "callbacks.model_checkpoint.every_n_train_steps=3",
        f"hydra.sweep.dir={sweep}",
    ], tmp_path)
    run_ids = set()
    for job, (lr, recorded) in LRS.items():
        out = sweep / job
        ckpt = torch.load(out / "checkpoints" / "final.ckpt", weights_only=True)
        assert ckpt["global_step"] == 3
        assert ckpt["hyper_parameters"]["lr"] == lr
        runs = list((out / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, f"job {job}: W&B runs {runs}"  # the job opened its own run ...
        run_ids.add(runs[0].name.rsplit("-", 1)[1])
        data = next(runs[0].glob("run-*.wandb")).read_bytes()
        assert recorded in data  # ... and logged its own config (stored as plain JSON)
        assert f'"save_dir":"{out}"'.encode() in data
        assert f"train_prior-smoke-{job}".encode() in data  # display names tell the jobs apart
    assert len(run_ids) == 2
