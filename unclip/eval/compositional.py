"""The compositional benchmark (GenEval-style, arXiv 2310.11513) on the shapes grammar.

``score(images, prompts)`` reads every image with the analytic reader
(``unclip.eval.reader``), judges it against its prompt's spec (``unclip.eval.verdict``) and
reports the accuracy per category, their mean (GenEval's overall score: categories weigh
equally whatever their prompt counts), the accuracy over all images, and one verdict per image.

Two reference points bracket a model's score:

- ``ceiling(prompts)``: true renders of each prompt (``sample_scene`` draws a scene satisfying
  its spec, ``render_scene`` draws it). What the reader gets right on perfect images; the
  benchmark is only meaningful if this is ~100%.
- ``floor(images, prompts)``: the same images judged against a derangement of the prompts
  (within each category by default). What images that ignore their prompt but look like the
  data would score: the chance level of each category.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image
from torch import Tensor

from unclip.data.shapes.render import render_scene
from unclip.data.shapes.scene import sample_scene
from unclip.eval.prompts import CATEGORIES, BenchmarkPrompt
from unclip.eval.reader import DEFAULT_READER_CONFIG, ReaderConfig, read_objects
from unclip.eval.verdict import Verdict, judge


@dataclass
class BenchmarkResult:
    """Accuracy per category, the mean over categories, the accuracy over images, verdicts."""

    per_category: dict[str, float]
    mean: float
    overall: float
    verdicts: list[Verdict] = field(repr=False)

    def to_json(self, with_verdicts: bool = True) -> dict:
        data = {
            "per_category": self.per_category,
            "mean": self.mean,
            "overall": self.overall,
            "num_images": len(self.verdicts),
        }
        if with_verdicts:
            data["verdicts"] = [v.to_json() for v in self.verdicts]
        return data


def summarize(verdicts: Sequence[Verdict]) -> BenchmarkResult:
    """Aggregate verdicts: per-category accuracy (benchmark order), their mean, overall."""
    if not verdicts:
        raise ValueError("no verdicts to summarize")
    order = [c for c in CATEGORIES if any(v.category == c for v in verdicts)]
    order += sorted({v.category for v in verdicts} - set(order))
    per_category = {}
    for category in order:
        passed = [v.passed for v in verdicts if v.category == category]
        per_category[category] = sum(passed) / len(passed)
    mean = sum(per_category.values()) / len(per_category)
    overall = sum(v.passed for v in verdicts) / len(verdicts)
    return BenchmarkResult(per_category, mean, overall, list(verdicts))


def score(
    images: Tensor | Sequence,
    prompts: Sequence[BenchmarkPrompt],
    reader_config: ReaderConfig = DEFAULT_READER_CONFIG,
) -> BenchmarkResult:
    """Judge ``images[i]`` against ``prompts[i]``.

    ``images``: a ``(B, 3, H, W)`` tensor in ``[-1, 1]`` or a sequence of PIL images, uint8
    ``(H, W, 3)`` arrays or ``(3, H, W)`` tensors; any size (resampled to 64 px).
    """
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
    verdicts = [
        judge(read_objects(image, reader_config), p.spec, p.text, p.category)
        for image, p in zip(images, prompts, strict=True)
    ]
    return summarize(verdicts)


def render_prompts(prompts: Sequence[BenchmarkPrompt], seed: int = 0) -> list[Image.Image]:
    """A true render of every prompt: a scene sampled to satisfy its spec (seeded per index)."""
    return [
        render_scene(sample_scene(_scene_seed(seed, index), p.spec))
        for index, p in enumerate(prompts)
    ]


def ceiling(
    prompts: Sequence[BenchmarkPrompt],
    seed: int = 0,
    reader_config: ReaderConfig = DEFAULT_READER_CONFIG,
) -> BenchmarkResult:
    """The benchmark on true renders of its own prompts: the reader's ceiling."""
    return score(render_prompts(prompts, seed), prompts, reader_config)


def shuffled_prompts(
    prompts: Sequence[BenchmarkPrompt], seed: int = 0, within_category: bool = True
) -> list[BenchmarkPrompt]:
    """A random derangement of ``prompts`` (no prompt stays at its index); with
    ``within_category`` each prompt moves only among the prompts of its category."""
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for index, p in enumerate(prompts):
        groups.setdefault(p.category if within_category else "", []).append(index)
    result = list(prompts)
    for name, indices in groups.items():
        if len(indices) < 2:
            raise ValueError(f"shuffling needs at least two prompts per group, {name!r} has one")
        targets = list(indices)
        while any(i == j for i, j in zip(indices, targets, strict=True)):
            rng.shuffle(targets)
        for i, j in zip(indices, targets, strict=True):
            result[i] = prompts[j]
    return result


def floor(
    images: Tensor | Sequence,
    prompts: Sequence[BenchmarkPrompt],
    seed: int = 0,
    within_category: bool = True,
    reader_config: ReaderConfig = DEFAULT_READER_CONFIG,
) -> BenchmarkResult:
    """The images judged against shuffled prompts: chance level for images that look like the
    data but ignore their prompt. ``within_category`` (default) keeps each category's form and
    object count, so the floor measures chance agreement of the attributes; a global shuffle
    mostly measures mismatched object counts."""
    return score(images, shuffled_prompts(prompts, seed, within_category), reader_config)


def _scene_seed(seed: int, index: int) -> int:
    return (seed << 32) | index
