"""benchmarks/prior_quality.py: the paired gain over the text baseline and its standard error."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import prior_quality  # noqa: E402

from tests.prior.helpers import loader, make_module  # noqa: E402
from unclip.lit.prior_metrics import cosine  # noqa: E402


def test_gain_is_the_paired_mean_difference_with_its_standard_error():
    prior = make_module().eval()
    batches = list(loader(n=24, batch_size=8))
    m = prior_quality.evaluate(prior, batches, "ddim", 3, 1, means=None, seed=5)
    diffs = []
    for i, batch in enumerate(batches):  # the same draws: evaluate seeds batch i with seed + i
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pred = prior.sample(batch["text_emb"], batch["text_tokens"], batch["text_mask"],
                                sampler="ddim", steps=3, best_of=1, guidance_scale=1.0,
                                generator=torch.Generator().manual_seed(5 + i))
        diffs.append(cosine(pred, batch["image_emb"]) - cosine(batch["text_emb"],
                                                              batch["image_emb"]))
    d = torch.cat(diffs).double()
    assert abs(m["gain_over_text"] - float(d.mean())) < 1e-6
    assert abs(m["gain_over_text"] - (m["cos_pred_true"] - m["cos_text_true"])) < 1e-5
    assert abs(m["gain_se"] - float(d.std() / 24 ** 0.5)) < 1e-6
    assert m["gain_se"] > 0


def test_seed_cos_is_the_cosine_between_two_seeds_draws():
    prior = make_module().eval()
    batches = list(loader(n=16, batch_size=8))
    m = prior_quality.evaluate(prior, batches, "ddim", 3, 1, means=None, seed=5, diversity=True)
    options = {"sampler": "ddim", "steps": 3, "best_of": 1, "guidance_scale": 1.0}
    firsts = [prior_quality.draw(prior, b, 5 + i, **options) for i, b in enumerate(batches)]
    seconds = [prior_quality.draw(prior, b, 5 + i + prior_quality.SECOND_DRAW_OFFSET, **options)
               for i, b in enumerate(batches)]
    spreads = [cosine(a, b) for a, b in zip(firsts, seconds, strict=True)]
    expected = float(torch.cat(spreads).double().mean())
    assert abs(m["seed_cos"] - expected) < 1e-6
    assert not torch.equal(firsts[0], seconds[0])  # the second draw is another seed's
    assert "seed_cos" not in prior_quality.evaluate(prior, batches, "ddim", 3, 1, means=None)


def test_oracle_seed_cosine_pairs_two_training_embeddings_of_each_caption():
    e = torch.eye(4)
    bank = {"same": [e[0], e[0].clone()], "orthogonal": [e[1], e[2]], "alone": [e[3]]}
    batches = [{"caption": ["same", "orthogonal", "alone", "unseen"]}]
    # (1 + 0) / 2: captions with fewer than two training embeddings are left out
    assert abs(prior_quality.oracle_seed_cosine(batches, bank) - 0.5) < 1e-6
