"""train_decoder.py end to end through Hydra: a few CPU steps of the base decoder on embedding
shards (the default data) and of the upsampler on image-caption shards, with real shapes
images and a tiny random-init CLIP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from tests.conftest import CONFIG_DIR, REPO_ROOT
from unclip.clip import FrozenCLIP
from unclip.data.precompute import precompute_split
from unclip.data.shapes.writer import write_dataset
from unclip.lit.decoder import load_decoder
from unclip.training import train

COMMON = [
    "decoder.network.model_channels=16", "decoder.network.head_channels=16",
    "+decoder.network.groups=8", "decoder.network.num_blocks=1",
    "decoder.network.channel_mult=[1,2]", "decoder.num_val_samples=2",
    "decoder.sampling.steps=2", "data.batch_size=4", "data.num_workers=0",
    "data.shuffle_buffer=8", "data.persistent_workers=false",
    "trainer.max_steps=3", "trainer.val_check_interval=3", "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1", "logger=csv",
    "callbacks.model_checkpoint.every_n_train_steps=3", "callbacks.progress_bar.refresh_rate=0",
]


@pytest.fixture(scope="module")
def tiny_clip() -> FrozenCLIP:
    torch.manual_seed(0)
    return FrozenCLIP("tiny-clip")


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    write_dataset(root, {"train": 12, "val": 4}, workers=0, progress=False)
    return root


@pytest.fixture(scope="module")
def embedding_dir(tmp_path_factory, shapes_dir, tiny_clip) -> Path:
    """The precompute step's output (with images) for the tiny shapes shards."""
    root = tmp_path_factory.mktemp("emb")
    for split in ("train", "val"):
        precompute_split(tiny_clip, f"{shapes_dir}/{split}/shapes-000000.tar", root / split,
                         batch_size=8, with_images=True, progress=False)
    return root


def compose_run(out: Path, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("train_decoder", return_hydra_config=True, overrides=[*COMMON, *overrides])
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out)
        cfg.hydra.runtime.cwd = str(REPO_ROOT)
    HydraConfig.instance().set_config(cfg)
    return cfg


def embedding_data(root: Path) -> list[str]:
    return [f"data.train_shards={root}/train/shapes-000000.tar",
            f"data.val_shards={root}/val/shapes-000000.tar",
            f"decoder.clip_identity={root}/train/clip_identity.json"]


def check_run(out: Path, metrics: dict, resolution: int, upsampler: bool) -> None:
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    assert "val/loss" in metrics
    assert (out / "samples" / "val_samples_step0000003.png").is_file()
    module = load_decoder(out / "checkpoints" / "last.ckpt")
    assert module.ema_weights  # configs/callbacks/default.yaml trains with EMA
    assert module.hparams["resolution"] == resolution
    assert module.is_upsampler == upsampler
    assert module.hparams["clip_identity"]["model_name"] == "tiny-clip"


def test_base_decoder_trains_on_embedding_shards(embedding_dir, tmp_path):
    out = tmp_path / "run"
    cfg = compose_run(out, ["decoder.resolution=16", *embedding_data(embedding_dir)])
    metrics = train(cfg, module_key="decoder")
    GlobalHydra.instance().clear()
    check_run(out, metrics, resolution=16, upsampler=False)


def test_upsampler_trains_on_image_caption_shards(shapes_dir, tmp_path):
    out = tmp_path / "run"
    cfg = compose_run(out, [
        "decoder=upsampler64", "decoder.resolution=32", "decoder.low_res.resolution=16",
        "data=shapes", "~data.with_images",
        f"data.train_shards={shapes_dir}/train/shapes-000000.tar",
        f"data.val_shards={shapes_dir}/val/shapes-000000.tar",
        "decoder.clip_identity=null",
        "decoder.clip={_target_: unclip.clip.FrozenCLIP, model_name: tiny-clip}",
    ])
    metrics = train(cfg, module_key="decoder")
    GlobalHydra.instance().clear()
    check_run(out, metrics, resolution=32, upsampler=True)


def test_shards_of_another_clip_are_refused(embedding_dir, tmp_path):
    torch.manual_seed(1)
    other = FrozenCLIP("tiny-clip")  # same architecture, other weights
    identity = tmp_path / "other_identity.json"
    identity.write_text(json.dumps(other.identity))
    cfg = compose_run(tmp_path / "run", ["decoder.resolution=16", *embedding_data(embedding_dir),
                                         f"decoder.clip_identity={identity}"])
    with pytest.raises(ValueError, match="weights_sha256"):
        train(cfg, module_key="decoder")
    GlobalHydra.instance().clear()
