"""A real decoder training run (``train_decoder.py experiment=smoke/decoder``) on embedding
shards where 5% of the samples are corrupted in five different ways completes, and reports what
it skipped, by reason."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
import webdataset as wds
from PIL import Image

from tests.conftest import REPO_ROOT
from unclip.clip import FrozenCLIP
from unclip.data.precompute import precompute_split
from unclip.data.shapes.writer import write_dataset
from unclip.lit.decoder import load_decoder

N_TRAIN = 100
SKIPPED = {"undecodable_image": 1, "invalid_json": 1, "missing_caption": 1, "invalid_array": 1}


def _npy(shape: tuple[int, ...]) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.zeros(shape, np.float32), allow_pickle=False)
    return buffer.getvalue()


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


CORRUPTIONS = {  # sample index -> what is done to it
    10: lambda s: s.update(png=s["png"][: len(s["png"]) // 2]),  # truncated png
    30: lambda s: s.update(json=b'{"objects": [1, 2'),  # invalid json
    50: lambda s: s.pop("txt"),  # no caption
    70: lambda s: s.update(png=_png(40, 24)),  # wrong image size (resized and cropped, kept)
    90: lambda s: s.update({"img_emb.npy": _npy((7,))}),  # embedding of the wrong width
}


def corrupt_shard(path: Path) -> None:
    """Rewrite an embedding shard with CORRUPTIONS applied to its samples, in place."""
    samples: dict[str, dict] = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            key, ext = member.name.split(".", 1)
            samples.setdefault(key, {"__key__": key})[ext] = tar.extractfile(member).read()
    assert len(samples) == N_TRAIN
    rows = list(samples.values())
    for index, corrupt in CORRUPTIONS.items():
        corrupt(rows[index])
    with wds.TarWriter(str(path)) as sink:
        for row in rows:
            sink.write(row)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("corrupt")
    write_dataset(root / "shapes", {"train": N_TRAIN, "val": 8}, workers=0, progress=False)
    torch.manual_seed(0)
    clip = FrozenCLIP("tiny-clip")
    for split in ("train", "val"):
        precompute_split(clip, f"{root}/shapes/{split}/shapes-000000.tar", root / "emb" / split,
                         batch_size=50, with_images=True, progress=False)
    assert len(CORRUPTIONS) / N_TRAIN == 0.05
    corrupt_shard(root / "emb" / "train" / "shapes-000000.tar")
    return root / "emb"


def test_training_on_5_percent_corrupt_shards_completes_and_reports(shards: Path,
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, str(REPO_ROOT / "train_decoder.py"), "experiment=smoke/decoder",
           f"hydra.run.dir={out}", f"data.train_shards={shards}/train/shapes-000000.tar",
           f"data.val_shards={shards}/val/shapes-000000.tar",
           f"decoder.clip_identity={shards}/train/clip_identity.json",
           "trainer.max_steps=-1", "trainer.max_epochs=1", "trainer.log_every_n_steps=1",
           "trainer.val_check_interval=6"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]

    final = load_decoder(out / "checkpoints" / "final.ckpt")  # the run went to its end
    assert final.hparams["resolution"] == 16
    # 96 good samples (the wrong-size image among them) = 12 full batches of 8
    assert torch.load(out / "checkpoints" / "final.ckpt", weights_only=True)["global_step"] == 12

    report = [ln for ln in log.splitlines() if "[data] train epoch 0" in ln]
    assert report, log[-4000:]
    assert f"skipped 4 of {N_TRAIN} samples" in report[0]
    for reason, count in SKIPPED.items():
        assert f"{reason}={count}" in report[0]

    with open(next((out / "csv").rglob("metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    logged = {k: float(v) for row in rows for k, v in row.items()
              if k.startswith("data/skipped/train") and v}
    assert logged["data/skipped/train"] == 4
    assert {k.rsplit("/", 1)[1]: v for k, v in logged.items()
            if k.count("/") == 3} == {k: float(v) for k, v in SKIPPED.items()}
