"""The OmegaConf resolvers of unclip/resolvers.py: per-rank log files, per-job W&B names."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

import unclip  # noqa: F401  (registers the resolvers)
from unclip.resolvers import rank_suffix, sweep_job

RANK_VARS = ("RANK", "SLURM_PROCID", "LOCAL_RANK")


@pytest.mark.parametrize(("env", "suffix"), [
    ({}, ""),
    ({"LOCAL_RANK": "0"}, ""),
    ({"LOCAL_RANK": "1"}, ".rank1"),
    ({"SLURM_PROCID": "3", "LOCAL_RANK": "1"}, ".rank3"),  # the global rank wins
    ({"RANK": "0", "LOCAL_RANK": "1"}, ""),
])
def test_rank_suffix(monkeypatch, env, suffix):
    for name in RANK_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert rank_suffix() == suffix
    cfg = OmegaConf.create({"file": "train${unclip.rank_suffix:}.log"})
    assert cfg.file == f"train{suffix}.log"


def test_sweep_job_is_empty_outside_a_multirun():
    assert sweep_job() == ""
    assert OmegaConf.create({"name": "a-b${unclip.sweep_job:}"}).name == "a-b"
