"""Learning-rate schedules for runs with a fixed step budget (``_partial_`` factories in configs,
stepped every optimizer step).

``warmup_cosine`` (the prior configs): linear warmup, then cosine decay to
``min_ratio``.

``warmup_stable_decay`` (WSD; Hu et al. 2404.06395 sec. 4, Hägele et al. 2405.18392): linear
warmup, a constant plateau, then a linear cool-down to ``min_ratio`` over the last
``decay_steps`` of ``total_steps``. Against a constant rate (ADM/GLIDE) the cool-down removes
the noise of the last updates, which an EMA only averages. A run that its time budget stops
before the cool-down ends at the plateau's rate; past ``total_steps`` the rate stays at
``min_ratio``.

Both can have their end moved while they run (:func:`set_schedule_horizon`, used by
:class:`unclip.callbacks.time_budget.FitScheduleToTimeBudget`): the rest of the schedule, from
the current step on, is compressed (or stretched) in time to end at the new total, so the rate
is continuous and the shape (the rest of a plateau, the cool-down, the cosine) is kept. The
warps are kept in the scheduler's state dict, so a resumed run keeps them.
``torch.optim.lr_scheduler.OneCycleLR`` (the CLIP's; two-phase) can have its end moved during
its warmup: the anneal then ends at the new total.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

OneCycleLR = torch.optim.lr_scheduler.OneCycleLR


class HorizonLambdaLR(torch.optim.lr_scheduler.LambdaLR):
    """A ``LambdaLR`` over a step budget whose end can be moved while it runs.

    ``factor(step)`` is the schedule over the configured ``total_steps``; ``self.horizon`` holds
    the current total and the time warps (``warps``: ``[start, scale]`` pairs, newest
    last) that map a step of this run to a step of that schedule. Both are in the
    scheduler's state dict.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, factor: Callable[[float], float],
                 total_steps: int) -> None:
        self.horizon: dict[str, Any] = {"total_steps": int(total_steps), "warps": []}
        super().__init__(optimizer, lambda step: factor(self.schedule_step(step)))

    def schedule_step(self, step: float) -> float:
        """The configured schedule's step for ``step`` of this run (newest warp first)."""
        for start, scale in reversed(self.horizon["warps"]):
            if step > start:
                step = start + (step - start) * scale
        return step

    def move_end(self, total_steps: int) -> None:
        """End at ``total_steps``: the course from the current step on is compressed (or
        stretched) in time to fit."""
        now, old = self.last_epoch, self.horizon["total_steps"]
        if not now < total_steps:
            raise ValueError(f"a new total of {total_steps} steps must lie after the current "
                             f"step {now}")
        self.horizon["warps"].append([now, (old - now) / (total_steps - now)])
        self.horizon["total_steps"] = int(total_steps)


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup for ``warmup_steps``, then cosine decay to ``min_ratio`` at ``total_steps``.

    ``min_ratio`` and the factors are relative to the optimizer's learning rate.
    """
    if total_steps <= warmup_steps:
        raise ValueError(f"total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})")

    def factor(step: float) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return HorizonLambdaLR(optimizer, factor, total_steps)


def wsd_factor(
    step: int, warmup_steps: int, total_steps: int, decay_steps: int,
    start_factor: float = 0.01, min_ratio: float = 0.0,
) -> float:
    """Multiplier of the base rate at optimizer step ``step`` (0-based)."""
    if step < warmup_steps:
        return start_factor + (1.0 - start_factor) * step / warmup_steps
    decay_start = total_steps - decay_steps
    if step < decay_start:
        return 1.0
    progress = min(1.0, (step - decay_start) / decay_steps)
    return 1.0 - (1.0 - min_ratio) * progress


def warmup_stable_decay(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    decay_steps: int,
    start_factor: float = 0.01,
    min_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Warmup from ``start_factor`` over ``warmup_steps``, constant, then linear decay to
    ``min_ratio`` over the last ``decay_steps`` of ``total_steps`` (factors of the base rate)."""
    if not 0 < decay_steps <= total_steps - warmup_steps:
        raise ValueError(f"decay_steps ({decay_steps}) must be in (0, total_steps - warmup_steps "
                         f"= {total_steps - warmup_steps}]; is trainer.max_steps set?")
    if warmup_steps < 0 or not 0.0 < start_factor <= 1.0 or not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"need warmup_steps >= 0, start_factor in (0, 1], min_ratio in [0, 1]; "
                         f"got {warmup_steps}, {start_factor}, {min_ratio}")

    def factor(step: float) -> float:
        return wsd_factor(step, warmup_steps, total_steps, decay_steps, start_factor, min_ratio)

    return HorizonLambdaLR(optimizer, factor, total_steps)


def schedule_horizon(scheduler: Any) -> int | None:
    """The step a schedule ends at, or None when it has no end that can be moved (a constant
    rate, a three-phase OneCycle, any other scheduler)."""
    if isinstance(scheduler, HorizonLambdaLR):
        return int(scheduler.horizon["total_steps"])
    if isinstance(scheduler, OneCycleLR) and len(scheduler._schedule_phases) == 2:
        return int(scheduler.total_steps)
    return None


def can_move_end(scheduler: Any) -> bool:
    """Whether :func:`set_schedule_horizon` now keeps the rate continuous: always for this
    module's schedules; for OneCycle only during its warmup (its anneal is laid over the phase)."""
    if isinstance(scheduler, HorizonLambdaLR):
        return True
    start = first_decay_step(scheduler)
    return start is not None and scheduler.last_epoch < start


def first_decay_step(scheduler: Any) -> int | None:
    """For OneCycle: the step after which its end can no longer be moved; None otherwise."""
    if isinstance(scheduler, OneCycleLR) and schedule_horizon(scheduler) is not None:
        return int(scheduler._schedule_phases[0]["end_step"]) + 1
    return None


def set_schedule_horizon(scheduler: Any, total_steps: int) -> None:
    """End the schedule at ``total_steps``. This module's schedules compress (or stretch) the
    rest of their course in time from the current step; a two-phase OneCycle, still in its
    warmup, ends its anneal there instead."""
    if isinstance(scheduler, HorizonLambdaLR):
        scheduler.move_end(total_steps)
    elif schedule_horizon(scheduler) is not None:
        warmup_end = scheduler._schedule_phases[0]["end_step"]
        if not can_move_end(scheduler) or total_steps - 1 <= warmup_end:
            raise ValueError(f"OneCycle's end can be moved only during its warmup (to "
                             f"{warmup_end + 1:g} steps), to more steps than that; asked "
                             f"{total_steps} at step {scheduler.last_epoch}")
        scheduler._schedule_phases[1]["end_step"] = float(total_steps - 1)
        scheduler.total_steps = int(total_steps)
    else:
        raise TypeError(f"{type(scheduler).__name__} has no movable horizon")
