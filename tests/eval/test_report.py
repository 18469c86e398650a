"""Results JSON, sweep plots and the verdict grid are written, readable and right."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from unclip.eval.compositional import render_prompts, score
from unclip.eval.prompts import build_prompt_set
from unclip.eval.report import (
    FAIL_COLOR,
    PASS_COLOR,
    plot_quality_vs_guidance,
    plot_quality_vs_nfe,
    verdict_grid,
    write_json,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

SWEEP = [
    {"sampler": sampler, "nfe": nfe, "guidance_scale": scale, "fd_clip": 50 / nfe + scale,
     "benchmark_mean": min(1.0, 0.1 * scale + 0.01 * nfe)}
    for sampler in ("ddim", "dpmpp_2m")
    for nfe in (5, 10, 25, 50)
    for scale in (1.0, 3.0, 5.0)
]


def test_write_json_round_trips_results(tmp_path):
    prompts = build_prompt_set(per_category=2, seed=0)
    result = score(render_prompts(prompts), prompts)
    data = {
        "benchmark": result,
        "fd_clip": torch.tensor(1.5),
        "embedding_mean": np.arange(3, dtype=np.float32),
        "notes": ["inception FID skipped: no local Inception weights path given"],
    }
    path = write_json(data, tmp_path / "sub" / "results.json")
    loaded = json.loads(path.read_text())
    assert loaded["benchmark"]["mean"] == result.mean
    assert loaded["benchmark"]["per_category"] == result.per_category
    assert len(loaded["benchmark"]["verdicts"]) == len(prompts)
    assert loaded["fd_clip"] == 1.5 and loaded["embedding_mean"] == [0.0, 1.0, 2.0]
    with pytest.raises(TypeError, match="cannot write"):
        write_json({"x": object()}, tmp_path / "bad.json")


@pytest.mark.parametrize(
    ("plot", "where"),
    [(plot_quality_vs_nfe, {"guidance_scale": 3.0}), (plot_quality_vs_guidance, {"nfe": 25})],
)
def test_sweep_plots_are_non_empty_pngs(tmp_path, plot, where):
    path = plot(SWEEP, ["fd_clip", "benchmark_mean"], tmp_path / "plots" / "sweep.png", where=where)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        width, height = image.size
        pixels = np.asarray(image.convert("L"))
    assert width > height > 200  # two panels side by side
    assert pixels.std() > 10  # not a blank canvas
    with pytest.raises(ValueError, match="matching"):
        plot(SWEEP, ["fd_clip"], tmp_path / "none.png", where={"sampler": "heun"})


def test_verdict_grid_frames_passes_green_and_failures_red(tmp_path):
    prompts = build_prompt_set(per_category=2, seed=0)[:6]
    images = render_prompts(prompts)
    images[1] = images[0]  # the second image now shows the first prompt: a failure
    result = score(images, prompts)
    assert [v.passed for v in result.verdicts] == [True, False, True, True, True, True]
    path = tmp_path / "grid.png"
    grid = verdict_grid(images, result.verdicts, path, columns=4, cell=96, border=4)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    tile_w = 96 + 8
    assert grid.width == 4 * tile_w and grid.height % 2 == 0
    assert grid.getpixel((1, 1)) == PASS_COLOR
    assert grid.getpixel((tile_w + 1, 1)) == FAIL_COLOR
    # the sample sits inside its frame, upscaled: its corner is the shapes background
    assert grid.getpixel((4 + 1, 4 + 1)) == (30, 30, 30)
    # the failure's reason is written in red below its image
    text_area = np.asarray(grid)[96 + 8 :, tile_w : 2 * tile_w]
    assert (np.abs(text_area - np.array(FAIL_COLOR)).sum(-1) < 60).any()


def test_verdict_grid_takes_tensors_and_checks_lengths():
    prompts = build_prompt_set(per_category=1, seed=0)[:3]
    images = render_prompts(prompts)
    batch = torch.stack(
        [torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in images]
    ).float() / 127.5 - 1
    result = score(batch, prompts)
    grid = verdict_grid(batch, result.verdicts, columns=8, cell=64)
    assert grid.width == 3 * (64 + 8)
    with pytest.raises(ValueError, match="verdicts"):
        verdict_grid(batch[:2], result.verdicts)
