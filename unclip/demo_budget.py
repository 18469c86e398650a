"""The demo's time budget: how many seconds each training stage may train (``trainer.max_time``).

``make demo`` promises the whole stack in 15 minutes on a 2-core CPU, but CPUs differ by 2x:
the shapes_quick stages took 13.3 minutes on one 2-core machine and 24.2 on another. The
training stages (CLIP, prior, decoder, upsampler) can stop early; data generation, precompute,
sampling and evaluation are fixed work. So before each training stage the demo gives it a share
of what is left of the budget, in proportion to :data:`STAGE_SHARES` among the stages still to
run, less :data:`STARTUP_SECONDS` for what ``max_time`` does not see (imports, data setup, the
final checkpoint). A stage that runs short (its ``max_steps`` came first) leaves its time to the
stages after it; one that runs long (a slow precompute) takes it from them. Each stage's own
``FitScheduleToTimeBudget`` callback then fits its learning-rate schedule to that ``max_time``.
"""

from __future__ import annotations

from collections.abc import Iterable

# What each stage is planned to take of the budget. Shares of the shapes_quick stages measured on
# the 2-core Intel Xeon (session 12: data 15 s, CLIP 249, precompute 124, prior 181, decoder 588,
# upsampler 145, sample 25, evaluate 139), with the training stages cut to fit 15 minutes.
STAGE_SHARES: dict[str, float] = {
    "data": 0.02, "clip": 0.17, "precompute": 0.13, "prior": 0.11, "decoder": 0.32,
    "upsampler": 0.09, "sample": 0.03, "evaluate": 0.13,
}
TRAINING_STAGES = ("clip", "prior", "decoder", "upsampler")
# a training stage's wall time outside trainer.max_time: process start, imports, data setup,
# final checkpoint and export (15-25 s per stage on the 2-core CPU)
STARTUP_SECONDS = 25.0
# the least a training stage is given, however late: enough for some steps and its checkpoint
MIN_TRAIN_SECONDS = 30.0
# the budget each preset promises; other presets train to their configs' max_steps / max_time
PRESET_MINUTES: dict[str, float] = {"shapes_quick": 15.0}
# share of the budget kept free for what the plan cannot steer (a slow evaluation, the summary)
MARGIN = 0.05


def stage_seconds(stage: str, budget_s: float, elapsed_s: float, pending: Iterable[str]) -> float:
    """Wall seconds ``stage`` may take: what is left of the budget, shared by STAGE_SHARES.

    Args:
        stage: the stage about to run (one of ``pending``).
        budget_s: the whole demo's budget in seconds, margin already taken off.
        elapsed_s: what this demo run has spent so far.
        pending: the stages still to run in this demo run, ``stage`` included (reused stages
            take no time and are not pending).
    """
    pending = list(pending)
    if stage not in pending:
        raise ValueError(f"stage {stage!r} is not among the pending stages {pending}")
    unknown = [s for s in pending if s not in STAGE_SHARES]
    if unknown:
        raise ValueError(f"no budget share for stage(s) {unknown}; known: {sorted(STAGE_SHARES)}")
    left = max(0.0, budget_s - elapsed_s)
    return left * STAGE_SHARES[stage] / sum(STAGE_SHARES[s] for s in pending)


def max_time_override(seconds: float) -> str:
    """A Hydra override ``++trainer.max_time=DD:HH:MM:SS`` (set or add) for ``seconds`` of training.

    ``seconds`` is the stage's whole share: :data:`STARTUP_SECONDS` come off it, and it never
    falls under :data:`MIN_TRAIN_SECONDS`.
    """
    train = int(max(MIN_TRAIN_SECONDS, seconds - STARTUP_SECONDS))
    days, rest = divmod(train, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"++trainer.max_time={days:02d}:{hours:02d}:{minutes:02d}:{secs:02d}"
