"""Safe checkpoint files: loading with ``weights_only=True``, safetensors export and import.

Checkpoints from strangers are data, not programs: every load here goes through
``torch.load(weights_only=True)`` (tensors and plain containers only) or safetensors, and a file
whose unpickling would construct arbitrary objects is refused with the file's name.
"""

from __future__ import annotations

import json
import os
import pickle
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
    """Call ``write(tmp_path)`` then rename onto ``path``: a crash never leaves a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
    state_dict: dict[str, torch.Tensor], config: dict[str, Any], path: str | Path
) -> Path:
    """Write weights as safetensors; ``config`` (JSON) goes in its metadata and ``<path>.json``."""
    path = Path(path)
    text = json.dumps(config, sort_keys=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={CONFIG_METADATA_KEY: text}))
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
