"""A pipeline as one directory: each stage's weights as safetensors plus one ``pipeline.json``.

``pipeline.json`` holds the CLIP identity every stage was trained against, the output
resolutions, and per stage (chain order: prior, decoder, upsampler0, ...) its file and that
file's SHA-256, the checkpoint it came from, and its full config (network, diffusion config,
the prior's embedding normalisation, sampling defaults). Each ``.safetensors`` also carries its
stage's config in its metadata, so a single file loads on its own (``load_prior``,
``load_decoder``). Nothing in the directory is pickled: loading it cannot run code.

Loading checks every file against its recorded SHA-256 and rebuilds the same
:class:`UnCLIPPipeline` that ``from_checkpoints`` builds from the original checkpoints.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from unclip.checkpoint import atomic_write, export_safetensors
from unclip.clip import same_clip
from unclip.clip.identity import file_sha256

from .core import UnCLIPPipeline
from .loading import (
    CheckpointLoadError,
    CheckpointRecord,
    ClipSpec,
    load_stage_modules,
    load_stages,
    stage_paths,
)

EXPORT_FORMAT = "unclip-pipeline"
EXPORT_VERSION = 1
MANIFEST = "pipeline.json"


def _json_config(stage: str, hparams: Any) -> dict[str, Any]:
    config = dict(hparams)
    try:
        json.dumps(config)
    except (TypeError, ValueError) as err:
        raise CheckpointLoadError(f"the {stage}'s config cannot be written as JSON: {err}") from err
    return config


def export_pipeline(
    out: str | Path,
    prior: str | Path,
    decoder: str | Path,
    upsamplers: Sequence[str | Path] = (),
    overwrite: bool = False,
) -> Path:
    """Write the stages' (EMA) weights and ``pipeline.json`` under ``out``; returns its path.

    The checkpoints are loaded and checked as ``UnCLIPPipeline.from_checkpoints`` does (same
    CLIP, matching resolutions); the CLIP itself is not needed. ``pipeline.json`` is written
    last, so an interrupted export is detected at load time (missing file or wrong hash).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty; choose another directory or overwrite")
    paths = stage_paths(prior, decoder, upsamplers)
    modules = load_stage_modules(paths, "cpu")
    entries = []
    for stage, module in modules.items():
        config = _json_config(stage, module.hparams)
        file = out / f"{stage}.safetensors"
        export_safetensors(module.state_dict(), config, file, sidecar=False)
        entries.append({
            "stage": stage,
            "file": file.name,
            "sha256": file_sha256(file),
            "source": {"path": str(paths[stage].resolve()), "sha256": file_sha256(paths[stage])},
            "ema_weights": getattr(module, "ema_weights", None),
            "config": config,
        })
    image_stages = [m for s, m in modules.items() if s != "prior"]
    manifest = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "clip_identity": modules["prior"].hparams["clip_identity"],
        "resolutions": [m.hparams["resolution"] for m in image_stages],
        "stages": entries,
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    return atomic_write(out / MANIFEST, lambda tmp: Path(tmp).write_text(text))


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """``pipeline.json`` of an export, checked for format, version and stage order."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise CheckpointLoadError(f"{directory} is not a pipeline export: no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointLoadError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        raise CheckpointLoadError(f"{path} is not an {EXPORT_FORMAT} manifest")
    if manifest.get("version") != EXPORT_VERSION:
        raise CheckpointLoadError(f"{path} has version {manifest.get('version')!r}; this "
                                  f"code reads version {EXPORT_VERSION}")
    names = [entry.get("stage") for entry in manifest.get("stages", [])]
    expected = ["prior", "decoder"] + [f"upsampler{k}" for k in range(len(names) - 2)]
    if names != expected:
        raise CheckpointLoadError(f"{path} lists stages {names}; expected {expected}")
    return manifest


def _verified_file(directory: Path, entry: dict[str, Any]) -> Path:
    path = directory / entry["file"]
    if not path.is_file():
        raise CheckpointLoadError(f"{path} is missing ({MANIFEST} lists it)")
    digest = file_sha256(path)
    if digest != entry["sha256"]:
        raise CheckpointLoadError(
            f"{path} has sha256 {digest} but {MANIFEST} records {entry['sha256']}: the file was "
            "modified or the export did not finish"
        )
    return path


def load_exported_pipeline(
    directory: str | Path,
    clip: ClipSpec = None,
    device: str | torch.device = "cpu",
    autocast: bool | None = None,
) -> UnCLIPPipeline:
    """The :class:`UnCLIPPipeline` of an export directory, every file checked by SHA-256.

    ``clip`` as for ``UnCLIPPipeline.from_checkpoints``: needed only when the recorded CLIP is not
    an open_clip pretrained tag (local weights, random init).
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    entries = manifest["stages"]
    files = [_verified_file(directory, entry) for entry in entries]
    clip_model, prior, decoder, ups, _ = load_stages(files[0], files[1], files[2:], clip, device)
    modules = [prior, decoder, *ups]
    for entry, module, path in zip(entries, modules, files, strict=True):
        if json.loads(json.dumps(dict(module.hparams))) != entry["config"]:
            raise CheckpointLoadError(f"{MANIFEST}'s config of the {entry['stage']} differs from "
                                      f"the one stored in {path}")
        if entry.get("ema_weights") is not None:
            module.ema_weights = bool(entry["ema_weights"])
    if not same_clip(manifest["clip_identity"], prior.hparams["clip_identity"]):
        raise CheckpointLoadError(f"{MANIFEST}'s clip_identity differs from the prior's")
    records = [CheckpointRecord(e["stage"], str(p.resolve()), e["sha256"])
               for e, p in zip(entries, files, strict=True)]
    return UnCLIPPipeline(clip_model, prior, decoder, ups, checkpoints=records, autocast=autocast)
