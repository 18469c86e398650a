"""evaluate.py end to end on a tiny random stack: every section, through Hydra."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.pipeline.conftest import Stack, stack  # noqa: F401  (session fixture)
from unclip.clip import FrozenCLIP
from unclip.data.precompute import precompute_split
from unclip.data.shapes.writer import write_dataset


@pytest.fixture(scope="module")
def eval_data(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    root = tmp_path_factory.mktemp("eval_data")
    write_dataset(root / "shapes", {"train": 8, "val": 8, "test": 24}, seed=0, workers=0,
                  progress=False)
    clip = FrozenCLIP(**stack.clip_spec())
    precompute_split(clip, str(root / "shapes" / "test" / "*.tar"), root / "emb" / "test",
                     batch_size=16, progress=False)
    return root


def test_evaluate_writes_results_grid_and_sweeps(
    stack: Stack, eval_data: Path, tmp_path: Path  # noqa: F811
) -> None:
    out = tmp_path / "eval"
    cmd = [
        sys.executable, "evaluate.py", f"hydra.run.dir={out}",
        f"checkpoints.prior={stack.prior}", f"checkpoints.decoder={stack.decoder}",
        f"checkpoints.upsamplers=[{stack.upsampler}]",
        "+checkpoints.clip.model_name=tiny-clip", f"+checkpoints.clip.pretrained={stack.clip}",
        "eval.benchmark.prompts.per_category=2", "eval.benchmark.images_per_prompt=1",
        f"eval.distribution.real_shards={eval_data}/shapes/test/*.tar",
        "eval.distribution.num_samples=16", "eval.metrics.kid_subsets=5",
        f"eval.prior.embedding_shards={eval_data}/emb/test/*.tar", "eval.prior.samples=8",
        "sections.sweeps=true", "sweeps.prompts=4", "sweeps.prior_samples=8",
        "sweeps.samplers=[ddim,dpmpp_2m]", "sweeps.steps=[2,3]", "sweeps.guidance=[1.0,2.0]",
        "sweeps.prior_guidance=[1.0]", "sampling.prior.steps=2", "sampling.decoder.steps=2",
        "sampling.upsampler.steps=2", "batch_size=8", "wandb.enabled=true",
    ]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((out / "results.json").read_text())
    bench = results["benchmark"]
    assert set(bench["score"]["per_category"]) == set(bench["ceiling"]["per_category"])
    assert bench["ceiling"]["mean"] >= 0.99  # true renders are read right
    assert 0.0 <= bench["score"]["mean"] <= 1.0
    dist = results["distribution"]
    for key in ("fd_clip", "kid_clip_mean", "cmmd", "clip_score", "clip_cosine_real"):
        assert isinstance(dist[key], float)
    assert dist["inception_fid"] is None and "skipped" in dist["inception_fid_note"].lower()
    assert -1.0 <= results["prior"]["cos_pred_true"] <= 1.0
    records = results["sweeps"]["records"]
    assert {(r["stage"], r["sweep"]) for r in records} == {
        ("prior", "nfe"), ("prior", "guidance"), ("decoder", "nfe"), ("decoder", "guidance")}
    assert len([r for r in records if r["stage"] == "decoder" and r["sweep"] == "nfe"]) == 4
    for name in ("benchmark_grid.png", "sweeps.json", "decoder_quality_vs_nfe.png",
                 "prior_quality_vs_guidance.png"):
        assert (out / name).stat().st_size > 0, name
    assert list(out.glob("wandb/offline-run-*")), "no offline W&B run"
    assert "mean" in proc.stdout and "FD_CLIP" in proc.stdout
