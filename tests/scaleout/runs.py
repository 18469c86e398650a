"""Run the real training entry points as subprocesses (Hydra overrides), for the scale-out tests.

A run gets its own process group, so a hung DDP run (its rank processes included) is killed at
the timeout instead of outliving the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.scaleout.shards import write_split

TRAIN_SHARDS, PER_SHARD = 4, 16  # 64 samples: one epoch is 8 steps of 4 per device on 2 ranks


def write_dataset(root: Path) -> list[str]:
    """Train (4 shards x 16) and val (2 x 8) embedding shards with 16 px images; the train keys."""
    keys = write_split(root / "train", TRAIN_SHARDS, PER_SHARD, seed=0, with_images=True)
    write_split(root / "val", 2, 8, seed=1, with_images=True)
    return keys


def data_overrides(root: Path) -> list[str]:
    return [f"data.train_shards={root}/train/*.tar", f"data.val_shards={root}/val/*.tar",
            "data.test_shards=null"]


def run_entry(script: str, args: list[str], tmp: Path, timeout: float = 240) -> str:
    """``python <script> <args>`` from the repository root; its output, or a failed test."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT),
           "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(tmp),
           "WANDB_CONFIG_DIR": str(tmp / "wandb_config"), "WANDB_CACHE_DIR": str(tmp / "wc")}
    proc = subprocess.Popen([sys.executable, script, *args], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{script} {' '.join(args)} ran past {timeout}s:\n{out[-4000:]}")
    if proc.returncode != 0:
        pytest.fail(f"{script} exited {proc.returncode}:\n{out[-6000:]}")
    return out
