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

Both keep their horizon (``total_steps``, ``decay_steps``) on the scheduler, in its state dict,
so it can be moved before the decay begins (:func:`set_schedule_horizon`, used by
:class:`unclip.callbacks.time_budget.FitScheduleToTimeBudget`) and a resumed run keeps the move.
``torch.optim.lr_scheduler.OneCycleLR`` (the CLIP's; two-phase) can be moved the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

OneCycleLR = torch.optim.lr_scheduler.OneCycleLR


class HorizonLambdaLR(torch.optim.lr_scheduler.LambdaLR):
    """A ``LambdaLR`` whose factor reads its horizon from ``self.horizon`` (a dict of ``kind``,
    ``total_steps``, ``warmup_steps`` and, for WSD, ``decay_steps``), which is saved in the
    scheduler's state dict and restored with it."""

    def __init__(self, optimizer: torch.optim.Optimizer, factor: Callable[..., float],
                 horizon: dict[str, Any]) -> None:
        self.horizon = dict(horizon)
        super().__init__(optimizer, lambda step: factor(step, self.horizon))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup for ``warmup_steps``, then cosine decay to ``min_ratio`` at ``total_steps``.

    ``min_ratio`` and the factors are relative to the optimizer's learning rate.
    """
    if total_steps <= warmup_steps:
        raise ValueError(f"total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})")

    def factor(step: int, horizon: dict[str, Any]) -> float:
        total = horizon["total_steps"]
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / (total - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return HorizonLambdaLR(optimizer, factor, {"kind": "cosine", "total_steps": total_steps,
                                               "warmup_steps": warmup_steps})


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

    def factor(step: int, horizon: dict[str, Any]) -> float:
        return wsd_factor(step, warmup_steps, horizon["total_steps"], horizon["decay_steps"],
                          start_factor, min_ratio)

    return HorizonLambdaLR(optimizer, factor, {"kind": "wsd", "total_steps": total_steps,
                                               "warmup_steps": warmup_steps,
                                               "decay_steps": decay_steps})


def schedule_horizon(scheduler: Any) -> int | None:
    """The step count a schedule is laid over, or None when it has none that can be moved."""
    if isinstance(scheduler, HorizonLambdaLR):
        return int(scheduler.horizon["total_steps"])
    if isinstance(scheduler, OneCycleLR) and len(scheduler._schedule_phases) == 2:
        return int(scheduler.total_steps)
    return None


def decay_start(scheduler: Any, total_steps: int | None = None) -> int:
    """The first step whose rate depends on the horizon (``total_steps``, default: the current
    one): the cool-down's start for WSD, the end of warmup for cosine and OneCycle."""
    if schedule_horizon(scheduler) is None:
        raise TypeError(f"{type(scheduler).__name__} has no movable horizon")
    total = schedule_horizon(scheduler) if total_steps is None else total_steps
    if isinstance(scheduler, HorizonLambdaLR):
        h = scheduler.horizon
        if h["kind"] == "wsd":
            return total - _scaled_decay(h, total)
        return int(h["warmup_steps"])
    if isinstance(scheduler, OneCycleLR):
        return int(scheduler._schedule_phases[0]["end_step"]) + 1
    raise TypeError(f"{type(scheduler).__name__} has no movable horizon")


def _scaled_decay(horizon: dict[str, Any], total: int) -> int:
    """WSD's cool-down length for a new total: the same share of the steps after warmup."""
    old_total, decay, warm = horizon["total_steps"], horizon["decay_steps"], horizon["warmup_steps"]
    if total == old_total:
        return int(decay)
    return max(1, round(decay * (total - warm) / (old_total - warm)))


def set_schedule_horizon(scheduler: Any, total_steps: int) -> None:
    """Lay the schedule over ``total_steps`` instead: WSD keeps its cool-down's share of the
    post-warmup steps; warmups keep their length in steps (OneCycle's too, so its rate up to
    the peak does not change)."""
    if isinstance(scheduler, HorizonLambdaLR):
        h = scheduler.horizon
        if total_steps <= h["warmup_steps"]:
            raise ValueError(f"a horizon of {total_steps} steps leaves no room after the "
                             f"{h['warmup_steps']} warmup steps")
        if h["kind"] == "wsd":
            h["decay_steps"] = _scaled_decay(h, total_steps)
        h["total_steps"] = int(total_steps)
    elif schedule_horizon(scheduler) is not None:   # two-phase OneCycle: warmup, anneal
        warmup_end = scheduler._schedule_phases[0]["end_step"]
        if total_steps - 1 <= warmup_end:
            raise ValueError(f"a horizon of {total_steps} steps leaves no room after the "
                             f"{warmup_end + 1:g} warmup steps")
        scheduler._schedule_phases[1]["end_step"] = float(total_steps - 1)
        scheduler.total_steps = int(total_steps)
    else:
        raise TypeError(f"{type(scheduler).__name__} has no movable horizon")
