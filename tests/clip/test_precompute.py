"""Embedding precompute over real shapes shards with the tiny CLIP."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

import unclip.data.precompute as precompute
from unclip.clip import FrozenCLIP
from unclip.data.embeddings import EmbeddingDataModule
from unclip.data.precompute import precompute_split


def _read(path: Path) -> list[dict]:
    return list(wds.WebDataset(str(path), shardshuffle=False).decode())


def test_writes_embedding_shards(tiny_clip: FrozenCLIP, shapes_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "emb"
    report = precompute_split(tiny_clip, str(shapes_dir / "train" / "*.tar"), out,
                              batch_size=10, with_images=True, progress=False)
    names = ["shapes-000000.tar", "shapes-000001.tar", "shapes-000002.tar"]
    assert report.written == names and report.samples == 48
    assert sorted(p.name for p in out.iterdir()) == sorted(names + ["clip_identity.json",
                                                                    "stats.json"])
    assert json.loads((out / "clip_identity.json").read_text()) == tiny_clip.identity
    source = list(wds.WebDataset(str(shapes_dir / "train" / names[1]), shardshuffle=False))
    samples = _read(out / names[1])
    assert [s["__key__"] for s in samples] == [s["__key__"] for s in source]
    s = samples[0]
    assert s["img_emb.npy"].shape == (32,) and s["img_emb.npy"].dtype == np.float32
    assert s["txt_emb.npy"].shape == (32,) and s["txt_emb.npy"].dtype == np.float32
    assert s["txt_tokens.npy"].shape == (16, 64) and s["txt_tokens.npy"].dtype == np.float16
    assert s["txt_mask.npy"].shape == (16,) and s["txt_mask.npy"].dtype == bool
    assert s["txt"] == source[0]["txt"].decode()
    assert s["json"] == json.loads(source[0]["json"])
    assert s["png"] == source[0]["png"]  # the original image bytes

    # the stored values are FrozenCLIP's (bf16 autocast: close, not equal)
    image = np.asarray(Image.open(io.BytesIO(source[0]["png"])).convert("RGB"))
    x = torch.tensor(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        direct_img = tiny_clip.encode_image(x)[0]
        direct_txt = tiny_clip.encode_text([s["txt"]])
    torch.testing.assert_close(torch.from_numpy(s["img_emb.npy"]), direct_img,
                               atol=0.05, rtol=0.05)
    torch.testing.assert_close(torch.from_numpy(s["txt_emb.npy"]), direct_txt.pooled[0],
                               atol=0.05, rtol=0.05)
    assert s["txt_mask.npy"].tolist() == direct_txt.mask[0].tolist()


def test_stats_match_direct_computation(tiny_clip: FrozenCLIP, shapes_dir: Path,
                                        tmp_path: Path) -> None:
    out = tmp_path / "emb"
    # resolution=64: images reach FrozenCLIP at 64 px, as in the direct computation below
    precompute_split(tiny_clip, str(shapes_dir / "val" / "*.tar"), out, autocast=False,
                     resolution=64, progress=False)
    images, captions = [], []
    for shard in sorted((shapes_dir / "val").glob("*.tar")):
        for s in wds.WebDataset(str(shard), shardshuffle=False).decode("torchrgb"):
            images.append(s["png"] * 2 - 1)
            captions.append(s["txt"])
    with torch.no_grad():
        image_emb = tiny_clip.encode_image(torch.stack(images)).double()
        text_emb = tiny_clip.encode_text(captions).pooled.double()
    stats = json.loads((out / "stats.json").read_text())
    assert stats["count"] == 32
    for side, emb in (("image", image_emb), ("text", text_emb)):
        np.testing.assert_allclose(stats[side]["mean"], emb.mean(0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(stats[side]["std"], emb.std(0, unbiased=False),
                                   rtol=1e-4, atol=1e-5)
        assert stats[side]["mean_norm"] == pytest.approx(emb.norm(dim=1).mean().item(),
                                                         rel=1e-5)


def test_interrupted_run_resumes_without_duplicates(
    tiny_clip: FrozenCLIP, shapes_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "emb"
    real_encode, calls = precompute.encode_batch, []

    def interrupted(*args, **kwargs):  # dies in the middle of the second shard
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(precompute, "encode_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        precompute_split(tiny_clip, str(shapes_dir / "train" / "*.tar"), out, batch_size=8,
                         progress=False)
    assert sorted(p.name for p in out.glob("*.tar")) == ["shapes-000000.tar"]
    assert not list(out.glob("*.incomplete"))  # the partial shard was removed
    (out / "shapes-000002.tar.incomplete").write_bytes(b"left by a killed process")
    first = (out / "shapes-000000.tar").stat().st_mtime_ns

    monkeypatch.setattr(precompute, "encode_batch", real_encode)
    report = precompute_split(tiny_clip, str(shapes_dir / "train" / "*.tar"), out,
                              batch_size=8, progress=False)
    assert report.skipped_shards == ["shapes-000000.tar"]
    assert report.written == ["shapes-000001.tar", "shapes-000002.tar"]
    assert (out / "shapes-000000.tar").stat().st_mtime_ns == first
    assert not list(out.glob("*.incomplete"))
    keys = [s["__key__"] for shard in sorted(out.glob("*.tar")) for s in _read(shard)]
    assert len(keys) == 48 == len(set(keys))
    assert json.loads((out / "stats.json").read_text())["count"] == 48


def test_refuses_output_of_another_clip(shapes_dir: Path, tmp_path: Path,
                                        tiny_clip: FrozenCLIP) -> None:
    out = tmp_path / "emb"
    precompute_split(tiny_clip, str(shapes_dir / "val" / "shapes-000000.tar"), out,
                     progress=False)
    torch.manual_seed(123)
    other = FrozenCLIP("tiny-clip")
    with pytest.raises(ValueError, match="weights_sha256"):
        precompute_split(other, str(shapes_dir / "val" / "*.tar"), out, progress=False)


def test_output_feeds_the_embedding_datamodule(tiny_clip: FrozenCLIP, shapes_dir: Path,
                                               tmp_path: Path) -> None:
    out = tmp_path / "emb"
    precompute_split(tiny_clip, str(shapes_dir / "val" / "*.tar"), out, with_images=True,
                     progress=False)
    dm = EmbeddingDataModule(train_shards=str(out / "*.tar"), batch_size=8, num_workers=0,
                             with_images=True, resolution=64)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image_emb"].shape == (8, 32) and batch["text_tokens"].shape == (8, 16, 64)
    assert batch["text_mask"].dtype == torch.bool and batch["image"].shape == (8, 3, 64, 64)
    assert dm.clip_identity == tiny_clip.identity
    assert dm.stats["count"] == 32


def test_hydra_command(hydra_cfg, shapes_dir: Path, tmp_path: Path) -> None:
    cfg = hydra_cfg("precompute", [
        "clip=tiny", f"input={shapes_dir}", f"output={tmp_path / 'emb'}", "splits=[val]",
        "with_images=false", "batch_size=16", "progress=false",
    ])
    reports = precompute.run(cfg)
    assert reports["val"].samples == 32
    sample = _read(tmp_path / "emb" / "val" / "shapes-000000.tar")[0]
    assert "png" not in sample and sample["txt_emb.npy"].shape == (32,)


def test_missing_shards_are_named(tiny_clip: FrozenCLIP, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="matches no"):
        precompute_split(tiny_clip, str(tmp_path / "nowhere" / "*.tar"), tmp_path / "o",
                         progress=False)
