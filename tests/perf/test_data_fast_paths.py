"""Data fast paths: shards written in GNU tar format (no PAX headers), the cached-header ``.npy``
reader, and loaders that hand the pipeline's batches on untouched."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds

from unclip.data.datamodule import already_collated
from unclip.data.embeddings import read_array, read_npy
from unclip.data.image_caption import ImageCaptionDataModule
from unclip.data.robust import SkipSample
from unclip.data.shapes.writer import gnu_tar_writer, write_dataset


def member_headers(path: Path) -> list[bytes]:
    """The raw 512-byte header block of every member of an uncompressed tar."""
    headers = []
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            with open(path, "rb") as f:
                f.seek(member.offset)
                headers.append(f.read(tarfile.BLOCKSIZE))
    return headers


def assert_gnu_tar(path: Path) -> None:
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        assert members and not any(m.pax_headers for m in members)
        assert tar.extractfile(members[0]).read()
    for header in member_headers(path):
        assert header[257:265] == tarfile.GNU_MAGIC  # "ustar  \0": a GNU header
        assert header[156:157] == tarfile.REGTYPE


def test_gnu_tar_writer_has_no_pax_headers_even_with_float_mtimes(tmp_path: Path) -> None:
    path = tmp_path / "a.tar"
    with gnu_tar_writer(path) as writer:  # mtime: time.time(), a float
        writer.write({"__key__": "k0", "txt": "hello", "npy": b"\x93NUMPY"})
    assert_gnu_tar(path)
    with wds.TarWriter(str(path)) as writer:  # webdataset's default, for contrast: PAX
        writer.write({"__key__": "k0", "txt": "hello"})
    with tarfile.open(path) as tar:
        assert any(m.pax_headers for m in tar.getmembers())
    samples = list(wds.WebDataset(str(tmp_path / "a.tar"), shardshuffle=False))
    assert samples[0]["txt"] == b"hello"


def test_shapes_shards_are_gnu_tar_and_readable(tmp_path: Path) -> None:
    write_dataset(tmp_path, {"val": 3}, workers=0, shard_size=2, progress=False)
    shards = sorted((tmp_path / "val").glob("shapes-*.tar"))
    assert [p.name for p in shards] == ["shapes-000000.tar", "shapes-000001.tar"]
    for shard in shards:
        assert_gnu_tar(shard)
    samples = list(wds.WebDataset(f"{tmp_path}/val/shapes-{{000000..000001}}.tar",
                                  shardshuffle=False))
    assert [s["__key__"] for s in samples] == [f"val_{i:08d}" for i in range(3)]
    assert not list((tmp_path / "val").glob("*.tmp"))


def test_precomputed_shards_are_gnu_tar(tmp_path: Path) -> None:
    from unclip.clip import FrozenCLIP
    from unclip.data.embeddings import EmbeddingDataModule
    from unclip.data.precompute import precompute_split

    write_dataset(tmp_path / "shapes", {"val": 3}, workers=0, shard_size=3, progress=False)
    torch.manual_seed(0)
    clip = FrozenCLIP("tiny-clip")
    report = precompute_split(clip, str(tmp_path / "shapes" / "val" / "*.tar"), tmp_path / "emb",
                              batch_size=2, progress=False)
    assert report.samples == 3
    assert_gnu_tar(tmp_path / "emb" / "shapes-000000.tar")
    dm = EmbeddingDataModule(val_shards=str(tmp_path / "emb" / "*.tar"), batch_size=3,
                             num_workers=0)
    batch = next(iter(dm.val_dataloader()))
    assert batch["image_emb"].shape == (3, clip.identity["embed_dim"])


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def pickled_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


@pytest.mark.parametrize("array", [
    np.random.default_rng(0).standard_normal(7).astype(np.float32),
    np.random.default_rng(1).standard_normal((5, 3)).astype(np.float16),
    np.arange(9) < 4,
    np.arange(12, dtype=np.int64).reshape(2, 3, 2),
    np.array(3.5),
    np.zeros((0, 4), dtype=np.float32),
    np.arange(6, dtype=">f4").reshape(2, 3),
    np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
    np.zeros(3, dtype=[("a", "<i4"), ("b", "<f2")]),
], ids=["f32", "f16-2d", "bool", "i64-3d", "0d", "empty", "big-endian", "fortran", "record"])
def test_read_npy_round_trips_like_np_load(array):
    data = npy(array)
    ref = np.load(io.BytesIO(data), allow_pickle=False)
    for _ in range(2):  # the second read takes the cached header
        out = read_npy(data)
        assert out.dtype == ref.dtype and out.shape == ref.shape
        assert np.array_equal(out, ref)


def test_read_npy_versions_2_and_3():
    array = np.arange(5, dtype=np.float32)
    for version in ((2, 0), (3, 0)):
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, array, version=version)
        assert np.array_equal(read_npy(buffer.getvalue()), array)


@pytest.mark.parametrize("data", [
    b"",
    b"not an npy file at all",
    npy(np.arange(4))[:20],  # header cut short
    npy(np.arange(4, dtype=np.float32))[:-1],  # data cut short
    pickled_npy(),
], ids=["empty", "garbage", "short-header", "short-data", "object"])
def test_read_npy_refuses_what_np_load_refuses(data):
    with pytest.raises((ValueError, OSError, EOFError)):
        np.load(io.BytesIO(data), allow_pickle=False)
    with pytest.raises(ValueError):
        read_npy(data)
    with pytest.raises(SkipSample):
        read_array({"x.npy": data}, "x.npy")


def test_loader_hands_batches_on_untouched(tmp_path: Path, monkeypatch) -> None:
    """``batch_size=None`` DataLoaders would run ``default_convert`` over every batch."""
    import torch.utils.data._utils.collate as collate

    calls = []
    original = collate.default_convert
    monkeypatch.setattr(collate, "default_convert", lambda b: calls.append(1) or original(b))
    write_dataset(tmp_path, {"val": 4}, workers=0, shard_size=4, progress=False)
    dm = ImageCaptionDataModule(val_shards=str(tmp_path / "val" / "*.tar"), resolution=16,
                                batch_size=2, num_workers=0)
    loader = dm.val_dataloader()
    assert loader.collate_fn is already_collated
    batches = list(loader)
    assert len(batches) == 2 and not calls
    assert batches[0]["image"].shape == (2, 3, 16, 16) and isinstance(batches[0]["meta"], list)
    batch = {"x": [1], "meta": [{"a": 1}]}
    assert already_collated(batch) is batch
