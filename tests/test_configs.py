"""Every root config and every experiment composes; the shared groups instantiate."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import pytorch_lightning as pl
from omegaconf import OmegaConf

from tests.conftest import CONFIG_DIR
from unclip.training import instantiate_group, resolve_resume_path

ROOT_CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
EXPERIMENTS = sorted(
    str(p.relative_to(CONFIG_DIR / "experiment").with_suffix(""))
    for p in (CONFIG_DIR / "experiment").rglob("*.yaml")
)
TRAIN_CONFIGS = [name for name in ROOT_CONFIGS if name.startswith("train_")]


@pytest.mark.parametrize("config_name", ROOT_CONFIGS)
def test_root_config_composes_and_resolves(hydra_cfg, config_name: str) -> None:
    cfg = hydra_cfg(config_name)
    job = {k: cfg[k] for k in cfg if k != "hydra"}  # what @hydra.main hands the entry point
    container = OmegaConf.to_container(OmegaConf.create(job), resolve=True)  # all resolve
    assert container["task_name"]


@pytest.mark.parametrize("config_name", TRAIN_CONFIGS)
@pytest.mark.parametrize("trainer", ["default", "cpu", "ddp_cpu"])
def test_trainer_callbacks_loggers_instantiate(hydra_cfg, config_name: str, trainer: str) -> None:
    cfg = hydra_cfg(config_name, [f"trainer={trainer}", "logger=csv"])
    callbacks = instantiate_group(cfg.callbacks, "callbacks")
    loggers = instantiate_group(cfg.logger, "logger")
    assert all(isinstance(c, pl.Callback) for c in callbacks)
    assert [type(lg).__name__ for lg in loggers] == ["CSVLogger"]
    trainer_obj = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    assert isinstance(trainer_obj, pl.Trainer)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes(hydra_cfg, experiment: str) -> None:
    entry = OmegaConf.load(CONFIG_DIR / "experiment" / f"{experiment}.yaml")
    assert entry is not None
    # experiments name the entry point they are for in a leading comment: '# entry: train_prior'
    text = (CONFIG_DIR / "experiment" / f"{experiment}.yaml").read_text()
    entries = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("# entry:")]
    assert entries, f"experiment/{experiment}.yaml lacks a '# entry: <root config>' line"
    for root in entries[0].split(","):
        cfg = hydra_cfg(root.strip(), [f"experiment={experiment}"])
        job = {k: cfg[k] for k in cfg if k != "hydra"}
        OmegaConf.to_container(OmegaConf.create(job), resolve=True)


def test_unknown_group_option_names_the_choices(hydra_cfg) -> None:
    if not TRAIN_CONFIGS:
        pytest.skip("no training entry point configs yet")
    with pytest.raises(Exception, match="trainer"):
        hydra_cfg(TRAIN_CONFIGS[0], ["trainer=does_not_exist"])


def test_resume_path_prefers_explicit_then_last(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"paths": {"output_dir": str(tmp_path)}, "ckpt_path": None})
    assert resolve_resume_path(cfg) is None
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    last.write_bytes(b"x")
    assert resolve_resume_path(cfg) == str(last)
    cfg.resume = False
    assert resolve_resume_path(cfg) is None
    cfg.ckpt_path = str(tmp_path / "missing.ckpt")
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        resolve_resume_path(cfg)
