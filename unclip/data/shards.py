"""Shard lists: expand patterns the webdataset way, check local ones, count their samples.

A pattern is a string or a list of strings. Strings follow webdataset: ``::`` joins several
patterns, braces expand (``shard-{000000..000099}.tar``), ``${X}`` reads ``$WDS_X``; ``pipe:``
commands and ``http(s)://`` (or any scheme ``webdataset.gopen`` knows) are used as given.
Local paths may also use shell globs (``train/*.tar``) and must exist: a pattern matching no
file is an error naming it.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from webdataset.shardlists import expand_urls

_GLOB_CHARS = set("*?[")


def is_local(url: str) -> bool:
    """Whether ``url`` names a file on this machine (no scheme, or ``file:``)."""
    scheme = urlparse(url).scheme
    return scheme in ("", "file") or len(scheme) == 1  # one letter: a Windows drive


def expand_shards(pattern: str | Sequence[str]) -> list[str]:
    """The shard URLs of ``pattern``; raises ValueError naming the pattern when it matches none
    or when local shards are missing."""
    parts = [pattern] if isinstance(pattern, str) else [str(p) for p in pattern]
    urls: list[str] = []
    for part in parts:
        for url in expand_urls(part.strip()) if part.strip() else ():
            if url.strip():
                urls.extend(_expand_local(url, pattern) if is_local(url) else [url])
    if not urls:
        raise ValueError(f"shard pattern {pattern!r} matches no shard")
    return urls


def _expand_local(url: str, pattern: str | Sequence[str]) -> list[str]:
    path = urlparse(url).path if url.startswith("file:") else url
    path = os.path.expanduser(path)
    if _GLOB_CHARS & set(path):
        found = sorted(glob.glob(path))
        if not found:
            raise ValueError(f"shard pattern {pattern!r}: {path!r} matches no file")
        return found
    if not os.path.isfile(path):
        raise ValueError(f"shard pattern {pattern!r}: no such shard {path!r}")
    return [path]


def count_samples(urls: Sequence[str]) -> int | None:
    """Samples in these shards, from the writers' side files: the shapes writer's ``info.json``
    or img2dataset's ``<shard>_stats.json``. None when any shard's count is unknown."""
    total = 0
    info_cache: dict[Path, dict | None] = {}
    for url in urls:
        if not is_local(url):
            return None
        path = Path(url)
        stats = path.with_name(path.name.removesuffix(".tar") + "_stats.json")
        if stats.is_file():
            total += int(json.loads(stats.read_text())["successes"])
            continue
        if path.parent not in info_cache:
            info_cache[path.parent] = read_sidecar(path.parent, "info.json")
        info = info_cache[path.parent]
        if info is None or path.name not in info.get("shards", ()):
            return None
        index = info["shards"].index(path.name)
        total += min(info["shard_size"], info["count"] - index * info["shard_size"])
    return total


def read_sidecar(directory: str | Path, name: str) -> dict | None:
    """The JSON file ``name`` in ``directory``, or None when there is none."""
    path = Path(directory) / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def shard_directory(urls: Sequence[str]) -> Path | None:
    """The directory holding all of these shards when they are local and in one place."""
    dirs = {Path(u).parent for u in urls if is_local(u)}
    return dirs.pop() if len(dirs) == 1 and all(is_local(u) for u in urls) else None
