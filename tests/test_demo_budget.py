"""The demo's time budget (unclip/demo_budget.py): each training stage's share of what is left."""

from __future__ import annotations

import pytest

from unclip.demo_budget import (
    MIN_TRAIN_SECONDS,
    STAGE_SHARES,
    STARTUP_SECONDS,
    max_time_override,
    stage_seconds,
)

ALL = list(STAGE_SHARES)


def test_shares_cover_the_whole_budget():
    assert sum(STAGE_SHARES.values()) == pytest.approx(1.0)


def test_a_fresh_run_gives_each_stage_its_share():
    budget = 900.0
    assert stage_seconds("data", budget, 0.0, ALL) == pytest.approx(900 * 0.02)
    # after the data, the CLIP gets its share of the 882 s left among the 7 stages ahead
    left = ALL[1:]
    expected = 882 * STAGE_SHARES["clip"] / sum(STAGE_SHARES[s] for s in left)
    assert stage_seconds("clip", budget, 18.0, left) == pytest.approx(expected)


def test_on_plan_stages_keep_their_planned_seconds():
    # every stage taking exactly its share leaves the next one exactly its share
    budget, elapsed = 840.0, 0.0
    for i, stage in enumerate(ALL):
        seconds = stage_seconds(stage, budget, elapsed, ALL[i:])
        assert seconds == pytest.approx(budget * STAGE_SHARES[stage])
        elapsed += seconds
    assert elapsed == pytest.approx(budget)


def test_a_slow_stage_takes_time_from_the_later_ones_and_a_fast_one_gives_it():
    pending = ALL[3:]  # prior onwards, after data, CLIP and precompute
    on_plan = 900 * sum(STAGE_SHARES[s] for s in ALL[:3])
    planned = stage_seconds("prior", 900.0, on_plan, pending)
    assert stage_seconds("prior", 900.0, on_plan + 60, pending) < planned
    assert stage_seconds("prior", 900.0, on_plan - 60, pending) > planned


def test_reused_stages_leave_their_share_to_the_rest():
    # the data, CLIP and precompute were reused: the prior shares the whole budget with 4 stages
    pending = ALL[3:]
    alone = stage_seconds("prior", 900.0, 0.0, pending)
    assert alone == pytest.approx(900 * STAGE_SHARES["prior"] / sum(STAGE_SHARES[s]
                                                                    for s in pending))
    assert alone > 900 * STAGE_SHARES["prior"]


def test_an_overrun_budget_gives_nothing_left_and_the_floor_applies():
    assert stage_seconds("decoder", 900.0, 1000.0, ALL[4:]) == 0.0
    assert max_time_override(0.0) == f"++trainer.max_time=00:00:00:{int(MIN_TRAIN_SECONDS):02d}"


@pytest.mark.parametrize(("seconds", "override"), [
    (STARTUP_SECONDS + 150, "++trainer.max_time=00:00:02:30"),
    (STARTUP_SECONDS + 3600 + 61.9, "++trainer.max_time=00:01:01:01"),
    (STARTUP_SECONDS + 86400 + 7200, "++trainer.max_time=01:02:00:00"),
])
def test_max_time_override_takes_off_the_startup(seconds, override):
    assert max_time_override(seconds) == override


def test_bad_stages_are_named():
    with pytest.raises(ValueError, match="'decoder' is not among the pending"):
        stage_seconds("decoder", 900.0, 0.0, ["prior"])
    with pytest.raises(ValueError, match="no budget share for stage.*'distill'"):
        stage_seconds("prior", 900.0, 0.0, ["prior", "distill"])
