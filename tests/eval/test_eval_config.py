"""configs/eval/default.yaml instantiates the benchmark's pieces and matches the code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import hydra
from omegaconf import OmegaConf

from unclip.eval.prompts import build_prompt_set
from unclip.eval.reader import ReaderConfig

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "eval" / "default.yaml"


def test_eval_config_instantiates_prompt_set_and_reader():
    cfg = OmegaConf.load(CONFIG)
    prompts = hydra.utils.instantiate(cfg.benchmark.prompts)
    spec = cfg.benchmark.prompts
    assert prompts == build_prompt_set(spec.per_category, spec.seed)
    reader = hydra.utils.instantiate(cfg.benchmark.reader)
    assert isinstance(reader, ReaderConfig)
    assert reader == ReaderConfig()  # the config spells out the code's defaults, not others
    fields = {f.name for f in dataclasses.fields(ReaderConfig)}
    assert set(cfg.benchmark.reader) - {"_target_"} == fields
    assert cfg.metrics.kid_subset_size <= cfg.metrics.num_samples
    assert cfg.metrics.inception_weights is None  # nothing is downloaded by default
