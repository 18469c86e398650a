"""Samples/second delivered by the data modules (training loaders, one epoch each).

    python benchmarks/dataloader.py [--samples 4000] [--batch-size 64] [--workers 0 2]

Writes temporary shards (shapes images; embeddings in the precompute layout with ViT-B-32
widths: D=512, tokens 77x512 float16, plus the png) and times ImageCaptionDataModule at 32 and
64 px, EmbeddingDataModule without images (the prior) and with images at 32 and 64 px (the
decoder), at each worker count. The first batch (worker start-up, shuffle-buffer fill) is timed
separately from the steady state.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import webdataset as wds

from unclip.data.embeddings import EmbeddingDataModule
from unclip.data.image_caption import ImageCaptionDataModule
from unclip.data.shapes.writer import TAR_MTIME, make_sample, write_dataset


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def write_embedding_shards(out: Path, samples: int, shard_size: int, dim: int = 512,
                           length: int = 77, width: int = 512) -> None:
    """Embedding shards in the layout of docs/interfaces.md, on top of shapes samples."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with wds.ShardWriter(str(out / "emb-%06d.tar"), maxcount=shard_size, verbose=0,
                         mtime=TAR_MTIME) as sink:
        for index in range(samples):
            base = make_sample(1, "train", index)
            sink.write({
                "__key__": base["__key__"],
                "img_emb.npy": _npy(rng.standard_normal(dim, dtype=np.float32)),
                "txt_emb.npy": _npy(rng.standard_normal(dim, dtype=np.float32)),
                "txt_tokens.npy": _npy(rng.standard_normal((length, width)).astype(np.float16)),
                "txt_mask.npy": _npy(np.arange(length) < 12),
                "txt": base["txt"],
                "json": base["json"],
                "png": base["png"],
            })


def time_loader(loader) -> tuple[float, float, int]:
    """(seconds to the first batch, steady samples/s after it, samples)."""
    start = time.perf_counter()
    iterator = iter(loader)
    first = next(iterator)
    t_first = time.perf_counter() - start
    n_first = len(first["key"])
    n = 0
    steady = time.perf_counter()
    for batch in iterator:
        n += len(batch["key"])
    elapsed = time.perf_counter() - steady
    return t_first, (n / elapsed if elapsed > 0 else float("nan")), n + n_first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4000, help="samples per epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="*", default=[0, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (main process)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shard_size = max(1, args.samples // 8)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_dataset(root / "shapes", {"train": args.samples}, workers=2, shard_size=shard_size,
                      progress=False)
        write_embedding_shards(root / "emb", args.samples, shard_size)
        shapes = str(root / "shapes" / "train" / "*.tar")
        emb = str(root / "emb" / "*.tar")
        common = dict(batch_size=args.batch_size, epoch_length=args.samples, shuffle_buffer=1000)
        cases = []
        for res in (32, 64):
            cases.append((f"image-caption {res}px", lambda w, r=res: ImageCaptionDataModule(
                shapes, resolution=r, num_workers=w, **common)))
        cases.append(("embeddings (prior)", lambda w: EmbeddingDataModule(
            emb, num_workers=w, **common)))
        for res in (32, 64):
            cases.append((f"embeddings + image {res}px", lambda w, r=res: EmbeddingDataModule(
                emb, with_images=True, resolution=r, num_workers=w, **common)))

        print(f"# {args.samples} samples/epoch, batch {args.batch_size}, "
              f"{os.cpu_count()} CPUs, torch threads {args.threads}")
        print("| data module | workers | first batch (s) | samples/s |")
        print("|---|---|---|---|")
        for name, make in cases:
            for workers in args.workers:
                t_first, rate, n = time_loader(make(workers).train_dataloader())
                print(f"| {name} | {workers} | {t_first:.2f} | {rate:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
