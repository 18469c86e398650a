"""Real OS-level write faults: a checkpoint write refused by the kernel (``EFBIG`` under
``RLIMIT_FSIZE``), and output directories that cannot be written."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT
from tests.test_training_runner import TOY_ROOT
from tests.test_training_runner import _compose as toy_compose
from tests.toy_modules import ToyModule
from unclip.checkpoint import load_checkpoint
from unclip.config_check import ConfigError
from unclip.training import train

FILE_LIMIT = 256 * 1024  # bytes: logs and configs fit, a checkpoint of PaddedToyModule does not


class PaddedToyModule(ToyModule):
    """The toy regression with a 1 MiB buffer, so that its checkpoints outgrow FILE_LIMIT."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.register_buffer("pad", torch.zeros(256 * 1024))


def _limit_file_size() -> None:  # runs in the child between fork and exec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


def _train(tmp_path: Path, max_steps: int, limit: bool, *extra: str):
    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "toy.yaml").write_text(TOY_ROOT)
    cmd = [sys.executable, str(REPO_ROOT / "tests" / "toy_train.py"),
           "--config-dir", str(conf), "--config-name", "toy", f"hydra.run.dir={tmp_path / 'run'}",
           f"toy._target_={__name__}.PaddedToyModule", f"trainer.max_steps={max_steps}",
           "callbacks.model_checkpoint.every_n_train_steps=5", "trainer.enable_model_summary=false",
           "callbacks.progress_bar.refresh_rate=0", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "HYDRA_FULL_ERROR": "1"}
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300, preexec_fn=_limit_file_size if limit else None)


def test_a_refused_checkpoint_write_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    ckpts = tmp_path / "run" / "checkpoints"
    first = _train(tmp_path, max_steps=5, limit=False)
    assert first.returncode == 0, first.stderr
    good = (ckpts / "last.ckpt").read_bytes()
    assert len(good) > FILE_LIMIT  # else the limit would not bite

    # the same run resumed with a 256 KiB file-size limit: its step-10 checkpoint cannot be written
    second = _train(tmp_path, max_steps=10, limit=True)
    assert second.returncode != 0
    failed = ckpts / "step0000010.ckpt"
    err = second.stderr
    assert f"could not write checkpoint {failed}" in err and "File too large" in err, err[-3000:]
    assert "resuming from" in err  # it did get as far as training

    assert (ckpts / "last.ckpt").read_bytes() == good  # untouched, byte for byte
    assert load_checkpoint(ckpts / "last.ckpt")["global_step"] == 5  # and loadable
    assert not failed.exists()  # no partial file under the final name
    assert not [p.name for p in ckpts.iterdir() if p.name.endswith(".tmp")]


def test_an_output_directory_under_a_file_fails_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    proc = _train(tmp_path, 5, False, f"hydra.run.dir={blocker / 'out'}")
    assert proc.returncode != 0
    assert "Not a directory" in proc.stderr and str(blocker / "out") in proc.stderr
    assert "Epoch" not in proc.stdout + proc.stderr


def test_an_unwritable_checkpoint_directory_is_a_start_up_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    cfg = toy_compose(tmp_path, [f"callbacks.model_checkpoint.dirpath={blocker}/ckpts"])
    with pytest.raises(ConfigError, match=r"'callbacks\.model_checkpoint\.dirpath' = .*a_file/"
                                          r"ckpts' cannot be written: .*a_file is a file"):
        train(cfg, "toy")
    assert not (tmp_path / "run" / "metrics.csv").exists()


def _chmod_blocks_writes(directory: Path) -> bool:
    try:
        (directory / "probe").write_text("x")
    except PermissionError:
        return True
    (directory / "probe").unlink()
    return False


def test_a_read_only_output_directory_is_a_start_up_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not _chmod_blocks_writes(locked):
            pytest.skip("chmod does not stop this user (root): covered by the under-a-file tests")
        cfg = toy_compose(tmp_path, [f"callbacks.model_checkpoint.dirpath={locked}/ckpts"])
        with pytest.raises(ConfigError, match=r"dirpath' = .*locked/ckpts' cannot be written: "
                                              r"its parent .*locked is not writable"):
            train(cfg, "toy")
    finally:
        locked.chmod(0o700)
