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
"""

from __future__ import annotations

import math

import torch


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup for ``warmup_steps``, then cosine decay to ``min_ratio`` at ``total_steps``.

    ``min_ratio`` and the factors are relative to the optimizer's learning rate.
    """
    if total_steps <= warmup_steps:
        raise ValueError(f"total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


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

    def factor(step: int) -> float:
        return wsd_factor(step, warmup_steps, total_steps, decay_steps, start_factor, min_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
