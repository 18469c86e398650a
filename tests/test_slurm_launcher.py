"""The SLURM launcher config composes through hydra-submitit-launcher and drives the trainer."""

from __future__ import annotations

import subprocess
import sys

import yaml

from tests.conftest import REPO_ROOT


def _cfg(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "train_prior.py", "hydra/launcher=slurm", "trainer=slurm_ddp", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    return yaml.safe_load(out.split("\n", 1)[1])  # drop the '# @package' line


def test_slurm_launcher_values() -> None:
    launcher = _cfg("hydra.launcher.partition=gpu", "hydra.launcher.nodes=2",
                    "--cfg", "hydra", "--package", "hydra.launcher")
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert launcher["partition"] == "gpu"
    assert launcher["nodes"] == 2
    assert launcher["gpus_per_node"] == 8
    assert launcher["tasks_per_node"] == "${.gpus_per_node}"  # one task per GPU
    assert launcher["max_num_timeout"] > 0


def test_slurm_trainer_follows_the_launcher() -> None:
    trainer = _cfg("hydra.launcher.nodes=3", "hydra.launcher.gpus_per_node=4",
                   "--cfg", "job", "--package", "trainer", "--resolve")
    assert trainer["num_nodes"] == 3
    assert trainer["devices"] == 4
    assert trainer["strategy"] == "ddp"
    assert trainer["use_distributed_sampler"] is False
