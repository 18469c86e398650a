"""LR schedules: factor values, the optimizer's rates, config wiring."""

from __future__ import annotations

import math

import hydra
import pytest
import torch

from tests.conftest import compose_config
from unclip.lr_schedules import warmup_cosine, warmup_stable_decay, wsd_factor


def rates(warmup: int, total: int, decay: int, **kw: float) -> list[float]:
    """The optimizer's learning rate before each of ``total + 2`` steps (base rate 1)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_stable_decay(opt, warmup, total, decay, **kw)
    out = []
    for _ in range(total + 2):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_plateau_and_linear_cooldown():
    lr = rates(warmup=4, total=20, decay=8, start_factor=0.2, min_ratio=0.1)
    assert lr[:4] == pytest.approx([0.2, 0.4, 0.6, 0.8])   # linear from start_factor
    assert lr[4:12] == pytest.approx([1.0] * 8)              # plateau until total - decay
    # cool-down: 1 - (1 - 0.1) * k / 8 at step 12 + k, reaching min_ratio at total_steps
    assert lr[12:21] == pytest.approx([1.0 - 0.9 * k / 8 for k in range(9)])
    assert lr[20] == pytest.approx(0.1) and lr[21] == pytest.approx(0.1)  # never below


def test_cooldown_over_the_whole_run_without_warmup():
    assert wsd_factor(0, 0, 10, 10) == 1.0
    assert wsd_factor(5, 0, 10, 10) == pytest.approx(0.5)
    assert wsd_factor(10, 0, 10, 10) == 0.0


@pytest.mark.parametrize(("kw", "match"), [
    ({"decay_steps": 0}, "decay_steps"),
    ({"decay_steps": 19}, "decay_steps"),      # longer than the steps after warmup
    ({"start_factor": 0.0}, "start_factor"),
    ({"min_ratio": 1.5}, "min_ratio"),
])
def test_bad_settings_are_refused(kw, match):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    args = {"warmup_steps": 4, "total_steps": 20, "decay_steps": 8, **kw}
    with pytest.raises(ValueError, match=match):
        warmup_stable_decay(opt, **args)


def test_shapes_full_decoder_cools_down_at_its_step_budget(tmp_path):
    cfg = compose_config("train_decoder", ["experiment=shapes_full/decoder"], tmp_path)
    sched_cfg = cfg.decoder.scheduler
    assert sched_cfg._target_ == "unclip.lr_schedules.warmup_stable_decay"
    assert sched_cfg.total_steps == cfg.trainer.max_steps
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = hydra.utils.instantiate(sched_cfg)(opt)
    assert sched.lr_lambdas[0](cfg.trainer.max_steps) == pytest.approx(sched_cfg.min_ratio)


def test_default_decoder_schedule_stays_constant_after_warmup(tmp_path):
    cfg = compose_config("train_decoder", [], tmp_path)
    assert cfg.decoder.scheduler._target_ == "torch.optim.lr_scheduler.LinearLR"
    assert cfg.decoder.scheduler.total_iters == 200
    glide = compose_config("train_decoder", ["decoder=glide64"], tmp_path)
    assert glide.decoder.scheduler.total_iters == 1000     # glide64 lengthens the warmup


def test_warmup_cosine_schedule_values():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = warmup_cosine(opt, warmup_steps=4, total_steps=14, min_ratio=0.1)
    lrs = []
    for _ in range(16):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    mid = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))
    assert lrs[9] == pytest.approx(mid)
    assert lrs[14] == pytest.approx(0.1) and lrs[15] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="must exceed warmup_steps"):
        warmup_cosine(opt, warmup_steps=5, total_steps=5)
