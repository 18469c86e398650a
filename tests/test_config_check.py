"""Start-up config checks name the bad key and what is allowed."""

from __future__ import annotations

from typing import Literal

import pytest
from omegaconf import OmegaConf

from unclip.config_check import ConfigError, check_config


class Widget:
    def __init__(self, width: int, mode: Literal["x0", "eps", "v"] = "x0", rate: float = 0.1,
                 name: str | None = None) -> None:
        self.width, self.mode = width, mode


TARGET = f"{__name__}.Widget"


def test_valid_nested_config_passes() -> None:
    cfg = OmegaConf.create({"stage": {"_target_": TARGET, "width": 4, "mode": "v", "rate": 1,
                                      "name": None, "inner": None}})
    del cfg.stage.inner
    check_config(cfg)


def test_misspelled_key_names_path_and_suggestion() -> None:
    cfg = OmegaConf.create({"stage": {"net": {"_target_": TARGET, "widht": 4}}})
    with pytest.raises(ConfigError, match=r"stage\.net\.widht.*Did you mean 'width'.*Allowed"):
        check_config(cfg)


def test_literal_value_lists_allowed_values() -> None:
    cfg = OmegaConf.create({"stage": {"_target_": TARGET, "width": 4, "mode": "noise"}})
    with pytest.raises(ConfigError, match=r"stage\.mode.*one of \['x0', 'eps', 'v'\]"):
        check_config(cfg)


def test_wrong_type_is_reported() -> None:
    cfg = OmegaConf.create({"stage": {"_target_": TARGET, "width": "wide"}})
    with pytest.raises(ConfigError, match=r"stage\.width' = 'wide': expected an int"):
        check_config(cfg)


def test_unimportable_target_is_reported() -> None:
    cfg = OmegaConf.create({"stage": {"_target_": "unclip.nothing.Here"}})
    with pytest.raises(ConfigError, match=r"stage\._target_='unclip.nothing.Here' cannot be"):
        check_config(cfg)


def test_trainer_typo_caught_in_real_lightning_signature() -> None:
    cfg = OmegaConf.create({"trainer": {"_target_": "pytorch_lightning.Trainer",
                                        "max_step": 3}})
    with pytest.raises(ConfigError, match=r"trainer\.max_step.*Did you mean 'max_steps'"):
        check_config(cfg)
    cfg = OmegaConf.create({"trainer": {"_target_": "pytorch_lightning.Trainer",
                                        "precision": "bf17"}})
    with pytest.raises(ConfigError, match=r"trainer\.precision"):
        check_config(cfg)
