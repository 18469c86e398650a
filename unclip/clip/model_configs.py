"""The project's own open_clip model configs (``unclip/clip_configs/*.json``) and their hashes.

open_clip finds architectures by name in a registry of JSON files; ``add_model_config`` adds
files or folders to it. Importing :mod:`unclip.clip` registers the project folder, so
``open_clip.create_model("shapes-clip")`` works like any built-in name.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import open_clip

PROJECT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "clip_configs"
_REQUIRED_KEYS = ("embed_dim", "vision_cfg", "text_cfg")


def register_project_configs() -> None:
    """Register ``unclip/clip_configs`` with open_clip (idempotent)."""
    if "shapes-clip" not in open_clip.list_models():
        open_clip.add_model_config(PROJECT_CONFIG_DIR)


def register_config_file(path: str | Path) -> str:
    """Register one open_clip model-config JSON; returns the model name (the file stem)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"open_clip model config not found: {path}")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"open_clip model config {path} is not valid JSON: {err}") from err
    missing = [k for k in _REQUIRED_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"open_clip model config {path} lacks keys {missing}")
    open_clip.add_model_config(path)
    return path.stem


def register_config_dict(model_name: str, cfg: dict[str, Any]) -> None:
    """Register a config given inline (as checkpoints store it) under ``model_name``.

    A name already registered with another config is refused: the weights would not fit.
    """
    known = open_clip.get_model_config(model_name)
    if known is not None:
        if config_sha256(known) != config_sha256(cfg):
            raise ValueError(
                f"open_clip model {model_name!r} is registered with another config than the one "
                "given (e.g. stored in a checkpoint); rename one of them"
            )
        return
    missing = [k for k in _REQUIRED_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"open_clip model config {model_name!r} lacks keys {missing}")
    path = Path(tempfile.mkdtemp(prefix="unclip-clip-config-")) / f"{model_name}.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)


def model_config(model_name: str) -> dict[str, Any]:
    """The registered open_clip config of ``model_name``, with a clear error if unknown."""
    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        raise ValueError(
            f"unknown open_clip model {model_name!r}: not built in, not in {PROJECT_CONFIG_DIR}; "
            "pass model_config=<path to JSON> for your own architecture"
        )
    return cfg


def config_sha256(cfg: dict[str, Any]) -> str:
    """sha256 of a model config in canonical JSON (sorted keys, no whitespace)."""
    blob = json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()
