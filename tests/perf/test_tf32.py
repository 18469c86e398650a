"""The training runner turns TF32 matmuls on when CUDA is there, and leaves CPU runs alone."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

import unclip.training as training


class Stop(Exception):
    """Raised where the runner would build the data module: the set-up is done by then."""


@pytest.fixture
def runner(monkeypatch):
    before = torch.get_float32_matmul_precision()

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(training, "check_config", lambda cfg: None)
    monkeypatch.setattr(training.hydra.utils, "instantiate", stop)
    cfg = OmegaConf.create({"prior": {}, "data": {}, "seed": None})
    torch.set_float32_matmul_precision("highest")
    try:
        yield lambda: training.train(cfg, "prior")
    finally:
        torch.set_float32_matmul_precision(before)


@pytest.mark.parametrize("cuda, expected", [(True, "high"), (False, "highest")])
def test_tf32_only_with_cuda(monkeypatch, runner, cuda, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    with pytest.raises(Stop):
        runner()
    assert torch.get_float32_matmul_precision() == expected
