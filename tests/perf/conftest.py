"""The benchmark helpers (``benchmarks/_bench.py``, ``_ours.py``, ``patches.py``) importable."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
