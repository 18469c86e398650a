"""The demo's --device: on CUDA every stage runs there (trainer=gpu, device=cuda), on CPU none."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import CONFIG_DIR
from unclip.demo import resolve_device, stages

TRAINING = {"clip": "train_clip", "prior": "train_prior", "decoder": "train_decoder",
            "upsampler": "train_decoder"}
PLACED = ("precompute", "sample", "evaluate")


def _commands(device: str) -> dict[str, list[str]]:
    plan = stages("shapes_quick", Path("/d"), Path("/l"), device)
    return {stage.name: stage.command for stage in plan}


def test_cuda_puts_every_stage_on_the_gpu() -> None:
    commands = _commands("cuda")
    for stage in TRAINING:
        assert "trainer=gpu" in commands[stage], commands[stage]
    for stage in PLACED:
        assert "device=cuda" in commands[stage], commands[stage]
    assert not any("trainer=" in arg or "device=" in arg for arg in commands["data"])


def test_cpu_keeps_the_configs_cpu_trainer() -> None:
    commands = _commands("cpu")
    for stage in TRAINING:
        assert not any(arg.startswith("trainer=") for arg in commands[stage]), commands[stage]
    for stage in PLACED:
        assert "device=cpu" in commands[stage], commands[stage]


@pytest.mark.parametrize("stage", sorted(TRAINING))
def test_the_gpu_overrides_compose_with_the_experiment(hydra_cfg, stage: str) -> None:
    command = _commands("cuda")[stage]
    overrides = [arg for arg in command if "=" in arg]
    cfg = hydra_cfg(TRAINING[stage], overrides)
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert trainer["accelerator"] == "gpu" and trainer["devices"] == 1
    assert trainer["precision"] == "bf16-mixed"
    # the experiment's own trainer keys survive the group switch
    experiment = OmegaConf.load(CONFIG_DIR / "experiment" / "shapes_quick" / f"{stage}.yaml")
    assert trainer["max_steps"] == experiment.trainer.max_steps


def test_auto_follows_torch_and_bad_devices_are_named() -> None:
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="CUDA_VISIBLE_DEVICES"):
        resolve_device("cuda:1")
    with pytest.raises(ValueError, match="'tpu'"):
        resolve_device("tpu")
