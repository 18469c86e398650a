"""Moving a schedule's horizon, and fitting max_steps and the schedule to max_time."""

from __future__ import annotations

import math
import time

import pytest
import pytorch_lightning as pl
import torch

from tests.toy_modules import ToyData, ToyModule
from unclip.callbacks.time_budget import FitScheduleToTimeBudget
from unclip.lr_schedules import (
    can_move_end,
    schedule_horizon,
    set_schedule_horizon,
    warmup_cosine,
    warmup_stable_decay,
    wsd_factor,
)


def optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def run(scheduler, steps: int) -> list[float]:
    """The rate of each of ``steps`` optimizer steps from the scheduler's current step."""
    out = []
    for _ in range(steps):
        out.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def wsd(step: float) -> float:
    return wsd_factor(step, warmup_steps=10, total_steps=110, decay_steps=20)


def test_wsd_rest_is_compressed_to_the_new_end() -> None:
    sched = warmup_stable_decay(optimizer(), warmup_steps=10, total_steps=110, decay_steps=20)
    before = run(sched, 30)                       # warmup and part of the plateau
    set_schedule_horizon(sched, 70)               # steps 30..110 squeezed into 30..70
    assert schedule_horizon(sched) == 70
    after = run(sched, 40)
    assert before == pytest.approx([wsd(t) for t in range(30)])
    assert after == pytest.approx([wsd(30 + 2 * k) for k in range(40)])
    assert after[0] == before[-1] == 1.0           # continuous: still on the plateau
    assert after[-1] == pytest.approx(0.1)         # step 69 = step 108 of 110: the cool-down ends
    assert run(sched, 1)[0] == pytest.approx(0.0)  # and is over at the new total


def test_shortening_twice_inside_the_cooldown_stays_continuous() -> None:
    sched = warmup_stable_decay(optimizer(), warmup_steps=10, total_steps=110, decay_steps=20)
    run(sched, 30)
    set_schedule_horizon(sched, 90)                # 30..110 into 30..90: scale 4/3
    rates = run(sched, 50)                         # to step 80: schedule step 96.7, cooling
    set_schedule_horizon(sched, 85)                # 80..90 into 80..85: scale 2, then 4/3
    after = run(sched, 5)
    assert rates == pytest.approx([wsd(30 + k * 4 / 3) for k in range(50)])
    assert after == pytest.approx([wsd(30 + (50 + 2 * k) * 4 / 3) for k in range(5)])
    assert 0.0 < after[0] < 1.0 and after[0] == pytest.approx(wsd(30 + 50 * 4 / 3))
    assert run(sched, 1)[0] == pytest.approx(0.0)  # the cool-down is over at step 85


def test_cosine_and_one_cycle_horizons_move() -> None:
    cos = warmup_cosine(optimizer(), warmup_steps=5, total_steps=100, min_ratio=0.1)
    run(cos, 3)
    set_schedule_horizon(cos, 40)                  # steps 3..100 squeezed into 3..40
    rates = run(cos, 37)

    def cosine(step: float) -> float:
        if step < 5:
            return (step + 1) / 5
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - 5) / 95)))

    assert rates == pytest.approx([cosine(3 + k * 97 / 37) for k in range(37)])
    assert run(cos, 1)[0] == pytest.approx(0.1)    # at the new end: min_ratio

    one = torch.optim.lr_scheduler.OneCycleLR(optimizer(), max_lr=1.0, total_steps=200,
                                              pct_start=0.1, final_div_factor=100.0)
    run(one, 5)
    assert can_move_end(one)
    set_schedule_horizon(one, 100)                 # the warmup keeps its 20 steps
    reference = torch.optim.lr_scheduler.OneCycleLR(optimizer(), max_lr=1.0, total_steps=100,
                                                    pct_start=0.2, final_div_factor=100.0)
    assert run(one, 95) == pytest.approx(run(reference, 100)[5:])
    late = torch.optim.lr_scheduler.OneCycleLR(optimizer(), max_lr=1.0, total_steps=200)
    run(late, 80)                                  # past its warmup: the anneal is laid out
    assert not can_move_end(late)
    with pytest.raises(ValueError, match="only during its warmup"):
        set_schedule_horizon(late, 150)
    three = torch.optim.lr_scheduler.OneCycleLR(optimizer(), max_lr=1.0, total_steps=100,
                                                three_phase=True)
    assert schedule_horizon(three) is None


def test_moved_horizon_is_restored_from_the_state_dict() -> None:
    sched = warmup_stable_decay(optimizer(), warmup_steps=10, total_steps=110, decay_steps=20)
    run(sched, 12)
    set_schedule_horizon(sched, 60)
    resumed = warmup_stable_decay(optimizer(), warmup_steps=10, total_steps=110, decay_steps=20)
    resumed.load_state_dict(sched.state_dict())
    assert schedule_horizon(resumed) == 60
    assert run(resumed, 48) == pytest.approx(run(sched, 48))
    assert resumed.get_last_lr()[0] == pytest.approx(0.0)


def test_constant_schedule_has_no_horizon() -> None:
    const = torch.optim.lr_scheduler.LinearLR(optimizer(), start_factor=0.1, total_iters=5)
    assert schedule_horizon(const) is None
    with pytest.raises(TypeError, match="no movable horizon"):
        set_schedule_horizon(const, 10)


class WSDToy(ToyModule):
    """The toy regression under a WSD schedule over ``trainer.max_steps``."""

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
        sched = warmup_stable_decay(opt, warmup_steps=5, total_steps=self.trainer.max_steps,
                                    decay_steps=40)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class OneCycleToy(ToyModule):
    """The toy regression under the CLIP's OneCycle schedule (warmup: the first 10%)."""

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr, pct_start=0.1,
                                                    total_steps=self.trainer.max_steps,
                                                    cycle_momentum=False)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def fit(callback: FitScheduleToTimeBudget, max_steps: int, seconds: float, sleep: float,
        module_class: type[ToyModule] | None = None) -> tuple[pl.Trainer, ToyModule]:
    module = (module_class or WSDToy)(sleep_per_step=sleep)
    trainer = pl.Trainer(max_steps=max_steps, max_time={"seconds": seconds},
                         callbacks=[callback], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0)
    trainer.fit(module, datamodule=ToyData())
    return trainer, module


def test_slow_run_is_planned_to_end_with_its_cooldown() -> None:
    """About 0.02 s a step, 2.5 s of budget: far fewer than 400 steps fit. The run ends at the
    planned step, before max_time, with the cool-down done (rate 0)."""
    callback = FitScheduleToTimeBudget(probe_steps=10, recheck_every=20, margin=0.3)
    trainer, module = fit(callback, max_steps=400, seconds=2.5, sleep=0.02)
    planned = callback.planned_steps
    assert planned is not None and 10 < planned < 400
    assert trainer.global_step == planned == trainer.max_steps
    sched = trainer.lr_scheduler_configs[0].scheduler
    assert schedule_horizon(sched) == planned
    assert sched.get_last_lr()[0] == pytest.approx(0.0, abs=1e-9)


def test_first_plan_comes_before_a_short_warmup_ends() -> None:
    """OneCycle decays from step 40 of 400: the plan comes at step 39, not at probe_steps."""
    callback = FitScheduleToTimeBudget(probe_steps=100, recheck_every=0, margin=0.3)
    trainer, _ = fit(callback, max_steps=400, seconds=3.0, sleep=0.02, module_class=OneCycleToy)
    planned = callback.planned_steps
    assert planned is not None and 39 < planned < 400
    assert trainer.global_step == planned
    sched = trainer.lr_scheduler_configs[0].scheduler
    assert sched.total_steps == planned
    assert sched._schedule_phases[1]["end_step"] == planned - 1   # the anneal ends there
    assert sched.get_last_lr()[0] < 0.01 * 0.1   # under 1% of the peak rate at the end


class FastAfterStartToy(WSDToy):
    """0.05 s a step for 15 steps, then 0.005 s: the first plan is too pessimistic."""

    def training_step(self, batch, index):
        time.sleep(0.05 if self.global_step < 15 else 0.005)
        return super().training_step(batch, index)


def test_later_plans_move_the_end_back_up() -> None:
    callback = FitScheduleToTimeBudget(probe_steps=10, recheck_every=20, margin=0.3)
    trainer, _ = fit(callback, max_steps=400, seconds=3.0, sleep=0.0,
                     module_class=FastAfterStartToy)
    first, last = callback.plans[0][1], callback.plans[-1][1]
    assert first < last <= 400 and len(callback.plans) >= 2
    assert trainer.global_step == callback.planned_steps == last
    assert trainer.lr_scheduler_configs[0].scheduler.get_last_lr()[0] == pytest.approx(0.0)


def test_fast_run_keeps_its_steps() -> None:
    callback = FitScheduleToTimeBudget(probe_steps=5, recheck_every=10)
    trainer, _ = fit(callback, max_steps=60, seconds=600, sleep=0.0)
    assert callback.planned_steps is None and trainer.global_step == 60


class SlowsDownOneCycleToy(OneCycleToy):
    """Fast for 10 steps, then 0.1 s a step: the pace is seen only after OneCycle's warmup."""

    def training_step(self, batch, index):
        if self.global_step >= 10:
            time.sleep(0.1)
        return super().training_step(batch, index)


def test_no_move_once_one_cycle_anneals(caplog) -> None:
    """OneCycle past its warmup (step 6 of 60) cannot be shortened without a jump: nothing
    moves, and max_time stops the run as it would without the callback."""
    callback = FitScheduleToTimeBudget(probe_steps=5, recheck_every=10)
    with caplog.at_level("WARNING"):
        trainer, _ = fit(callback, max_steps=60, seconds=2.0, sleep=0.0,
                         module_class=SlowsDownOneCycleToy)
    assert callback.planned_steps is None
    assert trainer.lr_scheduler_configs[0].scheduler.total_steps == 60
    assert trainer.global_step < 60
    assert "LR decay has begun" in caplog.text


def test_saved_plan_is_kept_on_resume() -> None:
    callback = FitScheduleToTimeBudget()
    callback.load_state_dict({"planned_steps": 12})
    trainer, _ = fit(callback, max_steps=100, seconds=600, sleep=0.0)
    assert trainer.global_step == 12


def test_resumed_run_given_more_steps_may_plan_up_to_them() -> None:
    """The cap is this run's max_steps, not the one saved: a run resumed with 60 steps after a
    first leg of 20 goes on to 60 (the saved cap of 20 would have planned it back down)."""
    callback = FitScheduleToTimeBudget(probe_steps=5, recheck_every=10)
    callback.load_state_dict({"planned_steps": None, "configured_steps": 20})
    trainer, _ = fit(callback, max_steps=60, seconds=600, sleep=0.0)
    assert callback.configured_steps == 60 and trainer.global_step == 60


def test_saved_plan_above_a_lowered_max_steps_is_capped() -> None:
    callback = FitScheduleToTimeBudget()
    callback.load_state_dict({"planned_steps": 80, "configured_steps": 100})
    trainer, _ = fit(callback, max_steps=60, seconds=600, sleep=0.0)
    assert callback.planned_steps == 60 and trainer.global_step == 60


@pytest.mark.parametrize("kw", [{"probe_steps": 0}, {"margin": 1.0}, {"recheck_every": -1},
                                {"tolerance": -0.1}])
def test_bad_settings_are_refused(kw: dict) -> None:
    with pytest.raises(ValueError, match="callbacks.time_budget"):
        FitScheduleToTimeBudget(**kw)
