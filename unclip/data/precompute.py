"""Run a frozen CLIP once over image-caption shards and write embedding shards.

A Hydra command (config ``configs/precompute.yaml``, CLIP from the ``configs/clip/`` group)::

    python -m unclip.data.precompute                         # shapes CLIP over data/shapes
    python -m unclip.data.precompute clip=vit_b32_laion2b input=/data/cc3m splits=null \\
        output=/data/cc3m-emb with_images=false batch_size=512 device=cuda

For each split (``<input>/<split>/*.tar``) it writes one shard per input shard, with the same
file name, to ``<output>/<split>/``. Per sample (docs/interfaces.md): ``img_emb.npy`` float32
(D,), ``txt_emb.npy`` float32 (D,), ``txt_tokens.npy`` float16 (L, W), ``txt_mask.npy`` bool
(L,), ``txt``, ``json`` and, with ``with_images``, the original image bytes under their
original extension (``png`` for shapes). Beside the shards: ``stats.json`` (float64 moments of
the written embeddings, :mod:`unclip.clip.embedding_stats`) and ``clip_identity.json``.

Resumable: a shard whose output exists is skipped, and an output is written under a temporary
name and renamed when complete, so an interrupted run never leaves a partial shard under its
final name; rerun the same command to finish. An output directory made with another CLIP is
refused. Samples the data layer cannot use (no image, blank caption, ...) are skipped and
counted.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds
from tqdm import tqdm

from unclip.checkpoint import atomic_write
from unclip.clip import FrozenCLIP, check_same_clip, load_identity
from unclip.clip.embedding_stats import EmbeddingStats
from unclip.data.image_caption import read_caption, read_meta
from unclip.data.robust import SkipCounter, SkipSample
from unclip.data.shapes.writer import gnu_tar_writer
from unclip.data.shards import count_samples, expand_shards
from unclip.data.transforms import IMAGE_KEYS, images_to_tensor, load_image

log = logging.getLogger(__name__)

TMP_SUFFIX = ".incomplete"
STATS_FILE = "stats.json"
IDENTITY_FILE = "clip_identity.json"


@dataclass
class PrecomputeReport:
    """What one :func:`precompute_split` call did."""

    written: list[str] = field(default_factory=list)
    skipped_shards: list[str] = field(default_factory=list)
    samples: int = 0
    skipped_samples: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _samples(url: str, counter: SkipCounter) -> Iterator[dict]:
    """Raw samples of one shard, in order; a broken shard raises with its name."""
    dataset = wds.WebDataset(url, shardshuffle=False, empty_check=False)
    try:
        yield from dataset
    except Exception as err:  # noqa: BLE001 - re-raised with the shard named
        raise RuntimeError(f"cannot read shard {url}: {err!r}") from err


def _decode(sample: dict, resolution: int, with_images: bool) -> dict:
    image_key = next((k for k in IMAGE_KEYS if k in sample), None)
    if image_key is None:
        raise SkipSample("missing_image", f"no {'/'.join(IMAGE_KEYS)} file")
    out = {
        "key": sample["__key__"],
        "caption": read_caption(sample),
        "meta": read_meta(sample),
        "pixels": load_image(sample, resolution),
    }
    if with_images:
        out["image_file"] = (image_key, sample[image_key])
    return out


def _batches(url: str, resolution: int, with_images: bool, batch_size: int,
             counter: SkipCounter) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for sample in _samples(url, counter):
        try:
            batch.append(_decode(sample, resolution, with_images))
        except SkipSample as skip:
            counter.skip(skip.reason, f"{sample.get('__key__')} in {url}", skip.detail)
            continue
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


@torch.inference_mode()
def encode_batch(clip: FrozenCLIP, batch: list[dict], autocast: bool) -> dict[str, np.ndarray]:
    """CLIP encodings of decoded samples: float32 embeddings, float16 tokens, bool mask."""
    images = images_to_tensor([s["pixels"] for s in batch]).to(clip.device)
    device_type = clip.device.type
    context = torch.autocast(device_type, dtype=torch.bfloat16) if autocast else nullcontext()
    with context:
        image_emb = clip.encode_image(images)
        text = clip.encode_text([s["caption"] for s in batch])
    return {
        "img_emb.npy": image_emb.float().cpu().numpy(),
        "txt_emb.npy": text.pooled.float().cpu().numpy(),
        "txt_tokens.npy": text.tokens.to(torch.float16).cpu().numpy(),
        "txt_mask.npy": text.mask.cpu().numpy().astype(bool),
    }


def _write_shard(clip: FrozenCLIP, url: str, out: Path, *, resolution: int, with_images: bool,
                 batch_size: int, autocast: bool, counter: SkipCounter, bar: tqdm) -> int:
    tmp = out.with_name(out.name + TMP_SUFFIX)
    count = 0
    try:
        with gnu_tar_writer(tmp) as writer:
            for batch in _batches(url, resolution, with_images, batch_size, counter):
                arrays = encode_batch(clip, batch, autocast)
                for i, s in enumerate(batch):
                    record = {"__key__": s["key"], "txt": s["caption"], "json": s["meta"]}
                    record.update({name: a[i] for name, a in arrays.items()})
                    if with_images:
                        ext, data = s["image_file"]
                        record[ext] = data
                    writer.write(record)
                count += len(batch)
                bar.update(len(batch))
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def shard_stats(paths: Sequence[str | Path]) -> dict[str, Any]:
    """``stats.json`` record of embedding shards, read back from the written files."""
    stats = EmbeddingStats()
    for path in paths:
        dataset = wds.WebDataset(str(path), shardshuffle=False, empty_check=False).decode()
        rows = [(s["img_emb.npy"], s["txt_emb.npy"]) for s in dataset]
        if rows:
            stats.update(np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows]))
    return stats.to_json()


def _write_json(path: Path, record: dict[str, Any]) -> None:
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _check_identity(out_dir: Path, clip: FrozenCLIP) -> None:
    path = out_dir / IDENTITY_FILE
    if path.is_file():
        check_same_clip(load_identity(path), clip.identity,
                        what=f"the embedding shards in {out_dir}")
    elif any(out_dir.glob("*.tar")):
        raise FileExistsError(
            f"{out_dir} holds shards but no {IDENTITY_FILE}: not written by this command; "
            "choose an empty output directory"
        )


def precompute_split(
    clip: FrozenCLIP,
    shards: str | Sequence[str],
    out_dir: str | Path,
    *,
    batch_size: int = 256,
    with_images: bool = False,
    resolution: int | None = None,
    autocast: bool = True,
    progress: bool = True,
) -> PrecomputeReport:
    """Embed every shard of ``shards`` (a pattern or list) into ``out_dir``; see the module doc.

    ``resolution`` is the side images are resized and centre-cropped to before CLIP's own
    preprocessing (default: the CLIP image size). ``autocast`` runs CLIP in bf16 autocast.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    urls = expand_shards(shards)
    names = [Path(u).name for u in urls]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"shards {sorted(duplicates)} occur twice in {shards!r}: outputs are "
                         "named after input shards, so names must be unique")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_identity(out_dir, clip)
    _write_json(out_dir / IDENTITY_FILE, clip.identity)
    for stale in out_dir.glob(f"*{TMP_SUFFIX}"):
        log.warning("removing %s left by an interrupted run", stale)
        stale.unlink()
    resolution = resolution or min(clip.identity["image_size"])
    report, counter, start = PrecomputeReport(), SkipCounter(), time.time()
    todo = [(u, out_dir / n) for u, n in zip(urls, names, strict=True)
            if not (out_dir / n).is_file()]
    report.skipped_shards = [n for n in names if (out_dir / n).is_file()]
    total = count_samples([u for u, _ in todo]) if todo else 0
    with tqdm(total=total, desc=f"precompute {out_dir.name}", unit="img",
              disable=not progress) as bar:
        for url, out in todo:
            report.samples += _write_shard(
                clip, url, out, resolution=resolution, with_images=with_images,
                batch_size=batch_size, autocast=autocast, counter=counter, bar=bar,
            )
            report.written.append(out.name)
    stats = shard_stats([out_dir / n for n in names])
    _write_json(out_dir / STATS_FILE, stats)
    report.skipped_samples = {k: v for k, v in counter.totals().items() if v}
    report.seconds = time.time() - start
    return report


def run(cfg: Any) -> dict[str, PrecomputeReport]:
    """Run the precompute for every split of a composed ``configs/precompute.yaml``."""
    import hydra

    clip: FrozenCLIP = hydra.utils.instantiate(cfg.clip).to(cfg.device)
    splits = list(cfg.splits) if cfg.splits else [None]
    reports = {}
    for split in splits:
        source = Path(cfg.input) / split if split else Path(cfg.input)
        target = Path(cfg.output) / split if split else Path(cfg.output)
        report = precompute_split(
            clip, str(source / cfg.shards), target, batch_size=cfg.batch_size,
            with_images=cfg.with_images, resolution=cfg.resolution, autocast=cfg.autocast,
            progress=cfg.progress,
        )
        rate = report.samples / report.seconds if report.seconds else 0.0
        print(f"{split or target}: wrote {len(report.written)} shards ({report.samples} samples, "
              f"{report.seconds:.1f} s, {rate:.0f} samples/s), {len(report.skipped_shards)} "
              f"already done, skipped samples {report.skipped_samples or 'none'} -> {target}")
        reports[split or str(target)] = report
    return reports


if __name__ == "__main__":
    import hydra

    hydra.main(version_base="1.3", config_path="../../configs", config_name="precompute")(run)()
