"""benchmarks/ddp_cpu.py runs its 1-process and 2-process (gloo DDP) configurations end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT


def test_ddp_benchmark_quick(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/ddp_cpu.py", "--quick", "--stages", "prior", "--json",
         str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [(r["processes"], r["global_batch"]) for r in rows] == [(1, 16), (2, 32)]
    assert all(r["samples_per_s"] > 0 for r in rows)
    assert "samples/s" in proc.stdout
