"""Global batch size (per device x devices x nodes x accumulation) and the opt-in LR scaling."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl

from unclip.training import batch_sizes, scaled_lr


def _trainer(**kw) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, **kw)


def test_global_batch_counts_devices_nodes_and_accumulation() -> None:
    trainer = _trainer(devices=2, num_nodes=3, strategy="ddp", accumulate_grad_batches=4)
    sizes = batch_sizes(SimpleNamespace(batch_size=8), trainer)
    assert sizes == {"per_device": 8, "devices": 6, "accumulate_grad_batches": 4, "global": 192}


def test_single_device_and_unknown_batch_size() -> None:
    trainer = _trainer(devices=1)
    assert batch_sizes(SimpleNamespace(batch_size=32), trainer)["global"] == 32
    assert batch_sizes(SimpleNamespace(), trainer) is None  # a data module without batch_size
    assert batch_sizes(SimpleNamespace(batch_size=None), trainer) is None


@pytest.mark.parametrize("scaling", [None, {}, {"rule": "none", "base_batch_size": 256}])
def test_no_scaling_unless_asked(scaling) -> None:
    assert scaled_lr(3e-4, 2048, scaling) == 3e-4


def test_linear_and_sqrt_rules() -> None:
    assert scaled_lr(3e-4, 1024, {"rule": "linear", "base_batch_size": 256}) == pytest.approx(
        1.2e-3)
    assert scaled_lr(3e-4, 1024, {"rule": "sqrt", "base_batch_size": 256}) == pytest.approx(6e-4)
    assert scaled_lr(1e-3, 128, {"rule": "linear", "base_batch_size": 256}) == pytest.approx(5e-4)
    assert scaled_lr(1e-3, 512, {"rule": "sqrt", "base_batch_size": 256}) == pytest.approx(
        1e-3 * math.sqrt(2))


@pytest.mark.parametrize("scaling, match", [
    ({"rule": "cubic", "base_batch_size": 256}, "rule"),
    ({"rule": "linear"}, "base_batch_size"),
    ({"rule": "linear", "base_batch_size": 0}, "base_batch_size"),
])
def test_bad_scaling_options_are_refused(scaling, match) -> None:
    with pytest.raises(ValueError, match=match):
        scaled_lr(3e-4, 512, scaling)
