"""Writing a sampling run: images, a grid and ``run.json``, all or nothing.

Everything is written into a hidden staging folder inside the output directory, then moved into
place; ``run.json`` goes last, so its presence means the run is complete. A failure at any point
leaves the directory as it was (no half-written images, grid or record).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors.torch import save_file

from .images import make_grid

IMAGES_DIR = "images"
GRID_NAME = "grid.png"
RECORD_NAME = "run.json"
TENSORS_NAME = "tensors.safetensors"


def write_run(
    out_dir: str | Path,
    images: Sequence[tuple[str, Image.Image]],
    record: Mapping[str, Any],
    grid_columns: int | None = None,
    tensors: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, Path]:
    """Write ``images`` (``(file name, image)``) under ``images/``, their grid and the record.

    ``record`` is stored as ``run.json`` with the list of image files added; ``tensors`` (e.g.
    inverted latents) go to ``tensors.safetensors``. Returns the final paths
    ``{"images": dir, "grid": file, "record": file[, "tensors": file]}``.
    """
    out_dir = Path(out_dir)
    names = [name for name, _ in images]
    if not images:
        raise ValueError("write_run got no images")
    if len(set(names)) != len(names) or any(Path(n).name != n for n in names):
        raise ValueError(f"image names must be unique plain file names, got {names}")
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    try:
        (staging / IMAGES_DIR).mkdir()
        for name, image in images:
            image.save(staging / IMAGES_DIR / name)
        make_grid([im for _, im in images], grid_columns).save(staging / GRID_NAME)
        full = {**record, "images": [f"{IMAGES_DIR}/{n}" for n in names], "grid": GRID_NAME}
        final = {"images": out_dir / IMAGES_DIR, "grid": out_dir / GRID_NAME}
        if tensors:
            save_file({k: v.detach().float().contiguous().cpu() for k, v in tensors.items()},
                      str(staging / TENSORS_NAME))
            full["tensors"] = TENSORS_NAME
            final["tensors"] = out_dir / TENSORS_NAME
        (staging / RECORD_NAME).write_text(  # utf-8, lone surrogates (bad argv bytes) kept escaped
            json.dumps(full, indent=2, ensure_ascii=False) + "\n", encoding="utf-8",
            errors="backslashreplace")
        final["record"] = out_dir / RECORD_NAME
        for stale in (RECORD_NAME, TENSORS_NAME):  # an old run's record must not outlive it
            (out_dir / stale).unlink(missing_ok=True)
        if final["images"].exists():
            shutil.rmtree(final["images"])
        for path in final.values():  # run.json last: its presence means the run is complete
            os.replace(staging / path.name, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
