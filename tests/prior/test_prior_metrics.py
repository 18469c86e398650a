"""Prior metrics: cosines, unrelated pairs, retrieval, same-caption ceiling."""

from __future__ import annotations

import math

import pytest
import torch

from unclip.lit.prior_metrics import (
    CaptionMeans,
    ceiling_cosine,
    cosine,
    prior_metrics,
    top1_retrieval,
    unrelated_index,
)


def test_cosine_known_values():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    b = torch.tensor([[0.0, 3.0], [2.0, 2.0], [-1.0, 0.0]])
    torch.testing.assert_close(cosine(a, b), torch.tensor([0.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match="different shapes"):
        cosine(a, b[:2])


def test_unrelated_index_skips_same_caption():
    caps = ["a", "a", "b", "a", "c"]
    idx = unrelated_index(caps).tolist()
    assert idx == [2, 2, 3, 4, 0]
    assert all(caps[j] != caps[i] for i, j in enumerate(idx))
    assert unrelated_index(["x", "x"]).tolist() == [-1, -1]


def test_top1_retrieval():
    gallery = torch.eye(3)
    query = torch.tensor([[1.0, 0.1, 0.0], [0.9, 0.2, 0.0], [0.0, 0.0, 5.0]])
    torch.testing.assert_close(top1_retrieval(query, gallery), torch.tensor([1.0, 0.0, 1.0]))


def test_caption_means_average_unit_vectors():
    acc = CaptionMeans()
    acc.update(torch.tensor([[3.0, 0.0], [0.0, 0.5]]), ["a", "a"])
    acc.update(torch.tensor([[0.0, 2.0]]), ["b"])
    means = acc.means()
    torch.testing.assert_close(means["a"], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(means["b"], torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="captions for"):
        acc.update(torch.zeros(2, 2), ["a"])


def test_ceiling_marks_unknown_captions():
    means = {"a": torch.tensor([1.0, 1.0])}
    vals, known = ceiling_cosine(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), ["a", "z"], means)
    assert known.tolist() == [True, False]
    assert vals[0].item() == pytest.approx(1 / math.sqrt(2))
    assert math.isnan(vals[1].item())


def test_mean_of_unit_vectors_is_the_best_constant_predictor():
    torch.manual_seed(0)
    samples = torch.randn(400, 8) + torch.tensor([2.0] + [0.0] * 7)
    mean = CaptionMeans.from_batches([{"image_emb": samples, "caption": ["c"] * 400}])
    best = cosine(samples, mean.means()["c"].expand_as(samples)).mean()
    for _ in range(20):
        other = mean.means()["c"] + 0.3 * torch.randn(8)
        assert cosine(samples, other.expand_as(samples)).mean() <= best + 1e-6


def test_prior_metrics_on_a_perfect_prediction():
    torch.manual_seed(0)
    true = torch.randn(6, 5)
    text = torch.randn(6, 5)
    caps = ["a", "b", "c", "a", "b", "d"]
    means = CaptionMeans.from_batches([{"image_emb": true, "caption": caps}]).means()
    m = prior_metrics(2.0 * true, true, text, caps, means)
    torch.testing.assert_close(m["cos_pred_true"], torch.ones(6))
    torch.testing.assert_close(m["top1_pred"], torch.ones(6))
    torch.testing.assert_close(m["cos_text_true"], cosine(text, true))
    j = unrelated_index(caps)
    torch.testing.assert_close(m["cos_pred_unrelated"], cosine(true, true[j]))
    assert m["cos_ceiling"][2].item() == pytest.approx(1.0)  # 'c' occurs once: its own mean
    assert m["cos_ceiling"][0].item() < 1.0
    assert not m["cos_pred_true_known"].isnan().any()
