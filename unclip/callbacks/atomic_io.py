"""Checkpoint writes that a crash cannot half-finish: temp file in the same folder, then rename."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from unclip.checkpoint import atomic_write, describe_write_error, torch_save_file


class CheckpointWriteError(OSError):
    """A checkpoint that could not be written (disk full, file too large, no permission)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose save is ``torch.save`` to a temp file + fsync + ``os.replace``.

    Lightning's default writes through an fsspec transaction whose temp file lives in the system
    temp dir; moving it onto another filesystem is a copy that a kill can interrupt. Here the temp
    file sits beside the target, so the rename is atomic: ``last.ckpt`` is always either the old
    complete file or the new one. A failed write (disk full, file too large, no permission)
    raises :class:`CheckpointWriteError` naming the path and the reason, removes the temp file
    and leaves the previous checkpoint as it was.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        try:
            atomic_write(path, lambda tmp: torch_save_file(checkpoint, tmp))
        except OSError as err:
            message = describe_write_error(path, err).replace("write", "write checkpoint", 1)
            args = (err.errno, message) if err.errno is not None else (message,)
            raise CheckpointWriteError(*args) from err
