"""Shared pytest fixtures: Hydra composition of the project's configs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"


def compose_config(
    config_name: str, overrides: list[str] | None = None, output_dir: Path | None = None
) -> DictConfig:
    """Compose ``configs/<config_name>.yaml`` as ``@hydra.main`` would, with ``hydra:`` resolvers.

    ``paths.output_dir`` is pointed at ``output_dir`` (a tmp dir) so nothing lands in ``logs/``.
    """
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose(config_name, overrides=overrides or [], return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
            cfg.hydra.runtime.cwd = str(REPO_ROOT)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture
def hydra_cfg(tmp_path: Path) -> Iterator:
    """Factory fixture: ``hydra_cfg("train_prior", ["prior=small"])`` -> composed DictConfig."""

    def _compose(config_name: str, overrides: list[str] | None = None) -> DictConfig:
        return compose_config(config_name, overrides, output_dir=tmp_path / "run")

    yield _compose
    GlobalHydra.instance().clear()
