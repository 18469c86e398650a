"""Fit the step budget and its learning-rate schedule to the time budget (``trainer.max_time``).

A quality run is configured as ``trainer.max_steps`` with a schedule over those steps (WSD's
cool-down, a cosine decay, OneCycle) and ``trainer.max_time`` as a hard stop. On a machine slower
than the one the steps were sized for, the hard stop comes first and the run ends at the
plateau's rate, before its cool-down: the worst weights of the run are the ones released.

This callback measures the pace (wall seconds per optimizer step, validation and checkpoints
included) after ``probe_steps`` steps, and when ``max_steps`` does not fit in what is left of
``max_time`` (less a ``margin`` share of it), it lowers ``max_steps`` to what fits and moves
the schedule's end there (:func:`unclip.lr_schedules.set_schedule_horizon`: the rest of its
course is compressed in time from the current step, so the rate stays continuous and the
cool-down still ends the run). It plans again every ``recheck_every`` steps, when the pace
includes validations, up or down, never past the configured
``max_steps``. A OneCycle schedule's end can be moved only during its warmup, so the first plan
comes before that ends. The plan is saved in checkpoints: a
resumed run keeps it.

It does nothing without ``max_time``, when ``max_steps`` fits, or when no schedule can be
retargeted (a constant rate has no cool-down to protect; the hard stop then applies as before).
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Timer

from unclip.lr_schedules import (
    can_move_end,
    first_decay_step,
    schedule_horizon,
    set_schedule_horizon,
)

log = logging.getLogger(__name__)


class FitScheduleToTimeBudget(pl.Callback):
    """Move ``max_steps`` and the LR schedule's end to what ``max_time`` holds.

    Args:
        probe_steps: optimizer steps of this run timed before the first plan (the first few
            steps carry warm-up costs; later plans time all steps since this probe began).
        recheck_every: steps between later plans (0: plan once); these see the cost of the
            validations so far, which the first plan, before any, does not.
        margin: share of ``max_time`` kept free for what the pace does not see (the last
            validation, final checkpoints, a slower stretch).
        min_steps: never plan fewer steps than this.
        tolerance: a later plan moves the end only when it differs from the current one by
            more than this share of it.
    """

    def __init__(self, probe_steps: int = 50, recheck_every: int = 250, margin: float = 0.05,
                 min_steps: int = 1, tolerance: float = 0.02) -> None:
        if probe_steps < 1 or recheck_every < 0 or min_steps < 1:
            raise ValueError("callbacks.time_budget: need probe_steps >= 1, recheck_every >= 0 "
                             f"and min_steps >= 1; got {probe_steps}, {recheck_every}, "
                             f"{min_steps}")
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"callbacks.time_budget.margin must be in [0, 1), got {margin}")
        if not 0.0 <= tolerance < 1.0:
            raise ValueError(f"callbacks.time_budget.tolerance must be in [0, 1), got {tolerance}")
        self.probe_steps, self.recheck_every = int(probe_steps), int(recheck_every)
        self.margin, self.min_steps = float(margin), int(min_steps)
        self.tolerance = float(tolerance)
        self.planned_steps: int | None = None   # the planned max_steps, once planned
        self.configured_steps: int | None = None   # max_steps as configured: the most planned
        self.plans: list[tuple[int, int]] = []   # (step, planned max_steps) of this run
        self._start: tuple[int, float] | None = None   # (step, elapsed) where timing began
        self._next_plan: int | None = None

    # ------------------------------------------------------------------ plumbing
    @staticmethod
    def _timer(trainer: pl.Trainer) -> Timer | None:
        timers = [c for c in trainer.callbacks if isinstance(c, Timer)]
        return timers[0] if timers and timers[0]._duration is not None else None

    @staticmethod
    def _schedulers(trainer: pl.Trainer) -> list[Any]:
        return [cfg.scheduler for cfg in trainer.lr_scheduler_configs]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # this run's max_steps caps the plans: a resumed run may be given more (or fewer) steps
        self.configured_steps = trainer.max_steps
        if self.planned_steps is not None:   # resumed: keep the saved plan, within that cap
            if trainer.max_steps is not None and trainer.max_steps >= 0:
                self.planned_steps = min(self.planned_steps, trainer.max_steps)
            trainer.fit_loop.epoch_loop.max_steps = self.planned_steps
        self._start = None   # the first batch of this run starts the timing and the probe

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        timer = self._timer(trainer)
        if timer is None or trainer.max_steps is None or trainer.max_steps < 0:
            return
        step = trainer.global_step
        if self._start is None:   # time from the end of the first step of this run
            self._start = (step, timer.time_elapsed("train"))
            self._next_plan = step + self.probe_steps
            starts = [first_decay_step(s) for s in self._schedulers(trainer)]
            starts = [s for s in starts if s is not None]
            if starts:   # plan before OneCycle's warmup ends (later its end cannot move)
                self._next_plan = max(step + 2, min(self._next_plan, min(starts) - 1))
            return
        if self._next_plan is None or step < self._next_plan:
            return
        self._next_plan = step + self.recheck_every if self.recheck_every else None
        self.plan(trainer, pl_module, timer)

    # ---------------------------------------------------------------------- plan
    def plan(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
             timer: Timer) -> int | None:
        """Move ``max_steps`` and the schedules' end to the steps that fit (at most the configured
        ``max_steps``); the new total, or None when nothing moved."""
        step, elapsed = trainer.global_step, timer.time_elapsed("train")
        start_step, start_elapsed = self._start or (0, 0.0)
        pace = max(elapsed - start_elapsed, 1e-9) / max(step - start_step, 1)
        left = timer.time_remaining("train") - self.margin * timer._duration
        fits = max(self.min_steps, step + 1, step + int(left / pace))
        fits = min(fits, self.configured_steps or trainer.max_steps)
        # every rank takes rank 0's plan: ranks that stopped at different steps would hang DDP
        fits = int(trainer.strategy.broadcast(fits, src=0))
        if abs(fits - trainer.max_steps) <= max(1, self.tolerance * trainer.max_steps):
            return None   # the current plan holds
        schedulers = [s for s in self._schedulers(trainer) if schedule_horizon(s) is not None]
        if not schedulers:
            log.warning("time budget: %d of max_steps=%d fit in max_time at %.2f s/step, but no "
                        "LR schedule can be retargeted; the max_time stop applies",
                        fits, trainer.max_steps, pace)
            self._next_plan = None
            return None
        if not all(can_move_end(s) for s in schedulers):
            # OneCycle past its warmup: moving its end now would make the rate jump, so the
            # max_time stop applies as before
            log.warning("time budget: %d of max_steps=%d fit in max_time at %.2f s/step, but "
                        "the LR decay has begun at step %d; the max_time stop applies",
                        fits, trainer.max_steps, pace, step)
            self._next_plan = None
            return None
        old = trainer.max_steps
        for scheduler in schedulers:
            set_schedule_horizon(scheduler, fits)
        trainer.fit_loop.epoch_loop.max_steps = fits
        self.planned_steps = fits
        self.plans.append((step, fits))
        log.warning("time budget: %d steps fit in max_time at %.2f s/step (max_steps was %d, "
                    "configured %s); the LR schedule now ends there", fits, pace, old,
                    self.configured_steps)
        pl_module.log("time_budget/planned_steps", float(fits), rank_zero_only=True)
        return fits

    # -------------------------------------------------------------------- resume
    def state_dict(self) -> dict[str, Any]:
        # the cap is not saved: each run takes it from its own max_steps (on_train_start)
        return {"planned_steps": self.planned_steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.planned_steps = state_dict.get("planned_steps")   # older checkpoints' cap is ignored
