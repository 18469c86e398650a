"""Start-up config checks name the bad key and what is allowed."""

from __future__ import annotations

from typing import Literal

import pytest
from omegaconf import OmegaConf

from tests.conftest import CONFIG_DIR
from tests.test_training_runner import _compose as _toy_compose
from unclip.config_check import ConfigError, Range, check_config, range_for
from unclip.training import train


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


def test_null_for_a_required_value_says_so() -> None:
    cfg = OmegaConf.create({"stage": {"_target_": TARGET, "width": None}})
    with pytest.raises(ConfigError, match=r"'stage\.width' is null but .*Widget needs a value"):
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


# ----------------------------------------------------------------------------- value ranges
ROOT_CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
EXPERIMENTS = sorted(str(p.relative_to(CONFIG_DIR / "experiment").with_suffix(""))
                     for p in (CONFIG_DIR / "experiment").rglob("*.yaml"))


def _entries(experiment: str) -> list[str]:
    text = (CONFIG_DIR / "experiment" / f"{experiment}.yaml").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("# entry:"))
    return [name.strip() for name in line.split(":", 1)[1].split(",")]


@pytest.mark.parametrize(
    ("config_name", "overrides"),
    [(name, []) for name in ROOT_CONFIGS]
    + [(root, [f"experiment={e}"]) for e in EXPERIMENTS for root in _entries(e)]
    + [("train_decoder", ["decoder=upsampler64"]), ("train_decoder", ["decoder=glide64"]),
       ("train_prior", ["prior=dalle2"]), ("train_decoder", ["trainer=ddp", "trainer.devices=2"]),
       ("train_decoder", ["trainer.max_steps=-1", "decoder.network.dropout=0",
                          "decoder.sampling.guidance_scale=0", "data.num_workers=0"])],
)
def test_the_project_configs_pass(hydra_cfg, config_name: str, overrides: list[str]) -> None:
    check_config(hydra_cfg(config_name, overrides))


@pytest.mark.parametrize(
    ("config_name", "override", "message"),
    [
        ("train_decoder", "decoder.lr=-1e-4", r"'decoder\.lr' = -0\.0001 .*a number > 0"),
        ("train_prior", "prior.lr=nan", r"'prior\.lr' = nan .*a number > 0"),
        ("train_decoder", "decoder.network.dropout=1.5", r"network\.dropout.*in \[0, 1\)"),
        ("train_decoder", "decoder.network.image_drop_prob=-0.1",
         r"network\.image_drop_prob' = -0\.1 .*a number in \[0, 1\]"),
        ("train_prior", "prior.network.cond_drop_prob=2", r"cond_drop_prob.*in \[0, 1\]"),
        ("train_decoder", "data.batch_size=0", r"'data\.batch_size' = 0 .*an integer >= 1"),
        ("train_decoder", "data.batch_size=2.5", r"'data\.batch_size' = 2\.5.*an int"),
        ("train_decoder", "trainer.max_steps=0", r"'trainer\.max_steps' = 0 .*>= 1 or -1"),
        ("train_decoder", "decoder.sampling.steps=0", r"'decoder\.sampling\.steps' = 0"),
        ("train_decoder", "decoder.network.model_channels=-8", r"model_channels' = -8"),
        ("train_decoder", "decoder.network.channel_mult=[1,0]", r"'decoder\.network\.channel_mult"),
        ("train_decoder", "decoder.sampling.guidance_scale=-1",
         r"guidance_scale' = -1 .*a number >= 0"),
        ("train_prior", "prior.network.width=0", r"'prior\.network\.width' = 0"),
        ("train_decoder", "callbacks.ema.decay=1.5", r"'callbacks\.ema\.decay' = 1\.5"),
        ("train_decoder", "data.num_workers=-1", r"'data\.num_workers' = -1 .*>= 0"),
        ("sample", "sampling.prior.guidance_scale=-2", r"sampling\.prior\.guidance_scale"),
        ("sample", "n=0", r"'n' = 0 .*an integer >= 1"),
        ("sample", "sampling.upsampler.aug_level=1.5", r"aug_level' = 1\.5 .*in \[0, 1\]"),
    ],
)
def test_out_of_range_values_name_the_key_and_the_range(hydra_cfg, config_name: str,
                                                        override: str, message: str) -> None:
    cfg = hydra_cfg(config_name, [override])
    with pytest.raises(ConfigError, match=message):
        check_config(cfg)


def test_upsampler_noise_levels_are_probabilities(hydra_cfg) -> None:
    cfg = hydra_cfg("train_decoder", ["decoder=upsampler64", "decoder.low_res.max_level=2"])
    with pytest.raises(ConfigError, match=r"low_res\.max_level' = 2 .*in \[0, 1\]"):
        check_config(cfg)


def test_specific_rules_win_and_ranges_read_well() -> None:
    assert range_for("trainer.max_steps") == Range(1, integer=True, also=(-1,))
    assert range_for("prior.scheduler.warmup_steps") == Range(0, integer=True)
    assert range_for("decoder.network.image_drop_prob") == Range(0, 1)
    assert range_for("data.val_batch_size").integer
    assert range_for("decoder.clip_identity") is None
    assert Range(0, 1, high_open=True).describe() == "a number in [0, 1)"
    assert 1.0 not in Range(0, 1, high_open=True) and 0 in Range(0, 1, high_open=True)
    assert float("inf") not in Range(0) and -1 in Range(1, integer=True, also=(-1,))


class ExplodingData:
    """A data module that fails the test if it is ever built."""

    def __init__(self) -> None:
        raise AssertionError("the data module was built before the config was checked")


def test_range_errors_come_before_any_data_is_read(tmp_path) -> None:
    cfg = _toy_compose(tmp_path, ["+toy.lr=-0.1", f"data._target_={__name__}.ExplodingData"])
    with pytest.raises(ConfigError, match=r"'toy\.lr' = -0\.1 is out of range"):
        train(cfg, "toy")
    assert not (tmp_path / "run" / "checkpoints").exists()
