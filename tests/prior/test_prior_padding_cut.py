"""The prior's caption padding is cut once per batch (not in every forward): on the host before
the batch reaches the device, and once per sampling call; the cut changes no result."""

from __future__ import annotations

import torch

from tests.prior.helpers import L, W, first_batch, make_module
from unclip.models.prior_transformer import trim_padding


def long_module():
    """A prior whose positional table takes captions 3 positions longer than the data's."""
    return make_module(network=dict(dim=None, token_dim=None, width=32, depth=2, heads=4,
                                    text_context=L + 3))


def padded(batch: dict, extra: int = 3) -> dict:
    """The batch with ``extra`` more trailing padding positions (random token values)."""
    b = len(batch["text_emb"])
    return {
        **batch,
        "text_tokens": torch.cat([batch["text_tokens"], torch.randn(b, extra, W).half()], 1),
        "text_mask": torch.cat([batch["text_mask"], torch.zeros(b, extra, dtype=torch.bool)], 1),
    }


def test_trim_padding_keeps_the_longest_caption():
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 0, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    tokens = torch.randn(3, 5, 2)
    cut_tokens, cut_mask = trim_padding(tokens, mask)
    assert torch.equal(cut_mask, mask[:, :3]) and torch.equal(cut_tokens, tokens[:, :3])
    none = torch.zeros(2, 4, dtype=torch.bool)
    assert trim_padding(torch.randn(2, 4, 2), none)[1].shape == (2, 1)  # one position stays
    full = torch.ones(2, 4, dtype=torch.bool)
    same = torch.randn(2, 4, 2)
    assert trim_padding(same, full)[0] is same  # nothing to cut: no copy


def test_batches_are_cut_before_the_device():
    module = make_module()
    batch = padded(first_batch(8), extra=3)
    longest = int(batch["text_mask"].sum(1).max())
    assert batch["text_mask"].shape[1] == L + 3 > longest
    out = module.on_before_batch_transfer(batch, 0)
    assert out["text_mask"].shape == (8, longest) and out["text_tokens"].shape == (8, longest, W)
    assert out["caption"] is batch["caption"] and out["image_emb"] is batch["image_emb"]
    assert module.on_before_batch_transfer(["no", "mapping"], 0) == ["no", "mapping"]


def test_the_cut_changes_neither_loss_nor_sample():
    module = long_module()
    batch = first_batch(8)
    long = padded(batch, extra=3)
    cut = module.on_before_batch_transfer(long, 0)
    losses = []
    for b in (long, cut):
        torch.manual_seed(5)
        losses.append(module.training_step(b, 0))
    torch.testing.assert_close(losses[0], losses[1])
    module.eval()
    a, b = (module.sample(x["text_emb"], x["text_tokens"], x["text_mask"],
                          generator=torch.Generator().manual_seed(3)) for x in (batch, long))
    torch.testing.assert_close(a, b)


def test_sampling_and_condition_cut_once(monkeypatch):
    import unclip.lit.prior as lit_prior

    calls = []

    def counting(tokens, mask):
        calls.append(mask.shape[1])
        return trim_padding(tokens, mask)

    monkeypatch.setattr(lit_prior, "trim_padding", counting)
    module = long_module().eval()
    batch = padded(first_batch(4), extra=2)
    module.sample(batch["text_emb"], batch["text_tokens"], batch["text_mask"],
                  generator=torch.Generator().manual_seed(0))
    assert calls == [L + 2]  # one cut for the whole sampling loop (4 steps, best of 2)
    cond = module.condition(batch["text_emb"], batch["text_tokens"], batch["text_mask"])
    assert cond["text_mask"].shape[1] == int(batch["text_mask"].sum(1).max())
    calls.clear()
    module.train()
    module.training_step(batch, 0)  # batches were cut by on_before_batch_transfer
    assert calls == []
