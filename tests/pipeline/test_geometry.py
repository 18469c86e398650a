"""Slerp and text-diff paths in CLIP embedding space (2204.06125 sec. 3.2-3.3)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unclip.pipeline import slerp, text_diff_direction, text_diff_path


def test_slerp_endpoints_are_exact_and_path_is_a_great_circle():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, generator=g) * 3, torch.randn(16, generator=g) * 3
    path = slerp(a, b, [0.0, 0.25, 0.5, 1.0])
    assert path.shape == (4, 16)
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    ua, ub = F.normalize(a, dim=0), F.normalize(b, dim=0)
    unit = slerp(ua, ub, torch.linspace(0, 1, 9))
    torch.testing.assert_close(unit.norm(dim=1), torch.ones(9))  # stays on the sphere
    omega = torch.arccos(ua @ ub)
    angles = torch.arccos((unit @ ua).clamp(-1, 1))
    torch.testing.assert_close(angles, torch.linspace(0, 1, 9) * omega, atol=1e-4, rtol=0)


def test_slerp_scalar_batched_and_parallel_inputs():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[0.0, 1.0], [0.0, 4.0]])  # second row parallel: falls back to lerp
    mid = slerp(a, b, 0.5)
    assert mid.shape == (2, 2)
    torch.testing.assert_close(mid[0], torch.tensor([math.sqrt(0.5), math.sqrt(0.5)]))
    torch.testing.assert_close(mid[1], torch.tensor([0.0, 3.0]))
    assert slerp(a, b, [0.0, 1.0]).shape == (2, 2, 2)
    with pytest.raises(ValueError, match="differ in shape"):
        slerp(a, b[0], 0.5)


def test_text_diff_path_starts_at_the_image_and_turns_toward_the_diff():
    g = torch.Generator().manual_seed(1)
    z_i, src, dst = (torch.randn(8, generator=g) for _ in range(3))
    d = text_diff_direction(src, dst)
    torch.testing.assert_close(d, F.normalize(dst - src, dim=0))
    path = text_diff_path(z_i, d, [0.0, 0.25, 0.5, 1.0])
    assert torch.equal(path[0], z_i)
    torch.testing.assert_close(path.norm(dim=1), z_i.norm().expand(4))  # norm kept
    cos = F.cosine_similarity(path, d[None], dim=1)
    assert bool((cos[1:] > cos[:-1]).all()) and cos[-1] == pytest.approx(1.0, abs=1e-5)


def test_identical_captions_have_no_direction():
    v = torch.ones(4)
    with pytest.raises(ValueError, match="identical CLIP text embeddings"):
        text_diff_direction(v, v.clone())
