"""Bad data never stops a run and is never dropped silently: skips are counted by reason.

Decoders raise :class:`SkipSample`; the shard reader counts unreadable and truncated shards.
Counts live in a small shared-memory tensor (one row per DataLoader worker, one column per
reason), so they survive worker processes and need no extra key in the batch; they only grow, and
:class:`SkippedSamplesReport` logs and prints what each epoch added, summed over ranks.
"""

from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

log = logging.getLogger(__name__)

SAMPLE_REASONS: tuple[str, ...] = (
    "missing_image",
    "undecodable_image",
    "missing_caption",
    "undecodable_caption",
    "invalid_json",
    "duplicate_file",
    "missing_embedding",
    "invalid_array",
)
SHARD_REASONS: tuple[str, ...] = ("unreadable_shard", "truncated_shard", "empty_shard")
REASONS: tuple[str, ...] = SAMPLE_REASONS + SHARD_REASONS
_DELIVERED = len(REASONS)  # extra column: samples that decoded fine
_LEFT_OUT = _DELIVERED + 1  # extra column: good samples a rebalancing rule left out
_WARNINGS_PER_REASON = 5  # per process; later skips are logged at DEBUG level


class SkipSample(Exception):
    """Raised by a decoder for a sample that cannot be used; ``reason`` is one of REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown skip reason {reason!r}; expected one of {REASONS}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class SkipCounter:
    """Counts per reason, shared between the main process and ``num_workers`` workers."""

    def __init__(self, num_workers: int = 0) -> None:
        self.counts = torch.zeros(max(num_workers, 0) + 1, _LEFT_OUT + 1, dtype=torch.int64)
        self.counts.share_memory_()
        self._warned: dict[str, int] = {}

    def _row(self) -> int:
        info = torch.utils.data.get_worker_info()
        row = 0 if info is None else info.id + 1
        if row >= self.counts.shape[0]:
            raise RuntimeError(f"SkipCounter sized for {self.counts.shape[0] - 1} workers, "
                               f"used by worker {row - 1}")
        return row

    def skip(self, reason: str, where: str, detail: str = "") -> None:
        """Count one skipped sample or shard and say so (the first few times per reason)."""
        self.counts[self._row(), REASONS.index(reason)] += 1
        seen = self._warned.get(reason, 0)
        self._warned[reason] = seen + 1
        level = logging.WARNING if seen < _WARNINGS_PER_REASON else logging.DEBUG
        log.log(level, "skipped %s (%s)%s", where, reason, f": {detail}" if detail else "")

    def delivered(self, n: int = 1) -> None:
        self.counts[self._row(), _DELIVERED] += n

    def left_out(self, n: int = 1) -> None:
        """Count good samples a rebalancing rule left out on purpose (``unclip.data.rebalance``)."""
        self.counts[self._row(), _LEFT_OUT] += n

    def totals(self) -> dict[str, int]:
        """Cumulative counts: every reason, plus ``delivered`` and ``left_out``."""
        summed = self.counts.sum(dim=0).tolist()
        return {**dict(zip(REASONS, summed[:_DELIVERED], strict=True)),
                "delivered": summed[_DELIVERED], "left_out": summed[_LEFT_OUT]}


class SkippedSamplesReport(pl.Callback):
    """Log (``data/skipped/<stage>``, ``data/skipped/<stage>/<reason>``) and print the samples
    and shards the datamodule skipped in each train/validation/test epoch, summed over ranks.

    Works with any datamodule that has ``skipped_samples(stage) -> dict[str, int]``
    (cumulative counts per reason, plus ``delivered`` and optionally ``left_out``). Samples a
    rebalancing rule left out are logged apart (``data/left_out/<stage>``): they are not bad.
    """

    def __init__(self, warn_fraction: float = 0.5) -> None:
        self.warn_fraction = warn_fraction
        self._seen: dict[str, torch.Tensor] = {}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._report(trainer, pl_module, "train")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._report(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._report(trainer, pl_module, "test")

    def _report(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        source = getattr(trainer, "datamodule", None)
        if source is None or not hasattr(source, "skipped_samples"):
            return
        totals = source.skipped_samples(stage)
        names = (*REASONS, "delivered", "left_out")
        local = torch.tensor([totals.get(n, 0) for n in names], dtype=torch.int64)
        summed = trainer.strategy.reduce(local.to(pl_module.device), reduce_op="sum").cpu()
        delta = summed - self._seen.get(stage, torch.zeros_like(summed))
        self._seen[stage] = summed
        counts = dict(zip(names, delta.tolist(), strict=True))
        delivered = counts.pop("delivered")
        left_out = counts.pop("left_out")
        if left_out:
            pl_module.log(f"data/left_out/{stage}", float(left_out))
            rank_zero_info(f"[data] {stage} epoch {trainer.current_epoch}: the rebalancing rule "
                           f"left out {left_out} of {left_out + delivered} good samples")
        samples = sum(counts[r] for r in SAMPLE_REASONS)
        pl_module.log(f"data/skipped/{stage}", float(samples))
        for reason, n in counts.items():
            if n:
                pl_module.log(f"data/skipped/{stage}/{reason}", float(n))
        if not any(counts.values()):
            return
        seen = samples + delivered
        epoch = trainer.current_epoch
        message = f"[data] {stage} epoch {epoch}: skipped {samples} of {seen} samples"
        bad_samples = ", ".join(f"{r}={counts[r]}" for r in SAMPLE_REASONS if counts[r])
        bad_shards = ", ".join(f"{r}={counts[r]}" for r in SHARD_REASONS if counts[r])
        message += f" ({bad_samples})" if bad_samples else ""
        message += f"; bad shards: {bad_shards}" if bad_shards else ""
        if seen and samples / seen > self.warn_fraction:
            rank_zero_warn(message + " -- most samples are bad: check the shard keys and decoding")
        else:
            rank_zero_info(message)
