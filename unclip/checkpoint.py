"""Safe checkpoint files: loading with ``weights_only=True``, safetensors export and import.

Checkpoints from strangers are data, not programs: every load here goes through
``torch.load(weights_only=True)`` (tensors and plain containers only) or safetensors, and a file
whose unpickling would construct arbitrary objects is refused with the file's name.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

CONFIG_METADATA_KEY = "unclip_config"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or unsafe, with the file named."""


def atomic_write(path: str | Path, write: Any) -> Path:
    """Call ``write(tmp_path)``, flush it to disk, then rename onto ``path``.

    The temp file sits beside ``path`` (same filesystem, so the rename is atomic): a crash or a
    failed write (disk full, file too large) never leaves a partial file under ``path``, and the
    temp file is removed whatever goes wrong.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync(path.parent, directory=True)
    return path


def _fsync(path: str | Path, directory: bool = False) -> None:
    """Flush a file (or a directory entry) to disk; a no-op where the OS does not allow it."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def torch_save_file(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a Python file object, so a failed write raises the ``OSError``.

    Given a file name, ``torch.save`` writes from C++ and a full disk surfaces as an opaque
    ``RuntimeError`` ("unexpected pos ..."); through a file object the ``OSError`` (``ENOSPC``,
    ``EFBIG``, ``EDQUOT``) is kept, errno included.
    """
    with open(path, "wb") as f:
        try:
            torch.save(obj, f)
        except RuntimeError as err:
            cause = err.__context__
            if isinstance(cause, OSError):
                raise OSError(cause.errno, cause.strerror, str(path)) from err
            raise


def describe_write_error(path: str | Path, err: BaseException) -> str:
    """``could not write <path>: <reason>``, with what to look at for the usual reasons."""
    path = Path(path)
    reason = getattr(err, "strerror", None) or str(err)
    code = getattr(err, "errno", None)
    blocker = _existing_parent(path.parent)
    if not blocker.is_dir():
        reason = f"{blocker} is a file, not a directory"
    elif code in (errno.ENOSPC, errno.EDQUOT):
        try:
            reason += f" ({shutil.disk_usage(blocker).free / 2**20:.1f} MiB free on {blocker})"
        except OSError:
            pass
    elif code == errno.EFBIG:
        reason += " (over the process's file-size limit, `ulimit -f`, or the filesystem's)"
    return f"could not write {path}: {reason}"


def _existing_parent(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a Lightning ``.ckpt``/``.pt`` safely, or a ``.safetensors`` export.

    Returns the checkpoint dict; for safetensors: ``{"state_dict": ..., "hyper_parameters": ...}``
    with the hyper-parameters read back from the JSON config stored beside the tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return load_safetensors(path, map_location)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refusing to load {path}: it contains objects other than tensors and plain "
            f"containers, which could run code when unpickled ({str(err).splitlines()[0]})"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable checkpoint: {err}") from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} holds a {type(ckpt).__name__}, not a checkpoint dict")
    return ckpt


def export_safetensors(
    state_dict: dict[str, torch.Tensor],
    config: dict[str, Any],
    path: str | Path,
    sidecar: bool = True,
) -> Path:
    """Write weights as safetensors; ``config`` (JSON) goes in its metadata and, with
    ``sidecar``, in ``<path>.json`` too."""
    path = Path(path)
    text = json.dumps(config, sort_keys=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={CONFIG_METADATA_KEY: text}))
    if sidecar:
        atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(text + "\n"))
    return path


def load_safetensors(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a file written by :func:`export_safetensors` back into checkpoint form."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device=str(map_location)) as f:
            metadata = f.metadata() or {}
            state_dict = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from err
    if CONFIG_METADATA_KEY not in metadata:
        raise CheckpointError(
            f"{path} has no '{CONFIG_METADATA_KEY}' metadata (not an unclip export)"
        )
    return {"state_dict": state_dict, "hyper_parameters": json.loads(metadata[CONFIG_METADATA_KEY])}
