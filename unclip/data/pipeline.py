"""The webdataset pipeline behind the DataModules, and a DataLoader that passes on the epoch.

Training: shard list (shuffled per epoch, or resampled with replacement) -> this rank's shards
(``split_by_rank``) -> this worker's shards (``wds.split_by_worker``) -> tar samples -> sample
shuffle buffer -> decode -> batch, with a fixed number of batches per worker (``with_epoch``).
Evaluation: the same without shuffling or resampling, one finite pass, last batch kept.
Shuffling and resampling are seeded per epoch (``unclip.data.sampling``).
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterable, Iterator
from functools import partial

import webdataset as wds
from torch.utils.data import DataLoader
from webdataset.tariterators import base_plus_ext, tar_file_iterator

from .rebalance import LeftOut
from .robust import SkipCounter, SkipSample
from .sampling import EpochClock, ResampleShards, ShuffleBuffer, ShuffleShards


def split_by_rank(src: Iterable[dict], rank: int, world_size: int) -> Iterator[dict]:
    """Every ``world_size``-th shard from ``rank`` (``wds.split_by_node`` with the rank given
    explicitly, so it also holds in workers that cannot see torch.distributed)."""
    for index, item in enumerate(src):
        if index % world_size == rank:
            yield item


def read_shards(shards: Iterable[dict], counter: SkipCounter) -> Iterator[dict]:
    """Samples (``{"__key__", "__url__", ext: bytes}``) of each shard, grouped within that shard
    only. An unreadable, truncated (or non-tar) or empty shard is counted once; the run goes on."""
    for shard in shards:
        yield from _group(_shard_files(shard["url"], counter), shard["url"])


def _shard_files(url: str, counter: SkipCounter) -> Iterator[dict]:
    try:
        stream = wds.gopen(url)
    except Exception as err:  # noqa: BLE001 - any opener failure: count it, keep going
        counter.skip("unreadable_shard", url, repr(err))
        return
    files, error = 0, None
    try:
        try:
            for item in tar_file_iterator(stream):
                files += 1
                yield item
        except (tarfile.TarError, EOFError, OSError) as err:
            error = err
    finally:
        close_error = _close(stream)
    if close_error is not None or (isinstance(error, OSError)):  # e.g. a failed pipe: command
        counter.skip("unreadable_shard", url, repr(close_error or error))
    elif error is not None:
        reason = "empty_shard" if files == 0 and "empty file" in str(error) else "truncated_shard"
        counter.skip(reason, url, repr(error))
    elif files == 0:
        counter.skip("empty_shard", url, "no files")


def _close(stream) -> Exception | None:
    try:
        stream.close()
    except Exception as err:  # noqa: BLE001 - pipes report their exit status on close
        return err
    return None


def _group(files: Iterator[dict], url: str) -> Iterator[dict]:
    current: dict | None = None
    for item in files:
        prefix, suffix = base_plus_ext(item["fname"])
        if prefix is None:
            continue
        suffix = suffix.lower()
        if current is None or prefix != current["__key__"]:
            if current is not None:
                yield current
            current = {"__key__": prefix, "__url__": url}
        if suffix in current:
            current["__duplicate__"] = suffix
        current[suffix] = item["data"]
    if current is not None:
        yield current


def decode_samples(
    samples: Iterable[dict], decode: Callable[[dict], dict], counter: SkipCounter
) -> Iterator[dict]:
    """``decode(sample)`` for each sample; a :class:`SkipSample` or :class:`LeftOut` is
    counted, not raised."""
    for sample in samples:
        where = f"{sample['__key__']} in {sample['__url__']}"
        if "__duplicate__" in sample:
            counter.skip("duplicate_file", where, f"two .{sample['__duplicate__']} files")
            continue
        try:
            decoded = decode(sample)
        except SkipSample as skip:
            counter.skip(skip.reason, where, skip.detail)
            continue
        except LeftOut:  # a rebalancing rule's choice, counted apart from bad data
            counter.left_out()
            continue
        counter.delivered()
        yield decoded


def build_pipeline(
    urls: list[str],
    *,
    decode: Callable[[dict], dict],
    collate: Callable[[list[dict]], dict],
    batch_size: int,
    counter: SkipCounter,
    training: bool,
    resampled: bool = False,
    shuffle_buffer: int = 1000,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    batches_per_worker: int | None = None,
    num_workers: int = 0,
) -> wds.DataPipeline:
    """A pipeline yielding collated batches (see the module docstring for the stages). With
    ``batches_per_worker``, every worker yields exactly that many batches per epoch and the
    pipeline has a length: the batches per rank over its ``num_workers`` workers."""
    clock = EpochClock()
    if resampled:
        source = [ResampleShards(urls, seed, rank, clock)]
    else:
        source = [wds.SimpleShardList(urls)]
        if training:  # a fresh shard order (and rank/worker assignment) every epoch
            source.append(ShuffleShards(seed, clock))
        source.append(partial(split_by_rank, rank=rank, world_size=world_size))
        source.append(wds.split_by_worker)
    stages = [*source, partial(read_shards, counter=counter)]
    if training and shuffle_buffer > 1:
        stages.append(ShuffleBuffer(shuffle_buffer, seed, rank, clock))
    stages.append(partial(decode_samples, decode=decode, counter=counter))
    stages.append(wds.batched(batch_size, collation_fn=collate, partial=not training))
    length = None if batches_per_worker is None else batches_per_worker * max(1, num_workers)
    pipeline = ShardPipeline(*stages, clock=clock, length=length)
    return pipeline if batches_per_worker is None else pipeline.with_epoch(batches_per_worker)


class ShardPipeline(wds.DataPipeline):
    """A DataPipeline with an epoch clock and, when known, a ``len`` (batches per epoch).
    Unlike ``with_length``, which makes a class on the fly, it pickles, as spawn/forkserver
    DataLoader workers need."""

    def __init__(self, *stages, clock: EpochClock, length: int | None = None) -> None:
        super().__init__(*stages)
        self.clock = clock
        self.size = length

    def __len__(self) -> int:
        if self.size is None:
            raise TypeError("this pipeline makes one pass of unknown length")
        return self.size


class ShardLoader(DataLoader):
    """A ``DataLoader(batch_size=None)`` over a batching pipeline that tells the pipeline the
    epoch before each pass (from ``epoch_fn``, e.g. the trainer's epoch, or by counting), so
    every epoch is shuffled differently yet reproducibly. ``epoch_fn`` may return None (no
    trainer yet): passes are counted then."""

    def __init__(
        self, dataset: ShardPipeline, epoch_fn: Callable[[], int | None] | None = None,
        **kwargs,
    ) -> None:
        kwargs.setdefault("batch_size", None)
        super().__init__(dataset, **kwargs)
        self.epoch_fn = epoch_fn
        self._passes = 0

    def __iter__(self):
        epoch = self.epoch_fn() if self.epoch_fn is not None else None
        epoch = self._passes if epoch is None else epoch
        self._passes += 1
        self.dataset.clock.set(epoch)
        return super().__iter__()
