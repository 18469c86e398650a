"""``ShardDataModule``: the Lightning plumbing shared by the image-caption and embedding modules.

Subclasses say how to decode one sample and collate a batch; this class owns shard patterns,
ranks and workers, epoch length, shuffling and the skip counters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_warn
from webdataset.utils import pytorch_worker_info

from .pipeline import ShardLoader, build_pipeline
from .robust import SkipCounter
from .shards import count_samples, expand_shards

Pattern = str | Sequence[str]
_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ()}


def already_collated(batch: dict) -> dict:
    """The loader's ``collate_fn``: the pipeline's batches are final. (``batch_size=None``
    would otherwise run ``default_convert``, which walks every caption and metadata dict of
    every batch: 5 ms per batch of 256 shapes samples.)"""
    return batch


class ShardDataModule(pl.LightningDataModule):
    """Batches from webdataset shards for train/val/test.

    Args:
        train_shards, val_shards, test_shards: shard patterns (see ``unclip.data.shards``);
            val/test may be None.
        batch_size: per device. ``val_batch_size`` defaults to it.
        num_workers: DataLoader workers per device; shards are split across ranks and workers.
        shuffle_buffer: training samples held for shuffling (0 or 1: no sample shuffle).
        resampled: draw training shards with replacement (infinite stream, as for multi-node
            runs); needs ``epoch_length``.
        epoch_length: training samples per epoch over all ranks. Default: the shards' count
            from ``info.json``/img2dataset stats, else one pass of unknown length.
        seed: shuffling and resampling seed; epochs differ but reruns repeat.
    """

    def __init__(
        self,
        train_shards: Pattern | None = None,
        val_shards: Pattern | None = None,
        test_shards: Pattern | None = None,
        batch_size: int = 64,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        shuffle_buffer: int = 1000,
        resampled: bool = False,
        epoch_length: int | None = None,
        persistent_workers: bool = False,
        pin_memory: bool = False,
        prefetch_factor: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if resampled and epoch_length is None:
            raise ValueError("resampled=True streams forever: set epoch_length (samples/epoch)")
        self.patterns = {"train": train_shards, "val": val_shards, "test": test_shards}
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.shuffle_buffer = shuffle_buffer
        self.resampled = resampled
        self.epoch_length = epoch_length
        self.persistent_workers = persistent_workers and num_workers > 0
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self.seed = seed
        self._urls: dict[str, list[str]] = {}
        self._counters: dict[str, SkipCounter] = {}

    # --- for subclasses ---------------------------------------------------------------------
    def make_decoder(self, stage: str) -> Callable[[dict], dict]:
        """A picklable callable: raw sample -> decoded sample (raises SkipSample)."""
        raise NotImplementedError

    def make_collate(self, stage: str) -> Callable[[list[dict]], dict]:
        """A picklable callable: list of decoded samples -> batch dict."""
        raise NotImplementedError

    # --- Lightning --------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Expand and check the shard patterns this stage needs (errors name the pattern)."""
        for split in _STAGE_SPLITS.get(stage, tuple(self.patterns)):
            if self.patterns[split] is not None and split not in self._urls:
                self._urls[split] = expand_shards(self.patterns[split])

    def train_dataloader(self) -> ShardLoader:
        return self._loader("train")

    def val_dataloader(self) -> ShardLoader | list:
        return self._loader("val") if self.patterns["val"] is not None else []

    def test_dataloader(self) -> ShardLoader | list:
        return self._loader("test") if self.patterns["test"] is not None else []

    def skipped_samples(self, stage: str) -> dict[str, int]:
        """Cumulative skips per reason (and ``delivered``) of this process's loaders for stage."""
        counter = self._counters.get(stage)
        return counter.totals() if counter is not None else {}

    # --- internals --------------------------------------------------------------------------
    def shard_urls(self, stage: str) -> list[str]:
        """The expanded shard list of a stage."""
        if self.patterns.get(stage) is None:
            raise ValueError(f"no {stage}_shards configured")
        if stage not in self._urls:
            self._urls[stage] = expand_shards(self.patterns[stage])
        return self._urls[stage]

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return trainer.global_rank, trainer.world_size
        rank, world_size, _, _ = pytorch_worker_info()
        return rank, world_size

    def _loader(self, stage: str) -> ShardLoader:
        urls = self.shard_urls(stage)
        training = stage == "train"
        rank, world_size = self._rank_and_world()
        counter = self._counters.setdefault(stage, SkipCounter(self.num_workers))
        batch_size = self.batch_size if training else self.val_batch_size
        batches_per_worker = self._batches_per_worker(urls, world_size) if training else None
        if not (training and self.resampled) and len(urls) < world_size * max(1, self.num_workers):
            rank_zero_warn(
                f"{stage}: {len(urls)} shards for {world_size} ranks x "
                f"{max(1, self.num_workers)} workers: some workers get no data"
                + ("; set resampled=true" if training else "")
            )
        pipeline = build_pipeline(
            urls,
            decode=self.make_decoder(stage),
            collate=self.make_collate(stage),
            batch_size=batch_size,
            counter=counter,
            training=training,
            resampled=training and self.resampled,
            shuffle_buffer=self.shuffle_buffer,
            seed=self.seed,
            rank=rank,
            world_size=world_size,
            batches_per_worker=batches_per_worker,
            num_workers=self.num_workers,
        )
        extra = {}
        if self.num_workers > 0 and self.prefetch_factor is not None:
            extra["prefetch_factor"] = self.prefetch_factor
        return ShardLoader(
            pipeline,
            epoch_fn=self._current_epoch if training else None,
            collate_fn=already_collated,
            num_workers=self.num_workers,
            persistent_workers=self.persistent_workers,
            pin_memory=self.pin_memory,
            **extra,
        )

    def _current_epoch(self) -> int | None:
        trainer = getattr(self, "trainer", None)
        return trainer.current_epoch if trainer is not None else None

    def _batches_per_worker(self, urls: list[str], world_size: int) -> int | None:
        """Batches each worker yields in a training epoch; None for one pass of unknown length."""
        samples = self.epoch_length if self.epoch_length is not None else count_samples(urls)
        if samples is None:
            if world_size > 1:
                rank_zero_warn("train: epoch length unknown with several ranks; ranks may see "
                               "different batch counts. Set epoch_length.")
            return None
        per_rank = samples // (self.batch_size * world_size)
        if per_rank < 1:
            raise ValueError(f"epoch of {samples} samples is less than one batch of "
                             f"{self.batch_size} per rank on {world_size} ranks")
        return math.ceil(per_rank / max(1, self.num_workers))
