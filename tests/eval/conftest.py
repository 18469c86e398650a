"""Fixtures of the evaluation tests: a tiny random CLIP and rendered shapes images."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pytest
import torch

from unclip.clip import FrozenCLIP
from unclip.data.shapes import render_scene, sample_scene


@pytest.fixture(scope="session")
def tiny_clip() -> FrozenCLIP:
    """The project's ``tiny-clip`` architecture, randomly initialised (seeded), frozen."""
    torch.manual_seed(0)
    return FrozenCLIP("tiny-clip")


def _render_batch(seeds: Iterable[int]) -> torch.Tensor:
    arrays = [np.asarray(render_scene(sample_scene(s))) for s in seeds]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


@pytest.fixture(scope="session")
def render_batch() -> Callable[[Iterable[int]], torch.Tensor]:
    """``render_batch(seeds)``: renders of random scenes, ``(B, 3, 64, 64)`` in ``[-1, 1]``."""
    return _render_batch


@pytest.fixture(scope="session")
def shapes_images() -> torch.Tensor:
    """128 rendered scenes (seeds 0..127) in the project image convention."""
    return _render_batch(range(128))
