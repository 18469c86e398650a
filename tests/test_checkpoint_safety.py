"""Untrusted checkpoints are refused; safetensors exports round-trip exactly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from unclip.checkpoint import CheckpointError, export_safetensors, load_checkpoint


class _Payload:
    """Unpickling this creates a file: the classic code-execution payload, made harmless."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (str(self.target),))


def test_malicious_pickle_is_refused_and_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "extra": _Payload(marker)}, evil)
    # the payload is real: an unsafe load would create the marker
    torch.load(evil, weights_only=False)
    assert marker.exists()
    marker.rmdir()

    with pytest.raises(CheckpointError, match=r"refusing to load .*evil\.ckpt"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_plain_lightning_style_checkpoint_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.ckpt"
    torch.save({"state_dict": {"w": torch.arange(3.0)}, "hyper_parameters": {"a": [1, "x"]}}, path)
    ckpt = load_checkpoint(path)
    assert torch.equal(ckpt["state_dict"]["w"], torch.arange(3.0))
    assert ckpt["hyper_parameters"] == {"a": [1, "x"]}


def test_missing_and_garbage_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found: .*nope.ckpt"):
        load_checkpoint(tmp_path / "nope.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.ckpt"):
        load_checkpoint(junk)


def test_safetensors_export_round_trip(tmp_path: Path) -> None:
    sd = {"net.w": torch.randn(4, 3), "net.b": torch.randn(3).to(torch.bfloat16)}
    config = {"network": {"width": 4}, "clip": {"embed_dim": 3}, "norm": [0.5, 1.5]}
    path = export_safetensors(sd, config, tmp_path / "prior.safetensors")
    assert (tmp_path / "prior.json").is_file()
    back = load_checkpoint(path)
    assert back["hyper_parameters"] == config
    for k, v in sd.items():
        assert back["state_dict"][k].dtype == v.dtype
        assert torch.equal(back["state_dict"][k], v)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
