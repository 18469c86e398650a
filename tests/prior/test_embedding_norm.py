"""EmbeddingNorm: formulas, round trips, config round trip, errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from unclip.embedding_norm import EmbeddingNorm

D = 8


def test_l2_scales_to_sqrt_dim_and_inverts_to_unit_norm():
    x = torch.randn(6, D) * 3.0
    norm = EmbeddingNorm("l2", D)
    z = norm.normalize(x)
    torch.testing.assert_close(z.norm(dim=-1), torch.full((6,), math.sqrt(D)))
    torch.testing.assert_close(z, x / x.norm(dim=-1, keepdim=True) * math.sqrt(D))
    unit = x / x.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(norm.denormalize(z), unit)
    torch.testing.assert_close(norm.normalize(norm.denormalize(z)), z)


def test_meanstd_formula_and_exact_round_trip():
    mean, std = torch.randn(D), torch.rand(D) + 0.1
    norm = EmbeddingNorm("meanstd", D, mean, std)
    x = torch.randn(4, 3, D)
    z = norm.normalize(x)
    torch.testing.assert_close(z, (x - mean) / std)
    torch.testing.assert_close(norm.denormalize(z), x)


def test_none_is_identity_in_float32():
    x = torch.randn(2, D, dtype=torch.float64)
    norm = EmbeddingNorm("none", D)
    assert norm.normalize(x).dtype == torch.float32
    torch.testing.assert_close(norm.denormalize(norm.normalize(x)), x.float())


@pytest.mark.parametrize("kind", ["l2", "meanstd", "none"])
def test_config_round_trip_is_plain_and_equivalent(kind):
    stats = (torch.randn(D), torch.rand(D) + 0.5) if kind == "meanstd" else (None, None)
    norm = EmbeddingNorm(kind, D, *stats)
    cfg = norm.config()
    json.dumps(cfg)  # plain containers only
    rebuilt = EmbeddingNorm.from_config(cfg)
    x = torch.randn(3, D)
    torch.testing.assert_close(rebuilt.normalize(x), norm.normalize(x))
    torch.testing.assert_close(rebuilt.denormalize(x), norm.denormalize(x))


def test_from_stats_file(tmp_path):
    mean, std = torch.randn(D), torch.rand(D) + 0.5
    stats = {"image": {"mean": mean.tolist(), "std": std.tolist()}, "text": {}}
    path = tmp_path / "stats.json"
    path.write_text(json.dumps(stats))
    norm = EmbeddingNorm.from_stats("meanstd", path)
    torch.testing.assert_close(norm.mean, mean)
    assert EmbeddingNorm.from_stats("l2", path).dim == D
    with pytest.raises(KeyError, match="'mean' and 'std'"):
        EmbeddingNorm.from_stats("meanstd", stats, which="text")
    with pytest.raises(FileNotFoundError, match="statistics file"):
        EmbeddingNorm.from_stats("meanstd", tmp_path / "missing.json")


def test_statistics_move_with_the_module_but_not_in_state_dict():
    norm = EmbeddingNorm("meanstd", D, torch.zeros(D), torch.ones(D))
    assert norm.state_dict() == {}
    assert norm.to(torch.float64).mean.dtype == torch.float64


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("cosine", D), "unknown embedding normalisation"),
        (("meanstd", D), "needs per-dimension"),
        (("meanstd", D, [0.0] * (D - 1), [1.0] * D), "mean has 7 entries"),
        (("meanstd", D, [0.0] * D, [0.0] * D), "std must be positive"),
        (("meanstd", D, [float("nan")] * D, [1.0] * D), "non-finite"),
        (("l2", D, [0.0] * D, [1.0] * D), "takes no mean/std"),
        (("l2", 0), "dim must be positive"),
    ],
)
def test_bad_configuration_raises(args, message):
    with pytest.raises(ValueError, match=message):
        EmbeddingNorm(*args)


def test_wrong_width_raises():
    with pytest.raises(ValueError, match="last dimension 5"):
        EmbeddingNorm("l2", D).normalize(torch.randn(2, 5))
