"""Epoch-seeded shuffling and resampling stages."""

from __future__ import annotations

from itertools import islice

from unclip.data.sampling import EpochClock, ResampleShards, ShuffleBuffer, ShuffleShards


def _shuffled(n: int, size: int, epoch: int, seed: int = 0, rank: int = 0) -> list[int]:
    clock = EpochClock()
    clock.set(epoch)
    return list(ShuffleBuffer(size, seed, rank, clock, initial=4)(iter(range(n))))


def test_shuffle_buffer_is_a_permutation_that_follows_the_epoch() -> None:
    for n, size in [(3, 10), (50, 10), (200, 64)]:
        assert sorted(_shuffled(n, size, 0)) == list(range(n))
    assert _shuffled(200, 64, 0) == _shuffled(200, 64, 0)
    assert _shuffled(200, 64, 0) != _shuffled(200, 64, 1)
    assert _shuffled(200, 64, 0) != _shuffled(200, 64, 0, rank=1)
    assert _shuffled(200, 64, 0) != list(range(200))


def test_shard_order_is_shared_by_ranks_and_changes_per_pass_and_epoch() -> None:
    shards = [{"url": f"s{i}"} for i in range(20)]
    clock = EpochClock()
    a, b = ShuffleShards(5, clock), ShuffleShards(5, clock)  # two ranks or workers
    first = list(a(shards))
    assert first == list(b(shards)) and sorted(s["url"] for s in first) == sorted(
        s["url"] for s in shards)
    assert list(a(shards)) != first  # second pass in the same epoch
    clock.set(1)
    assert list(a(shards)) == list(b(shards)) != first


def test_resampling_differs_by_rank_and_repeats_by_seed() -> None:
    clock = EpochClock()
    urls = [f"s{i}" for i in range(50)]

    def draw(rank: int) -> list[str]:
        return [s["url"] for s in islice(ResampleShards(urls, 0, rank, clock)(), 30)]

    assert draw(0) == draw(0) != draw(1)
    assert set(draw(0)) <= set(urls)
