"""Float64 running moments against a direct computation."""

from __future__ import annotations

import numpy as np
import pytest

from unclip.clip.embedding_stats import EmbeddingStats


def test_moments_match_numpy() -> None:
    rng = np.random.default_rng(0)
    image = (rng.normal(3.0, 2.0, (1000, 8))).astype(np.float32)
    text = (rng.normal(-1.0, 0.5, (1000, 8))).astype(np.float32)
    stats = EmbeddingStats()
    for lo in range(0, 1000, 300):  # uneven batches
        stats.update(image[lo:lo + 300], text[lo:lo + 300])
    record = stats.to_json()
    assert record["count"] == 1000
    for side, rows in (("image", image), ("text", text)):
        rows = rows.astype(np.float64)
        np.testing.assert_allclose(record[side]["mean"], rows.mean(0), rtol=1e-10)
        np.testing.assert_allclose(record[side]["std"], rows.std(0), rtol=1e-8)
        assert record[side]["mean_norm"] == pytest.approx(np.linalg.norm(rows, axis=1).mean())


def test_mismatched_widths_are_refused() -> None:
    stats = EmbeddingStats()
    stats.update(np.zeros((2, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="width 3 != earlier 4"):
        stats.update(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="no embeddings"):
        EmbeddingStats().to_json()
