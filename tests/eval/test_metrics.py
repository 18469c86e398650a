"""FD_CLIP, KID, CMMD and CLIP score against direct numpy/scipy computations."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from unclip.eval.clip_features import CLIPImageFeatures
from unclip.eval.clip_score import FrozenCLIPScore, clip_cosine, clip_score_from_cosine
from unclip.eval.cmmd import CMMD, cmmd
from unclip.eval.metrics import (
    clip_distribution_metrics,
    cmmd_clip,
    fd_clip,
    flatten_results,
    inception_fid,
    kid_clip,
)


class IdentityFeatures(nn.Module):
    """Pass embeddings straight to a torchmetrics metric."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class CountingEncoder(nn.Module):
    """A real encoder that counts its image forward passes."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip, self.calls = clip, 0
        self.embed_dim = clip.embed_dim

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.clip.encode_image(images)


def numpy_fd(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits (Heusel et al. 2017, eq. 6)."""
    mu_x, mu_y = x.mean(0), y.mean(0)
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_x @ cov_y).real
    return float(((mu_x - mu_y) ** 2).sum() + np.trace(cov_x + cov_y - 2 * covmean))


def numpy_unbiased_mmd2(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased MMD^2 by explicit loops over i != j (Gretton et al. 2012, Lemma 6)."""
    m, n = len(k_xx), len(k_yy)
    xx = sum(k_xx[i, j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k_yy[i, j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    return float(xx + yy - 2 * k_xy.mean())


def numpy_rbf(x: np.ndarray, y: np.ndarray, sigma: float) -> np.ndarray:
    return np.array([[np.exp(-((a - b) ** 2).sum() / (2 * sigma**2)) for b in y] for a in x])


def embed(clip: nn.Module, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return clip.encode_image(images).double().numpy()


def test_fd_clip_of_a_set_with_itself_is_zero(tiny_clip, shapes_images):
    fid = fd_clip(tiny_clip)
    fid.update(shapes_images[:64], real=True)
    fid.update(shapes_images[:64], real=False)
    assert abs(float(fid.compute())) < 1e-6


def test_fd_clip_matches_scipy_on_clip_embeddings(tiny_clip, shapes_images):
    real, fake = shapes_images[:64], shapes_images[64:]
    fid = fd_clip(tiny_clip)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    expected = numpy_fd(embed(tiny_clip, real), embed(tiny_clip, fake))
    assert float(fid.compute()) == pytest.approx(expected, rel=1e-3, abs=1e-4)


def test_fd_clip_grows_monotonically_as_images_fade_to_a_colour(tiny_clip, shapes_images):
    real = shapes_images[:64]
    target = torch.tensor([1.0, -0.2, 0.5]).view(1, 3, 1, 1)
    fid = fd_clip(tiny_clip, reset_real_features=False)
    fid.update(real, real=True)
    values = []
    for t in (0.0, 0.1, 0.3, 0.6, 1.0):
        fid.reset()
        fid.update(real * (1 - t) + t * target, real=False)
        values.append(float(fid.compute()))
    assert values[0] < 1e-6
    assert all(b > a for a, b in zip(values, values[1:], strict=False)), values


def test_frechet_distance_of_a_mean_shift_is_its_squared_norm():
    """Shifting a sample leaves its covariance unchanged, so FD = ||shift||^2 exactly."""
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    direction = torch.linspace(-1, 1, 8, dtype=torch.float64)
    fid = FrechetInceptionDistance(feature=IdentityFeatures(8), reset_real_features=False)
    fid.update(x, real=True)
    for t in (0.0, 0.5, 1.0, 2.0):
        fid.reset()
        fid.update(x + t * direction, real=False)
        assert float(fid.compute()) == pytest.approx(t**2 * float(direction @ direction), abs=1e-4)


def test_kid_clip_matches_numpy_unbiased_polynomial_mmd(tiny_clip, shapes_images):
    real, fake = shapes_images[:40], shapes_images[40:80]
    kid = kid_clip(tiny_clip, subsets=1, subset_size=40)  # one subset holding every sample
    kid.update(real, real=True)
    kid.update(fake, real=False)
    mean, _ = kid.compute()
    x, y = embed(tiny_clip, real), embed(tiny_clip, fake)
    d = x.shape[1]
    poly = lambda a, b: (a @ b.T / d + 1.0) ** 3  # Bińkowski et al. 2018, KID kernel
    expected = numpy_unbiased_mmd2(poly(x, x), poly(y, y), poly(x, y))
    assert float(mean) == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_cmmd_matches_numpy_double_loop():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 5)), rng.normal(0.5, 1.0, size=(15, 5))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    k_xx, k_yy, k_xy = numpy_rbf(xn, xn, 10), numpy_rbf(yn, yn, 10), numpy_rbf(xn, yn, 10)
    unbiased = 1000 * numpy_unbiased_mmd2(k_xx, k_yy, k_xy)
    biased = 1000 * (k_xx.mean() + k_yy.mean() - 2 * k_xy.mean())  # reference distance.py
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    assert float(cmmd(tx, ty)) == pytest.approx(unbiased, rel=1e-9)
    assert float(cmmd(tx, ty, unbiased=False)) == pytest.approx(biased, rel=1e-9)
    # without normalisation and with another bandwidth, the raw features are used
    raw = 1000 * numpy_unbiased_mmd2(numpy_rbf(x, x, 2), numpy_rbf(y, y, 2), numpy_rbf(x, y, 2))
    assert float(cmmd(tx, ty, sigma=2.0, normalize=False)) == pytest.approx(raw, rel=1e-9)


def test_cmmd_is_zero_for_one_set_and_grows_with_a_shift():
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert float(cmmd(x, x, unbiased=False)) == pytest.approx(0.0, abs=1e-9)
    values = [float(cmmd(x, x + t, normalize=False)) for t in (0.0, 1.0, 2.0, 4.0)]
    assert all(b > a for a, b in zip(values, values[1:], strict=False)), values


def test_streaming_cmmd_equals_the_function(tiny_clip, shapes_images):
    metric = cmmd_clip(tiny_clip)
    for batch in shapes_images[:48].split(16):
        metric.update(batch, real=True)
    metric.update(shapes_images[48:96], real=False)
    expected = cmmd(
        torch.from_numpy(embed(tiny_clip, shapes_images[:48])),
        torch.from_numpy(embed(tiny_clip, shapes_images[48:96])),
    )
    assert float(metric.compute()) == pytest.approx(float(expected), rel=1e-5)


def test_cmmd_keeps_real_features_across_reset_when_asked():
    metric = CMMD(IdentityFeatures(4), reset_real_features=False)
    real = torch.randn(10, 4, generator=torch.Generator().manual_seed(2))
    metric.update(real, real=True)
    metric.update(real + 1.0, real=False)
    metric.reset()
    metric.update(real, real=False)
    assert float(metric.compute()) == pytest.approx(float(cmmd(real, real)), abs=1e-6)


def test_clip_score_matches_numpy_cosine():
    rng = np.random.default_rng(3)
    img, txt = rng.normal(size=(6, 8)), rng.normal(size=(6, 8))
    cos = (img * txt).sum(1) / np.linalg.norm(img, axis=1) / np.linalg.norm(txt, axis=1)
    got = clip_cosine(torch.from_numpy(img), torch.from_numpy(txt)).numpy()
    np.testing.assert_allclose(got, cos, rtol=1e-12)
    score = clip_score_from_cosine(torch.from_numpy(cos)).numpy()
    np.testing.assert_allclose(score, np.maximum(100 * cos, 0))
    assert (score == 0).any() and (score > 0).any()  # the clamp is exercised


def test_frozen_clip_score_on_tiny_clip(tiny_clip, shapes_images):
    captions = [f"caption number {i}" for i in range(8)]
    metric = FrozenCLIPScore(tiny_clip)
    metric.update(shapes_images[:4], captions[:4])
    metric.update(shapes_images[4:8], captions[4:])
    result = metric.compute()
    with torch.no_grad():
        cos = clip_cosine(
            tiny_clip.encode_image(shapes_images[:8]), tiny_clip.encode_text(captions).pooled
        )
    assert float(result["clip_cosine"]) == pytest.approx(float(cos.mean()), rel=1e-5)
    assert float(result["clip_score"]) == pytest.approx(
        float((100 * cos).clamp_min(0).mean()), rel=1e-5
    )
    with pytest.raises(ValueError, match="captions"):
        metric.update(shapes_images[:2], captions[:3])


def test_collection_embeds_each_batch_once_and_matches_single_metrics(tiny_clip, shapes_images):
    encoder = CountingEncoder(tiny_clip)
    metrics = clip_distribution_metrics(encoder, kid_subsets=3, kid_subset_size=32)
    real, fake = shapes_images[:64], shapes_images[64:]
    metrics.update(real, real=True)
    metrics.update(fake, real=False)
    assert encoder.calls == 2  # three metrics, one forward pass per batch
    results = flatten_results(metrics.compute())
    assert set(results) == {"fd_clip", "kid_clip_mean", "kid_clip_std", "cmmd"}
    single = fd_clip(tiny_clip)
    single.update(real, real=True)
    single.update(fake, real=False)
    assert results["fd_clip"] == pytest.approx(float(single.compute()), rel=1e-5)
    expected_cmmd = cmmd(
        torch.from_numpy(embed(tiny_clip, real)), torch.from_numpy(embed(tiny_clip, fake))
    )
    assert results["cmmd"] == pytest.approx(float(expected_cmmd), rel=1e-5)


def test_features_reject_images_outside_the_convention(tiny_clip):
    features = CLIPImageFeatures(tiny_clip)
    with pytest.raises(TypeError, match="float"):
        features(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="B, 3, H, W"):
        features(torch.zeros(3, 32, 32))


def test_inception_fid_is_skipped_with_a_note_without_local_weights(tmp_path):
    metric, note = inception_fid(None)
    assert metric is None and "no local Inception weights" in note
    metric, note = inception_fid(tmp_path / "missing.pth")
    assert metric is None and "not found" in note


@pytest.mark.skipif(
    importlib.util.find_spec("torch_fidelity") is not None,
    reason="torch-fidelity is installed; the skip path needs it absent",
)
def test_inception_fid_without_torch_fidelity_is_skipped_with_a_note(tmp_path):
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"never read: torch-fidelity is checked first")
    metric, note = inception_fid(weights)
    assert metric is None and "torch-fidelity" in note
