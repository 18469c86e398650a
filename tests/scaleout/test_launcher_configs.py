"""The SLURM launcher (hydra-submitit-launcher) with trainer=slurm_ddp, resolved as a job sees
it, for every training entry point (tests/test_slurm_launcher.py covers the prior's unresolved
``--cfg`` output)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

SLURM = ["hydra/launcher=slurm", "trainer=slurm_ddp", "hydra.launcher.nodes=2",
         "hydra.launcher.gpus_per_node=4", "hydra.launcher.cpus_per_task=6", "run_name=sweep1"]


@pytest.mark.parametrize("entry", ["train_decoder", "train_clip"])
def test_every_stage_trainer_follows_the_launcher(hydra_cfg, entry: str) -> None:
    cfg = hydra_cfg(entry, SLURM)
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert (trainer["devices"], trainer["num_nodes"]) == (4, 2)
    assert trainer["strategy"] == "ddp" and trainer["accelerator"] == "gpu"
    assert trainer["use_distributed_sampler"] is False  # webdataset splits shards by rank


@pytest.mark.parametrize("entry", ["train_prior", "train_decoder", "train_clip"])
def test_launcher_resolves_one_task_per_gpu(hydra_cfg, entry: str) -> None:
    cfg = hydra_cfg(entry, SLURM)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert launcher["tasks_per_node"] == 4 and launcher["nodes"] == 2
    assert launcher["setup"] == ["export OMP_NUM_THREADS=6"]
    sweep = Path(cfg.hydra.sweep.dir)
    assert sweep.parts[-3:] == (entry, "multirun", "sweep1")  # logs/<task>/multirun/<run_name>
    assert Path(launcher["submitit_folder"]).is_relative_to(sweep)
    # preemption: SIGTERM before the time limit saves last.ckpt, the requeued job resumes it
    assert launcher["signal_delay_s"] > 0 and launcher["max_num_timeout"] > 0
    assert "sigterm" in cfg.callbacks and cfg.resume is True
