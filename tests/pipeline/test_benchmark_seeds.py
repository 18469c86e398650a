"""benchmarks/benchmark_seeds.py: the benchmark over seeds, on a tiny real stack's checkpoints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from tests.conftest import REPO_ROOT
from tests.pipeline.conftest import Stack

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import benchmark_seeds  # noqa: E402


def run_benchmark(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """``benchmarks/benchmark_seeds.py`` with ``args``, from the repository root."""
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "benchmark_seeds.py"), *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


def stack_args(stack: Stack) -> list[str]:
    """The tiny stack's checkpoints, as the benchmark's flags."""
    return ["--prior", str(stack.prior), "--decoder", str(stack.decoder), "--clip",
            str(stack.clip), "--clip-model", "tiny-clip"]


def test_failure_kinds_drop_the_objects_named() -> None:
    assert benchmark_seeds.failure_kind(
        "want 2 object(s), found 3: small red circle; large blue square") == "found 3"
    assert benchmark_seeds.failure_kind("circle shape: want circle, got square") == "circle shape"


def test_same_color_marks_pairs_of_one_colour_only() -> None:
    from unclip.eval.prompts import build_prompt_set

    marked = {q.text for q in build_prompt_set(48, 0) if benchmark_seeds.same_color(q)}
    assert "a green circle and a green square" in marked
    assert "a red circle below a red square" in marked
    assert all(q.category in ("two_objects", "relation") for q in build_prompt_set(48, 0)
               if q.text in marked)  # colour attribution names two colours by construction
    assert "a red circle to the left of an orange triangle" not in marked


def test_prints_a_row_per_seed_and_their_mean_min_max(stack: Stack) -> None:
    proc = run_benchmark(
        *stack_args(stack), "--seeds", "0", "5",
        "--per-category", "2", "--batch", "5", "--decoder-steps", "2",
        "--prior-sampler", "ddpm", "--prior-steps", "3", "--prior-clamp-l2norm",
        "--decoder-best-of", "2",
        "--decoder-text-guidance", "4", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    seeds = [line for line in lines if line.startswith("seed")]
    assert [line.split()[1] for line in seeds] == ["0", "5"]
    columns = next(line for line in lines if line.startswith("columns: "))
    names = columns.removeprefix("columns: ").split(", ")
    assert names[-1] == "mean" and "two_objects" in names
    for label in ("mean", "min", "max"):
        row = next(line for line in lines if line.startswith(label + " "))
        values = [float(v) for v in row.split()[1:]]
        assert len(values) == len(names) and all(0.0 <= v <= 100.0 for v in values)
    for category in ("two_objects", "relation"):
        split = next(line for line in lines if line.startswith(category + " "))
        counts = [int(n) for n in re.findall(r"% of (\d+)", split)]
        assert sum(counts) == 2 * 2  # both seeds' prompts of the category, split by colour
    assert "most frequent failures over 2 seed(s):" in proc.stdout


def test_true_render_mode_decodes_the_renders_embeddings(stack: Stack) -> None:
    """``--embeddings true-renders``: the decoder reads the CLIP image embeddings of the prompts'
    true renders (the evaluation's ceiling scenes of that seed), with their captions."""
    from unclip.eval.compositional import render_prompts
    from unclip.eval.prompts import build_prompt_set
    from unclip.pipeline import DecoderSettings, UnCLIPPipeline

    pipe = UnCLIPPipeline.from_checkpoints(stack.prior, stack.decoder, [],
                                           clip=stack.clip_spec())
    prompts = [q for q in build_prompt_set(2, 0) if q.category in ("two_objects", "position")]
    seen: list[torch.Tensor] = []
    decode = pipe.decode

    def recording_decode(image_embeds: torch.Tensor, **kwargs: object) -> torch.Tensor:
        seen.append(image_embeds.clone())
        return decode(image_embeds, **kwargs)

    pipe.decode = recording_decode  # type: ignore[method-assign]
    settings = DecoderSettings(steps=2, best_of=2)
    with torch.no_grad():
        first = benchmark_seeds.true_render_images(pipe, prompts, 3, settings)
        again = benchmark_seeds.true_render_images(pipe, prompts, 3, settings)
        benchmark_seeds.true_render_images(pipe, prompts, 4, settings)
        side = min(pipe.clip.identity["image_size"])
        renders = torch.stack([
            torch.from_numpy(np.array(image.convert("RGB").resize((side, side))))
            for image in render_prompts(prompts, 3)]).permute(0, 3, 1, 2).float() / 127.5 - 1
        expected = pipe.encode_images(renders)
    resolution = pipe.decoder.hparams["resolution"]
    assert first.shape == (len(prompts), 3, resolution, resolution)
    torch.testing.assert_close(first, again)
    torch.testing.assert_close(seen[0], expected)
    assert not torch.allclose(seen[2], seen[0])  # another seed renders other scenes


def test_true_render_mode_runs_the_benchmark(stack: Stack) -> None:
    proc = run_benchmark(
        *stack_args(stack), "--seeds", "1", "--per-category", "1",
        "--decoder-steps", "2", "--embeddings", "true-renders")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [line.split()[1] for line in proc.stdout.splitlines()
            if line.startswith("seed")] == ["1"]


def test_categories_samples_only_the_categories_named(stack: Stack) -> None:
    proc = run_benchmark(
        *stack_args(stack), "--seeds", "2", "--per-category", "3",
        "--decoder-steps", "2", "--prior-steps", "2", "--categories", "relation",
        "two_objects", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    columns = next(line for line in lines if line.startswith("columns: "))
    assert sorted(columns.removeprefix("columns: ").split(", ")) == [
        "mean", "relation", "two_objects"]
    for category in ("two_objects", "relation"):
        split = next(line for line in lines if line.startswith(category + " "))
        assert sum(int(n) for n in re.findall(r"% of (\d+)", split)) == 3


def test_categories_rejects_an_unknown_category_by_name(tmp_path: Path) -> None:
    missing = str(tmp_path / "never_read.ckpt")  # argparse refuses before any file is opened
    proc = run_benchmark("--prior", missing, "--decoder", missing, "--clip", missing,
                         "--categories", "two_objects", "three_objects", timeout=120)
    assert proc.returncode == 2
    assert "three_objects" in proc.stderr and "--categories" in proc.stderr
