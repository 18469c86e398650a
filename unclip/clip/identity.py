"""The CLIP identity record: what prior and decoder checkpoints store to name their CLIP.

A record is a plain dict (JSON- and ``torch.load(weights_only=True)``-safe)::

    {"model_name": "ViT-B-32", "config_sha256": "...", "pretrained": "laion2b_s34b_b79k",
     "weights_sha256": None, "embed_dim": 512, "token_dim": 512, "context_length": 77,
     "image_size": [224, 224]}

``pretrained`` is the open_clip tag, ``"file"`` for a local checkpoint (then ``weights_sha256``
is the file's sha256) or ``None`` for a random init (then ``weights_sha256`` hashes the
parameters). Two records name the same CLIP when :data:`IDENTITY_KEYS` agree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

IDENTITY_KEYS = ("config_sha256", "pretrained", "weights_sha256", "embed_dim")


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def state_dict_sha256(module: torch.nn.Module) -> str:
    """sha256 over a module's state dict: names, dtypes, shapes and values, in key order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def same_clip(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """True when two identity records name the same CLIP model and weights."""
    return all(a.get(k) == b.get(k) for k in IDENTITY_KEYS)


def check_same_clip(
    expected: Mapping[str, Any], actual: Mapping[str, Any], what: str = "checkpoint"
) -> None:
    """Raise ``ValueError`` naming the differing fields when two CLIP identities differ."""
    diffs = [
        f"{k}: {expected.get(k)!r} != {actual.get(k)!r}"
        for k in IDENTITY_KEYS
        if expected.get(k) != actual.get(k)
    ]
    if diffs:
        raise ValueError(
            f"{what} was made with CLIP {expected.get('model_name')!r} but is used with CLIP "
            f"{actual.get('model_name')!r}; they differ in " + "; ".join(diffs)
        )


def save_identity(identity: Mapping[str, Any], path: str | Path) -> None:
    """Write an identity record as indented JSON."""
    Path(path).write_text(json.dumps(dict(identity), indent=2, sort_keys=True) + "\n")


def load_identity(path: str | Path) -> dict[str, Any]:
    """Read an identity record written by :func:`save_identity`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CLIP identity file not found: {path}")
    return json.loads(path.read_text())
