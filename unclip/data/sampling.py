"""Epoch-aware, reproducible shard shuffling, shard resampling and sample shuffling.

Each stage seeds itself from ``(seed, epoch, pass)`` (and, where streams should differ, the rank
and worker). The epoch comes from an :class:`EpochClock` in shared memory, which the loader sets
before every epoch, so even persistent DataLoader workers follow the trainer's epoch; ``pass``
counts the passes a worker makes within one epoch (``with_epoch`` repeats short shard lists).
Shard orders depend on ``(seed, epoch, pass)`` only, so every rank and worker agrees on them
before splitting.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence

import torch


class EpochClock:
    """The current epoch, readable by DataLoader worker processes."""

    def __init__(self) -> None:
        self.value = torch.zeros(1, dtype=torch.int64).share_memory_()

    def set(self, epoch: int) -> None:
        self.value[0] = epoch

    def get(self) -> int:
        return int(self.value[0])


class _Passes:
    """``(epoch, pass within the epoch)`` at each call: one call per pass over the data."""

    def __init__(self, clock: EpochClock) -> None:
        self.clock = clock
        self.epoch: int | None = None
        self.count = 0

    def next(self) -> tuple[int, int]:
        epoch = self.clock.get()
        self.count = self.count + 1 if epoch == self.epoch else 0
        self.epoch = epoch
        return epoch, self.count


def _rng(*parts: object) -> random.Random:
    return random.Random("/".join(map(str, parts)))  # str seeds hash stably (sha512)


def worker_id() -> int:
    info = torch.utils.data.get_worker_info()
    return info.id if info is not None else 0


class ShuffleShards:
    """Stage: all shards in a new order per (epoch, pass), the same on every rank and worker."""

    def __init__(self, seed: int, clock: EpochClock) -> None:
        self.seed = seed
        self.passes = _Passes(clock)

    def __call__(self, src: Iterable[dict]) -> Iterator[dict]:
        shards = list(src)
        epoch, count = self.passes.next()
        _rng(self.seed, "shards", epoch, count).shuffle(shards)
        return iter(shards)


class ResampleShards:
    """Source stage: shards drawn with replacement, forever (``with_epoch`` ends the epoch);
    each rank and worker draws its own sequence."""

    def __init__(self, urls: Sequence[str], seed: int, rank: int, clock: EpochClock) -> None:
        self.urls = list(urls)
        self.seed = seed
        self.rank = rank
        self.passes = _Passes(clock)

    def __call__(self) -> Iterator[dict]:
        epoch, count = self.passes.next()
        rng = _rng(self.seed, "resample", epoch, count, self.rank, worker_id())
        while True:
            yield {"url": rng.choice(self.urls)}


class ShuffleBuffer:
    """Stage: shuffle samples through a buffer of ``size`` (yielding from ``initial`` samples
    on, while it grows two for one, so the first batch comes quickly)."""

    def __init__(self, size: int, seed: int, rank: int, clock: EpochClock,
                 initial: int = 100) -> None:
        self.size = size
        self.initial = min(initial, size)
        self.seed = seed
        self.rank = rank
        self.passes = _Passes(clock)

    def __call__(self, src: Iterable[dict]) -> Iterator[dict]:
        epoch, count = self.passes.next()
        rng = _rng(self.seed, "samples", epoch, count, self.rank, worker_id())
        source = iter(src)
        buffer: list[dict] = []
        for sample in source:
            buffer.append(sample)
            if len(buffer) < self.size:
                extra = next(source, None)
                if extra is not None:
                    buffer.append(extra)
            if len(buffer) >= self.initial:
                j = rng.randrange(len(buffer))
                buffer[j], buffer[-1] = buffer[-1], buffer[j]
                yield buffer.pop()
        rng.shuffle(buffer)
        yield from buffer
