"""Real training subprocesses killed mid-run (SIGTERM and SIGKILL) resume where they were."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from tests.conftest import REPO_ROOT
from tests.test_training_runner import TOY_ROOT


def _launch(tmp_path: Path, max_steps: int, sleep: float) -> subprocess.Popen:
    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "toy.yaml").write_text(TOY_ROOT)
    cmd = [
        sys.executable, str(REPO_ROOT / "tests" / "toy_train.py"),
        "--config-dir", str(conf), "--config-name", "toy",
        f"hydra.run.dir={tmp_path / 'run'}", f"trainer.max_steps={max_steps}",
        "callbacks.model_checkpoint.every_n_train_steps=5", f"+toy.sleep_per_step={sleep}",
        "trainer.log_every_n_steps=1", "trainer.enable_model_summary=false",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    start = time.monotonic()
    while not path.is_file():
        assert proc.poll() is None, f"training exited early:\n{proc.stdout.read()}"
        assert time.monotonic() - start < timeout, f"{path} never appeared"
        time.sleep(0.1)


def _step(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["global_step"])


def test_sigterm_saves_last_and_exits_cleanly_then_resumes(tmp_path: Path) -> None:
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    proc = _launch(tmp_path, max_steps=400, sleep=0.05)
    _wait_for(last, proc)
    first_periodic = _step(last)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    at_signal = _step(last)
    assert at_signal > first_periodic  # saved at the signal, not only at the periodic save

    proc = _launch(tmp_path, max_steps=at_signal + 3, sleep=0.0)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "Restoring states from the checkpoint" in out or "resuming" in out.lower()
    assert _step(last.with_name("final.ckpt")) == at_signal + 3


def test_sigkill_mid_run_resumes_from_last_periodic_checkpoint(tmp_path: Path) -> None:
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    proc = _launch(tmp_path, max_steps=400, sleep=0.02)
    _wait_for(last, proc)
    time.sleep(0.7)
    proc.kill()
    proc.wait(timeout=30)
    survived = _step(last)  # the file is whole: torch.load succeeds
    assert survived % 5 == 0

    proc = _launch(tmp_path, max_steps=survived + 5, sleep=0.0)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert _step(last.with_name("final.ckpt")) == survived + 5
