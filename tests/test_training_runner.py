"""The shared runner trains, checkpoints, and resumes a run in place."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from tests.conftest import CONFIG_DIR, REPO_ROOT
from unclip.training import train

TOY_ROOT = f"""
defaults:
  - paths: default
  - hydra: default
  - trainer: default
  - callbacks: default
  - logger: csv
  - _self_
task_name: toy
run_name: test
seed: 0
data:
  _target_: tests.toy_modules.ToyData
toy:
  _target_: tests.toy_modules.ToyModule
hydra:
  searchpath:
    - file://{CONFIG_DIR}
"""


def _compose(tmp_path: Path, overrides: list[str]):
    (tmp_path / "conf").mkdir(exist_ok=True)
    (tmp_path / "conf" / "toy.yaml").write_text(TOY_ROOT)
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(tmp_path / "conf")):
        cfg = compose("toy", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")
        cfg.hydra.runtime.cwd = str(REPO_ROOT)
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_runner_trains_checkpoints_and_resumes(tmp_path: Path) -> None:
    common = ["trainer.log_every_n_steps=1", "callbacks.model_checkpoint.every_n_train_steps=4",
              "callbacks.progress_bar.refresh_rate=0"]
    cfg = _compose(tmp_path, ["trainer.max_steps=8", *common])
    metrics = train(cfg, "toy")
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert last.is_file()
    first = torch.load(last, weights_only=True)
    assert first["global_step"] == 8
    final = torch.load(tmp_path / "run" / "checkpoints" / "final.ckpt", weights_only=True)
    assert final["global_step"] == 8
    # EMAWeightAveraging puts the averaged weights in state_dict and the raw ones beside them;
    # final.ckpt carries the same averaged weights as the last training checkpoint
    assert not torch.equal(first["state_dict"]["net.weight"],
                           first["current_model_state"]["net.weight"])
    assert torch.equal(final["state_dict"]["net.weight"], first["state_dict"]["net.weight"])
    assert "train/loss" in metrics

    # the same command with a larger budget continues from step 8 instead of starting over
    cfg = _compose(tmp_path, ["trainer.max_steps=16", *common])
    train(cfg, "toy")
    second = torch.load(last, weights_only=True)
    assert second["global_step"] == 16
    assert (tmp_path / "run" / "checkpoints" / "step0000012.ckpt").is_file()
    GlobalHydra.instance().clear()
