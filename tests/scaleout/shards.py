"""Tiny multi-shard embedding datasets (the precompute layout) for the scale-out tests.

Every shard has its own key prefix, so a key names one sample of the whole split; with
``with_images`` each sample also carries a small PNG (a flat colour per caption), as the
decoder's embedding shards do.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image

from tests.prior.helpers import IDENTITY, ToyEmbeddings

COLOURS = [(200, 40, 40), (40, 40, 200), (40, 160, 40), (220, 200, 40)]


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _png(colour: tuple[int, int, int], size: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return buf.getvalue()


def write_split(directory: Path, shards: int, per_shard: int, seed: int = 0,
                with_images: bool = False, image_size: int = 16) -> list[str]:
    """Write ``shards`` shards of ``per_shard`` samples with stats/identity side files; return
    every sample key."""
    directory.mkdir(parents=True, exist_ok=True)
    data = ToyEmbeddings(shards * per_shard, seed)
    keys = []
    for s in range(shards):
        with wds.TarWriter(str(directory / f"emb-{s:06d}.tar")) as sink:
            for i in range(s * per_shard, (s + 1) * per_shard):
                row = data[i]
                key = f"s{s:02d}_{i:05d}"
                sample = {
                    "__key__": key,
                    "img_emb.npy": _npy(row["image_emb"].numpy()),
                    "txt_emb.npy": _npy(row["text_emb"].numpy()),
                    "txt_tokens.npy": _npy(row["text_tokens"].numpy()),
                    "txt_mask.npy": _npy(row["text_mask"].numpy()),
                    "txt": row["caption"],
                    "json": json.dumps({"caption": row["caption"]}),
                }
                if with_images:
                    sample["png"] = _png(COLOURS[int(data.idx[i])], image_size)
                sink.write(sample)
                keys.append(key)
    emb = data.image_mean[data.idx] + data.noise
    txt = data.text[data.idx]
    stats = {side: {"mean": x.mean(0).tolist(), "std": x.std(0).tolist(),
                    "mean_norm": float(x.norm(dim=-1).mean())}
             for side, x in (("image", emb), ("text", txt))}
    (directory / "stats.json").write_text(json.dumps(stats))
    (directory / "clip_identity.json").write_text(json.dumps(IDENTITY))
    return keys
