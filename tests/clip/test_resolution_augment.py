"""The domain CLIP's resolution augmentation: which rows change, and how."""

from __future__ import annotations

import pytest
import torch

from unclip.clip.resolution_augment import degrade_resolution
from unclip.lit.clip import CLIPModule


def checkerboard(n: int, size: int = 32) -> torch.Tensor:
    """(n, 3, size, size) one-pixel checkerboards in {-1, 1}: all energy at the top frequency."""
    idx = torch.arange(size)
    board = ((idx[:, None] + idx[None, :]) % 2).float() * 2 - 1
    return board.expand(n, 3, size, size).clone()


def test_prob_zero_returns_an_equal_copy() -> None:
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    out = degrade_resolution(x, 0.0, 8)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()


def test_every_row_loses_its_finest_detail_at_prob_one() -> None:
    x = checkerboard(6)
    out = degrade_resolution(x, 1.0, 8, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= -1 and out.max() <= 1
    # shrinking below 32 px averages the checkerboard away: far below its unit amplitude
    assert (out.abs().flatten(1).mean(1) < 0.5).all()


def test_content_survives_a_constant_image_stays_constant() -> None:
    x = torch.full((3, 3, 32, 32), 0.3)
    out = degrade_resolution(x, 1.0, 8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_rows_not_chosen_are_left_exactly_alone_and_the_share_follows_prob() -> None:
    x = checkerboard(400)
    out = degrade_resolution(x, 0.3, 8, generator=torch.Generator().manual_seed(2))
    changed = (out != x).flatten(1).any(1)
    unchanged = ~changed
    assert torch.equal(out[unchanged], x[unchanged])
    assert 0.22 < changed.float().mean().item() < 0.38


def test_the_same_generator_gives_the_same_images() -> None:
    x = torch.rand(8, 3, 32, 32) * 2 - 1
    a = degrade_resolution(x, 0.5, 8, generator=torch.Generator().manual_seed(3))
    b = degrade_resolution(x, 0.5, 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize(("prob", "min_size", "match"),
                         [(1.5, 8, "prob must be in"), (0.5, 32, "min_size must be in"),
                          (0.5, 0, "min_size must be in")])
def test_bad_settings_are_refused(prob: float, min_size: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        degrade_resolution(torch.zeros(1, 3, 32, 32), prob, min_size)


@pytest.mark.parametrize(("kw", "match"), [({"low_res_prob": -0.1}, "clip.low_res_prob"),
                                           ({"low_res_min_size": 0}, "clip.low_res_min_size")])
def test_clip_module_refuses_bad_settings_naming_the_key(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CLIPModule(model_name="tiny-clip", **kw)


def test_clip_module_trains_on_degraded_images(monkeypatch: pytest.MonkeyPatch) -> None:
    module = CLIPModule(model_name="tiny-clip", low_res_prob=1.0, low_res_min_size=8)
    seen = []
    monkeypatch.setattr(module, "_loss", lambda pixels, captions, *negatives: seen.append(pixels)
                        or pixels.sum() * 0)
    monkeypatch.setattr(module, "log", lambda *a, **k: None)
    batch = {"image": checkerboard(2), "caption": ["a red circle", "a blue square"]}
    module.training_step(batch, 0)
    module.hparams.low_res_prob = 0.0
    module.training_step(batch, 0)
    degraded, clean = seen
    assert degraded.shape == clean.shape
    assert not torch.allclose(degraded, clean)
    assert module.hparams.low_res_min_size == 8
