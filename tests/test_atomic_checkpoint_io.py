"""A checkpoint write that dies half-way leaves the previous checkpoint intact."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from unclip.callbacks.atomic_io import AtomicCheckpointIO


def test_interrupted_write_keeps_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, path)

    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):  # writes part of the file, then the process "dies"
        real_save(obj, f, *args, **kwargs)
        f.flush()
        os.truncate(getattr(f, "name", f), 10)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.setattr(torch, "save", real_save)

    assert torch.load(path, weights_only=True)["global_step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temp file left


def test_unwritable_directory_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the checkpoint folder should be")
    with pytest.raises(OSError, match="not_a_dir"):
        AtomicCheckpointIO().save_checkpoint({"global_step": 1}, blocker / "last.ckpt")
