"""Every benchmark script runs end to end in ``--quick`` mode (tiny sizes, one round).

With ``.venv-bench`` present (``make bench-env``) the peers run too; without it the scripts
print a note and measure this project only. One thread per worker keeps the runs short on a
busy machine. No figure is asserted on: benchmarks print, tests check that they run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, *args: str, env: dict[str, str] | None = None, timeout: int = 900
        ) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--threads", "1", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_prior_training_quick_without_peers(tmp_path):
    out = tmp_path / "prior.json"
    proc = run("prior_training.py", "--json", str(out),
               env={"UNCLIP_BENCH_VENV": str(tmp_path / "no-venv")})
    assert "make bench-env" in proc.stderr  # the missing peers are said, not hidden
    assert "unclip PriorModule" in proc.stdout and "load average" in proc.stdout
    record = json.loads(out.read_text())
    assert record["results"][0]["median"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("script, expect", [
    ("decoder_training.py", "decoder training, batch"),
    ("prior_training.py", "prior training, batch"),
    ("sampling.py", "text -> 64 px"),
    ("mfu.py", "MFU"),
    ("data_vs_training.py", "loader samples/s"),
])
def test_benchmark_quick(script, expect):
    proc = run(script)
    assert expect in proc.stdout


@pytest.mark.slow
def test_ab_patch_runs():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "ab_patch.py"), "--stage", "prior",
         "--patch", "foreach_adamw", "--batch", "16", "--rounds", "1", "--steps",
         "1", "--threads", "1"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "paired B/A" in proc.stdout
