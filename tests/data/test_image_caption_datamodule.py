"""ImageCaptionDataModule over real shapes shards: batch contract, epochs, patterns, errors."""

from __future__ import annotations

import io
import pickle
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.data.conftest import SHARD, TRAIN, VAL, write_tar
from unclip.data.image_caption import ImageCaptionDataModule
from unclip.data.shapes import Scene, render_scene


def _keys(loader) -> list[str]:
    return [k for batch in loader for k in batch["key"]]


def _val_pattern(shapes_dir: Path) -> str:
    return f"{shapes_dir}/val/shapes-{{000000..000002}}.tar"


def test_batches_follow_the_interface_and_hold_the_rendered_scene(shapes_dir: Path) -> None:
    dm = ImageCaptionDataModule(val_shards=_val_pattern(shapes_dir), batch_size=5, num_workers=0)
    batch = next(iter(dm.val_dataloader()))
    assert set(batch) == {"image", "caption", "key", "meta"}
    assert batch["image"].shape == (5, 3, 64, 64) and batch["image"].dtype == torch.float32
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    for image, caption, key, meta in zip(*batch.values(), strict=True):
        assert meta["caption"]["text"] == caption and key.endswith(f"{meta['index']:08d}")
        pixels = np.asarray(render_scene(Scene.from_json(meta)), dtype=np.float32)
        restored = ((image.permute(1, 2, 0) + 1) * 127.5).numpy()
        assert np.abs(restored - pixels).max() < 1e-3


def test_resize_and_centre_crop_to_the_resolution(tmp_path: Path) -> None:
    wide = np.zeros((48, 96, 3), dtype=np.uint8)
    wide[:, 24:72] = 255  # white centre square, black sides
    data = io.BytesIO()
    Image.fromarray(wide).save(data, format="PNG")
    shard = write_tar(tmp_path / "wide.tar", [{"__key__": "w", "png": data.getvalue(),
                                               "txt": "a wide image"}])
    dm = ImageCaptionDataModule(val_shards=str(shard), resolution=32, batch_size=1, num_workers=0)
    image = next(iter(dm.val_dataloader()))["image"][0]
    assert image.shape == (3, 32, 32)
    assert image[:, :, 2:30].min() > 0.9  # only the white centre survives the crop


def test_val_is_finite_complete_and_repeatable(shapes_dir: Path) -> None:
    dm = ImageCaptionDataModule(val_shards=_val_pattern(shapes_dir), batch_size=4, num_workers=2)
    loader = dm.val_dataloader()
    first, second = _keys(loader), _keys(loader)
    assert first == second and len(first) == len(set(first)) == VAL
    sizes = [len(b["key"]) for b in loader]
    assert sum(sizes) == VAL and max(sizes) == 4  # partial batches kept


def test_train_epochs_have_the_promised_length_and_differ(shapes_dir: Path) -> None:
    def epochs(seed: int) -> list[list[str]]:
        dm = ImageCaptionDataModule(f"{shapes_dir}/train/*.tar", batch_size=4, num_workers=0,
                                    shuffle_buffer=20, seed=seed)
        loader = dm.train_dataloader()
        assert len(loader) == TRAIN // 4  # from info.json: no epoch_length needed
        result = []
        for _ in range(2):
            batches = list(loader)
            assert len(batches) == len(loader) and all(len(b["key"]) == 4 for b in batches)
            result.append(_keys(batches))
        return result

    a, b = epochs(0)
    assert sorted(a) == sorted(b) and len(set(a)) == TRAIN  # each epoch: every sample once
    assert a != b  # reshuffled
    assert epochs(0) == [a, b]  # reproducible from the seed
    assert epochs(1)[0] != a


@pytest.mark.parametrize("workers", [0, 2])
def test_resampled_epoch_length(shapes_dir: Path, workers: int) -> None:
    dm = ImageCaptionDataModule(f"{shapes_dir}/train/*.tar", batch_size=4, num_workers=workers,
                                resampled=True, epoch_length=20, shuffle_buffer=8)
    loader = dm.train_dataloader()
    expected = 5 if workers == 0 else 6  # ceil(5 / 2) batches per worker
    batches = list(loader)
    assert len(loader) == len(batches) == expected
    assert all(len(b["key"]) == 4 for b in batches)


def test_patterns_as_webdataset_allows(shapes_dir: Path) -> None:
    val = shapes_dir / "val"
    names = [f"shapes-{i:06d}.tar" for i in range(3)]
    expected = sorted(_keys(ImageCaptionDataModule(val_shards=_val_pattern(shapes_dir),
                                                   batch_size=8, num_workers=0).val_dataloader()))
    handler = partial(SimpleHTTPRequestHandler, directory=str(val))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        patterns = [
            f"{val}/*.tar",
            [str(val / n) for n in names],
            f"{val}/{names[0]}::{val}/shapes-{{000001..000002}}.tar",
            f"pipe:cat {val}/shapes-{{000000..000002}}.tar",
            f"http://127.0.0.1:{port}/shapes-{{000000..000002}}.tar",
        ]
        for pattern in patterns:
            dm = ImageCaptionDataModule(val_shards=pattern, batch_size=8, num_workers=0)
            assert sorted(_keys(dm.val_dataloader())) == expected, pattern
    finally:
        server.shutdown()


def test_bad_patterns_are_clear_errors(tmp_path: Path) -> None:
    for pattern, message in [
        (f"{tmp_path}/nothing-*.tar", "matches no file"),
        (f"{tmp_path}/shard-{{000..003}}.tar", "no such shard"),
        ([], "matches no shard"),
        ("", "matches no shard"),
    ]:
        dm = ImageCaptionDataModule(train_shards=pattern, num_workers=0)
        with pytest.raises(ValueError, match=message) as info:
            dm.setup("fit")
        assert repr(pattern) in str(info.value) or str(pattern) in str(info.value)
    with pytest.raises(ValueError, match="epoch_length"):
        ImageCaptionDataModule(train_shards="x.tar", resampled=True)


def test_epoch_shorter_than_a_batch_is_an_error(shapes_dir: Path) -> None:
    dm = ImageCaptionDataModule(f"{shapes_dir}/train/*.tar", batch_size=4, epoch_length=3,
                                num_workers=0)
    with pytest.raises(ValueError, match="less than one batch"):
        dm.train_dataloader()


def test_sample_count_from_info_json_handles_partial_last_shard(shapes_dir: Path) -> None:
    from unclip.data.shards import count_samples, expand_shards

    assert count_samples(expand_shards(_val_pattern(shapes_dir))) == VAL
    assert count_samples(expand_shards(f"{shapes_dir}/val/shapes-000002.tar")) == VAL - 2 * SHARD
    assert count_samples(["pipe:cat x.tar"]) is None


@pytest.mark.parametrize("resampled", [False, True])
def test_pipelines_pickle_for_spawned_workers(shapes_dir: Path, resampled: bool) -> None:
    dm = ImageCaptionDataModule(f"{shapes_dir}/train/*.tar", _val_pattern(shapes_dir),
                                batch_size=4, num_workers=2, resampled=resampled,
                                epoch_length=16)
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        copy = pickle.loads(pickle.dumps(loader.dataset))  # what spawn/forkserver workers get
        assert [b["key"] for b in copy] == [b["key"] for b in loader.dataset]
    assert len(pickle.loads(pickle.dumps(dm.train_dataloader().dataset))) == 4
