"""experiment=smoke: every stage with tiny models through the real entry points (the demo)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

STAGES = ["data", "clip", "precompute", "prior", "decoder", "upsampler", "sample", "evaluate"]


def _demo(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "UNCLIP_ROOT": str(root), "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", "unclip.demo", "--preset", "smoke", *args],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200)


def test_smoke_demo_runs_every_stage_then_reuses_them(tmp_path: Path) -> None:
    # a budget far above what smoke takes: every training stage gets a max_time it never reaches
    first = _demo(tmp_path, "--minutes", "30")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for stage in STAGES:
        assert f"[demo] {stage}: " in first.stdout, stage
    commands = {line.split(":")[0].removeprefix("[demo] "): line
                for line in first.stdout.splitlines() if line.startswith("[demo] ")}
    for stage in STAGES:
        given = "++trainer.max_time=00:00:" in commands[stage]
        assert given == (stage in ("clip", "prior", "decoder", "upsampler")), commands[stage]
    assert "[demo] time budget: 30 min" in first.stdout
    assert re.search(r"^budget\s+1800\.0 s$", first.stdout, re.MULTILINE)
    logs = tmp_path / "logs"
    for run in ["train_clip/smoke", "train_prior/smoke", "train_decoder/smoke",
                "train_decoder/smoke_upsampler"]:
        assert (logs / run / "checkpoints" / "final.ckpt").is_file(), run
    run = json.loads((logs / "sample" / "smoke" / "run.json").read_text())
    assert run["mode"] == "text2img"
    assert (logs / "sample" / "smoke" / "grid.png").stat().st_size > 0
    results = json.loads((logs / "evaluate" / "smoke" / "results.json").read_text())
    assert results["benchmark"]["ceiling"]["mean"] >= 0.99
    assert "single_object" in first.stdout and "FD_CLIP" in first.stdout

    again = _demo(tmp_path)  # everything is built: nothing is trained again
    assert again.returncode == 0, again.stderr[-3000:]
    for stage in STAGES:
        assert f"[demo] {stage}: reusing" in again.stdout, stage
