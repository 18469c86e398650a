"""Evaluation outputs: results JSON, sweep plots, and a grid of samples with their verdicts.

Sweeps are tidy records, one dict per run: ``{"sampler": "ddim", "nfe": 20,
"guidance_scale": 3.0, "fd_clip": 12.3, "benchmark_mean": 0.81, ...}``; the plots pick an
x key, one line per value of a group key, one panel per metric.
"""

from __future__ import annotations

import dataclasses
import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure  # no pyplot: no global state, no display backend
from matplotlib.ticker import NullFormatter, ScalarFormatter
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from unclip.eval.verdict import Verdict

PASS_COLOR = (40, 170, 60)
FAIL_COLOR = (210, 40, 40)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_json"):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def write_json(data: Any, path: str | Path) -> Path:
    """Write results (dicts, dataclasses, tensors, numpy values) as indented JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_jsonable, allow_nan=True) + "\n")
    return path


def plot_sweep(
    records: Sequence[Mapping[str, Any]],
    x: str,
    metrics: Sequence[str],
    path: str | Path,
    group: str | None = None,
    log_x: bool = False,
    title: str | None = None,
    where: Mapping[str, Any] | None = None,
) -> Path:
    """One panel per metric: the metric against ``x``, one line per value of ``group``.

    ``where`` keeps only the records with those values (e.g. ``{"guidance_scale": 3.0}`` for
    an NFE sweep that also varied guidance). Records missing ``x`` or a metric are left out of
    that panel.
    """
    records = [r for r in records if all(r.get(k) == v for k, v in (where or {}).items())]
    if not records or not metrics:
        raise ValueError("plot_sweep needs at least one (matching) record and one metric")
    fig = Figure(figsize=(4.2 * len(metrics), 3.4), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)
    groups = sorted({str(r.get(group, "")) for r in records}) if group else [""]
    for ax, metric in zip(axes[0], metrics, strict=True):
        for name in groups:
            points = sorted(
                (float(r[x]), float(r[metric]))
                for r in records
                if x in r and metric in r and (not group or str(r.get(group, "")) == name)
            )
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", label=f"{group}={name}" if group else None)
        ax.set_xlabel(x)
        ax.set_ylabel(metric)
        if log_x:  # ticks at the swept values, written plainly
            ax.set_xscale("log")
            ax.set_xticks(sorted({float(r[x]) for r in records if x in r}))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3)
        if group:
            ax.legend(fontsize=8)
    if title or where:
        fixed = ", ".join(f"{k}={v}" for k, v in (where or {}).items())
        fig.suptitle(" ".join(t for t in (title, f"({fixed})" if fixed else "") if t))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_quality_vs_nfe(
    records: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    path: str | Path,
    nfe_key: str = "nfe",
    sampler_key: str = "sampler",
    where: Mapping[str, Any] | None = None,
) -> Path:
    """Quality against the number of network evaluations, one line per sampler (log x)."""
    return plot_sweep(
        records, nfe_key, metrics, path, group=sampler_key, log_x=True,
        title="quality vs NFE", where=where,
    )


def plot_quality_vs_guidance(
    records: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    path: str | Path,
    guidance_key: str = "guidance_scale",
    group: str | None = "sampler",
    where: Mapping[str, Any] | None = None,
) -> Path:
    """Quality against the classifier-free guidance scale, one line per ``group`` value."""
    return plot_sweep(
        records, guidance_key, metrics, path, group=group,
        title="quality vs guidance scale", where=where,
    )


def to_pil(image: Image.Image | np.ndarray | Tensor) -> Image.Image:
    """A PIL RGB image from a PIL image, a uint8 ``(H, W, 3)`` array or a ``(3, H, W)`` tensor
    (float in ``[-1, 1]`` or uint8)."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, Tensor):
        if image.dtype != torch.uint8:
            image = ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        image = image.cpu().permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(image), "RGB")


def _wrap(text: str, font: ImageFont.ImageFont, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap to ``width`` px; the last line ends in ``...`` when text is cut."""
    chars = max(4, int(width / max(font.getlength("x"), 1)))
    lines = textwrap.wrap(text, chars) or [""]
    while any(font.getlength(line) > width for line in lines) and chars > 4:
        chars -= 1
        lines = textwrap.wrap(text, chars)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(chars - 3, 1)] + "..."
    return lines


def verdict_grid(
    images: Tensor | Sequence,
    verdicts: Sequence[Verdict],
    path: str | Path | None = None,
    columns: int = 8,
    cell: int = 128,
    border: int = 4,
    text_lines: int = 4,
) -> Image.Image:
    """A grid of samples, each framed green (passed) or red (failed), with its prompt below and,
    for failures, the reader's reason. Saved as PNG when ``path`` is given."""
    if len(images) != len(verdicts):
        raise ValueError(f"{len(images)} images but {len(verdicts)} verdicts")
    if not verdicts:
        raise ValueError("verdict_grid needs at least one image")
    font = ImageFont.load_default(size=10)
    line_height = 12
    text_height = line_height * text_lines + 4
    tile_w, tile_h = cell + 2 * border, cell + 2 * border + text_height
    rows = math.ceil(len(verdicts) / columns)
    cols = min(columns, len(verdicts))
    grid = Image.new("RGB", (cols * tile_w, rows * tile_h), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for index, (image, verdict) in enumerate(zip(images, verdicts, strict=True)):
        x, y = (index % columns) * tile_w, (index // columns) * tile_h
        frame = PASS_COLOR if verdict.passed else FAIL_COLOR
        draw.rectangle((x, y, x + tile_w - 1, y + cell + 2 * border - 1), fill=frame)
        sample = to_pil(image).resize((cell, cell), Image.Resampling.NEAREST)
        grid.paste(sample, (x + border, y + border))
        prompt_lines = _wrap(verdict.prompt, font, tile_w - 4, max(1, text_lines // 2))
        reason_lines = (
            []
            if verdict.passed
            else _wrap(verdict.reason, font, tile_w - 4, text_lines - len(prompt_lines))
        )
        ty = y + cell + 2 * border + 2
        for line in prompt_lines:
            draw.text((x + 2, ty), line, fill=(0, 0, 0), font=font)
            ty += line_height
        for line in reason_lines:
            draw.text((x + 2, ty), line, fill=FAIL_COLOR, font=font)
            ty += line_height
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        grid.save(path)
    return grid
