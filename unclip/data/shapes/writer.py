"""Write the shapes dataset as webdataset shards, in parallel, resumably.

Layout: ``<out>/<split>/shapes-%06d.tar`` holding ``<key>.png``, ``<key>.txt`` and ``<key>.json``
(img2dataset style), plus ``<out>/<split>/info.json`` (count, seeds, shards). Sample ``i`` of a
split is drawn from ``sample_seed(seed, split, i)``, so the output is a function of
``(seed, count, shard_size)`` alone: the number of processes does not change a byte.
A shard is written under a temporary name and renamed when complete, so a shard under its final
name is always whole; a rerun skips complete splits and finishes incomplete ones.
"""

from __future__ import annotations

import json
import os
import random
import tarfile
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import webdataset as wds
from tqdm import tqdm

from .captions import sample_caption
from .render import encode_png, render_scene
from .scene import SPLITS, sample_scene, sample_seed

GENERATOR_VERSION = 1  # bump when the same seed would give different samples
SHARD_PATTERN = "shapes-%06d.tar"
# Fixed member timestamps (2000-01-01) make the tar bytes reproducible.
TAR_MTIME = 946684800


def gnu_tar_writer(path: str | os.PathLike, **kwargs) -> wds.TarWriter:
    """A ``wds.TarWriter`` on ``path`` that writes GNU tar headers.

    webdataset leaves Python's default, PAX, which gives every member whose mtime is a float
    (the writer's default ``time.time()``) an extended header that doubles the time tarfile
    takes to read a shard; GNU headers never need one (the mtime is stored as whole seconds).
    """
    writer = wds.TarWriter(str(path), **kwargs)
    writer.tarstream.format = tarfile.GNU_FORMAT
    return writer


def make_sample(base_seed: int, split: str, index: int) -> dict:
    """Sample ``index`` of ``split``: ``{"__key__", "png", "txt", "json"}``."""
    seed = sample_seed(base_seed, split, index)
    scene = sample_scene(seed)
    caption = sample_caption(scene, random.Random(f"{seed}/caption"))
    meta = {**scene.to_json(), "split": split, "index": index, "caption": caption.to_json()}
    return {
        "__key__": f"{split}_{index:08d}",
        "png": encode_png(render_scene(scene)),
        "txt": caption.text,
        "json": json.dumps(meta),
    }


@dataclass(frozen=True)
class ShardTask:
    """Samples ``start .. stop-1`` of a split, written to shard number ``shard``."""

    directory: str
    split: str
    base_seed: int
    shard: int
    start: int
    stop: int


def write_shard(task: ShardTask) -> int:
    """Write one shard (GNU tar) under a temporary name, then rename it."""
    final = os.path.join(task.directory, SHARD_PATTERN % task.shard)
    temporary = f"{final}.{os.getpid()}.tmp"
    with gnu_tar_writer(temporary, mtime=TAR_MTIME) as writer:
        for index in range(task.start, task.stop):
            writer.write(make_sample(task.base_seed, task.split, index))
    os.replace(temporary, final)
    return task.stop - task.start


@dataclass
class SplitReport:
    split: str
    count: int
    written: int
    seconds: float
    skipped: bool


def write_dataset(
    out: str | Path,
    counts: dict[str, int],
    seed: int = 0,
    workers: int = 2,
    shard_size: int = 1000,
    overwrite: bool = False,
    progress: bool = True,
) -> list[SplitReport]:
    """Write every split of ``counts`` (e.g. ``{"train": 50000, "val": 2000, "test": 2000}``)
    under ``out``; ``workers`` processes (0 or 1: in this process)."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    for split, count in counts.items():
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if count < 0:
            raise ValueError(f"{split}: sample count must be >= 0, got {count}")
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        return [
            _write_split(Path(out) / split, split, count, seed, shard_size, overwrite, pool,
                         progress)
            for split, count in counts.items()
            if count > 0
        ]
    finally:
        if pool is not None:
            pool.shutdown()


def _write_split(
    directory: Path,
    split: str,
    count: int,
    seed: int,
    shard_size: int,
    overwrite: bool,
    pool: ProcessPoolExecutor | None,
    progress: bool,
) -> SplitReport:
    config = {"split": split, "count": count, "seed": seed, "shard_size": shard_size,
              "generator_version": GENERATOR_VERSION}
    num_shards = -(-count // shard_size)
    shards = [SHARD_PATTERN % i for i in range(num_shards)]
    directory.mkdir(parents=True, exist_ok=True)
    _check_or_clear(directory, config, overwrite)
    if _is_complete(directory, shards):
        return SplitReport(split, count, 0, 0.0, skipped=True)
    for stale in directory.glob("*.tmp"):
        stale.unlink()
    _write_info(directory, config, shards, complete=False)
    tasks = [
        ShardTask(str(directory), split, seed, i, i * shard_size, min(count, (i + 1) * shard_size))
        for i in range(num_shards)
        if not (directory / shards[i]).exists()
    ]
    started = time.perf_counter()
    written = 0
    with tqdm(total=count, initial=count - sum(t.stop - t.start for t in tasks), unit="img",
              desc=f"shapes {split}", disable=not progress) as bar:
        for n in _run(tasks, pool):
            written += n
            bar.update(n)
    seconds = time.perf_counter() - started
    _write_info(directory, config, shards, complete=True)
    return SplitReport(split, count, written, seconds, skipped=False)


def _run(tasks: list[ShardTask], pool: ProcessPoolExecutor | None) -> Iterable[int]:
    if pool is None:
        return map(write_shard, tasks)
    return _as_completed(pool, tasks)


def _as_completed(pool: ProcessPoolExecutor, tasks: list[ShardTask]) -> Iterator[int]:
    for future in as_completed([pool.submit(write_shard, t) for t in tasks]):
        yield future.result()


def _check_or_clear(directory: Path, config: dict, overwrite: bool) -> None:
    """Refuse to mix shards of different configurations; with ``overwrite``, clear them."""
    info_path = directory / "info.json"
    existing = sorted(directory.glob("shapes-*.tar"))
    old = json.loads(info_path.read_text()) if info_path.exists() else None
    same = old is not None and all(old.get(k) == v for k, v in config.items())
    if same or (old is None and not existing):
        return
    if not overwrite:
        found = {k: old.get(k) for k in config} if old else f"{len(existing)} shards, no info.json"
        raise FileExistsError(
            f"{directory} holds shapes shards of another configuration ({found}); requested "
            f"{config}. Pass --overwrite to replace them, or choose another --out."
        )
    for path in existing:
        path.unlink()
    info_path.unlink(missing_ok=True)


def _is_complete(directory: Path, shards: list[str]) -> bool:
    info_path = directory / "info.json"
    if not info_path.exists() or not json.loads(info_path.read_text()).get("complete"):
        return False
    return all((directory / s).exists() for s in shards)


def _write_info(directory: Path, config: dict, shards: list[str], complete: bool) -> None:
    seeds = [sample_seed(config["seed"], config["split"], i) for i in (0, config["count"] - 1)]
    info = {**config, "complete": complete, "first_seed": seeds[0], "last_seed": seeds[1],
            "num_shards": len(shards), "shards": shards}
    temporary = directory / "info.json.tmp"
    temporary.write_text(json.dumps(info, indent=1) + "\n")
    os.replace(temporary, directory / "info.json")
