"""Rebalance training samples by the number of objects their scene holds.

A shapes scene has one or two objects (DESIGN.md), about half of each. A stage that has already
learnt single objects gains more from pairs: ``keep={1: 0.5}`` keeps half of the single-object
samples and all the others, so two thirds of the stream are pairs. Pairs of one colour (``a red
circle above a red square``) are 1 in 11.5 of the random pairs (8 colours, a pair never repeats
colour and shape) but a fifth of the benchmark's pair prompts, and the hardest: the objects
can only be told apart by shape. ``same_color_pairs`` keeps them with their own fraction, so
``keep={1: 0.25, 2: 0.5}, same_color_pairs=1.0`` doubles their share of the stream (in the
shapes_full prior's stream it did not lift them: docs/results_history.md, session 18). The
ground truth (``json``: ``{"objects": [...]}``) is read before anything else is decoded, and
each sample's draw depends only on ``(seed, key)``: the same samples are left out in every epoch
and every run, and a resumed run sees the stream it would have seen.

Left-out samples are not errors: the shard reader counts them in their own column
(``SkipCounter.left_out``), logged as ``data/left_out/<stage>``, apart from bad data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any


class LeftOut(Exception):
    """Raised by a decoder for a sample a rebalancing rule leaves out (counted, not an error)."""


class KeepByObjectCount:
    """Keep a sample whose scene has ``n`` objects with probability ``keep[n]`` (1 when ``n`` is
    not listed), a pair whose two objects share a colour with ``same_color_pairs`` when given
    (else ``keep[2]``); a picklable rule for DataLoader workers.

    Raises ``ValueError`` (a configuration error, not bad data) when a sample has no ``objects``
    list in its ground truth (such shards are not shapes shards), or, with
    ``same_color_pairs``, a pair object without a ``color``.
    """

    def __init__(self, keep: Mapping[Any, float], seed: int = 0,
                 same_color_pairs: float | None = None) -> None:
        self.keep: dict[int, float] = {}
        for count, fraction in dict(keep).items():
            try:
                n = int(count)
            except (TypeError, ValueError):
                raise ValueError(f"keep_by_object_count: key {count!r} is not an object "
                                 f"count") from None
            if n < 1 or str(n) != str(count).strip():
                raise ValueError(f"keep_by_object_count: key {count!r} is not an object count "
                                 f"(1, 2, ...)")
            self.keep[n] = _fraction(fraction, f"keep_by_object_count[{n}]")
        self.same_color_pairs = (None if same_color_pairs is None else
                                 _fraction(same_color_pairs, "keep_same_color_pairs"))
        self.seed = int(seed)

    def draw(self, key: str) -> float:
        """A uniform number in [0, 1) fixed by ``(seed, key)``."""
        digest = hashlib.blake2b(f"{self.seed}/{key}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def __call__(self, key: str, meta: Mapping[str, Any], where: str = "") -> None:
        """Raise :class:`LeftOut` when the sample ``key`` with ground truth ``meta`` is left out."""
        objects = meta.get("objects")
        sample = f"sample {key}{' in ' + where if where else ''}"
        if not isinstance(objects, list):
            raise ValueError(f"keep_by_object_count needs each sample's json ground truth to "
                             f"list its 'objects'; {sample} has keys {sorted(meta)}")
        fraction = self.keep.get(len(objects), 1.0)
        reason = f"{len(objects)} object(s)"
        if self.same_color_pairs is not None and one_color_pair(objects, sample,
                                                               "keep_same_color_pairs"):
            fraction, reason = self.same_color_pairs, "2 object(s) of one colour"
        if fraction < 1.0 and self.draw(key) >= fraction:
            raise LeftOut(reason)


def one_color_pair(objects: list, sample: str, key: str) -> bool:
    """Whether a scene's json ``objects`` are two objects of one colour.

    Raises ``ValueError`` naming ``key`` (the setting that asked) and ``sample`` when one of two
    objects has no ``color``.
    """
    if len(objects) != 2:
        return False
    colors = [o.get("color") if isinstance(o, Mapping) else None for o in objects]
    if None in colors:
        raise ValueError(f"{key} needs each object's 'color' in the json ground truth; "
                         f"{sample} has {objects}")
    return colors[0] == colors[1]


def _fraction(value: Any, name: str) -> float:
    """``value`` as a float in (0, 1], or a ``ValueError`` naming ``name``."""
    fraction = float(value)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"{name} = {fraction}: a fraction in (0, 1]")
    return fraction
