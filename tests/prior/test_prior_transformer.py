"""PriorTransformer: shapes, causality, padding, conditioning dropout, input checks."""

from __future__ import annotations

import pytest
import torch

from unclip.models.prior_transformer import N_FIXED, PriorTransformer

D, W, L, B = 16, 12, 7, 5


def make_net(**kw) -> PriorTransformer:
    torch.manual_seed(0)
    args = dict(dim=D, token_dim=W, width=32, depth=2, heads=4, text_context=10)
    args.update(kw)
    return PriorTransformer(**args).eval()


def make_inputs(b: int = B, length: int = L, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, length + 1, (b,), generator=g)
    lengths[0] = length
    return dict(
        x_t=torch.randn(b, D, generator=g),
        t=torch.rand(b, generator=g),
        text_emb=torch.randn(b, D, generator=g),
        text_tokens=torch.randn(b, length, W, generator=g),
        text_mask=torch.arange(length)[None] < lengths[:, None],
    )


def run(net: PriorTransformer, inp: dict[str, torch.Tensor], **kw) -> torch.Tensor:
    x_t, t = inp["x_t"], inp["t"]
    cond = {k: v for k, v in inp.items() if k not in ("x_t", "t")}
    return net(x_t, t, **cond, **kw)


def hidden(net: PriorTransformer, inp: dict[str, torch.Tensor]) -> torch.Tensor:
    cond = {k: v for k, v in inp.items() if k not in ("x_t", "t")}
    return net.hidden_states(inp["x_t"], inp["t"], **cond)[0]


def test_output_shape_and_dtype():
    out = run(make_net(), make_inputs())
    assert out.shape == (B, D) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_float16_tokens_and_bf16_autocast_accepted():
    net, inp = make_net(), make_inputs()
    inp["text_tokens"] = inp["text_tokens"].half()  # embedding shards store tokens as fp16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = run(net, inp)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("field", ["x_t", "t", "text_emb", "text_tokens"])
def test_prediction_depends_on_every_input(field):
    net, inp = make_net(), make_inputs()
    ref = run(net, inp)
    inp2 = dict(inp)
    inp2[field] = inp[field] + 0.5
    assert (run(net, inp2) - ref).abs().amax(dim=-1).min() > 1e-4


def test_causality_positions_never_see_later_inputs():
    """Hidden state i depends only on inputs 0..i (2204.06125 sec. 2.1: causal mask)."""
    net = make_net()
    inp = make_inputs()
    inp["text_mask"][:] = True  # every position real, so every one is checked
    ref = hidden(net, inp)
    x_pos, emb_pos = L + 2, L
    # Perturb the noised image embedding: text and text-embedding/time positions unchanged.
    changed = dict(inp, x_t=inp["x_t"] + 1.0)
    h = hidden(net, changed)
    torch.testing.assert_close(h[:, :x_pos], ref[:, :x_pos])
    assert (h[:, x_pos:] - ref[:, x_pos:]).abs().amax() > 1e-3
    # Perturb the text embedding: the tokens before it do not move.
    h = hidden(net, dict(inp, text_emb=inp["text_emb"] + 1.0))
    torch.testing.assert_close(h[:, :emb_pos], ref[:, :emb_pos])
    assert (h[:, emb_pos:] - ref[:, emb_pos:]).abs().amax() > 1e-3
    # Perturb text token j: positions < j do not move.
    j = 3
    tokens = inp["text_tokens"].clone()
    tokens[:, j] += 1.0
    h = hidden(net, dict(inp, text_tokens=tokens))
    torch.testing.assert_close(h[:, :j], ref[:, :j])
    assert (h[:, j:] - ref[:, j:]).abs().amax() > 1e-3


def test_padding_is_never_attended():
    net, inp = make_net(), make_inputs()
    ref = run(net, inp)
    pad = ~inp["text_mask"]
    assert pad.any()
    noisy = inp["text_tokens"] + 100.0 * torch.randn_like(inp["text_tokens"]) * pad[..., None]
    torch.testing.assert_close(run(net, dict(inp, text_tokens=noisy)), ref)
    # Padding in the middle of a sequence is masked too.
    mask = inp["text_mask"].clone()
    mask[:, 1] = False
    tokens = inp["text_tokens"].clone()
    a = run(net, dict(inp, text_mask=mask))
    tokens[:, 1] = 50.0
    torch.testing.assert_close(run(net, dict(inp, text_mask=mask, text_tokens=tokens)), a)


def test_extra_trailing_padding_changes_nothing():
    net, inp = make_net(), make_inputs(length=5)
    ref = run(net, inp)
    extra = 4
    b = inp["x_t"].shape[0]
    longer = dict(
        inp,
        text_tokens=torch.cat([inp["text_tokens"], torch.randn(b, extra, W)], 1),
        text_mask=torch.cat([inp["text_mask"], torch.zeros(b, extra, dtype=torch.bool)], 1),
    )
    torch.testing.assert_close(run(net, longer), ref)


def test_row_without_real_tokens_stays_finite():
    net, inp = make_net(), make_inputs()
    inp["text_mask"][1] = False
    assert torch.isfinite(run(net, inp)).all()


def test_forced_null_condition_ignores_the_text():
    net = make_net()
    a, b = make_inputs(seed=1), make_inputs(seed=2)
    b = dict(b, x_t=a["x_t"], t=a["t"])  # same x_t and t, different caption
    drop = torch.tensor([True, False, True, False, True])
    out_a, out_b = run(net, a, cond_drop=drop), run(net, b, cond_drop=drop)
    torch.testing.assert_close(out_a[drop], out_b[drop])
    assert (out_a[~drop] - out_b[~drop]).abs().amax() > 1e-3
    # Rows that are not forced are exactly the conditional prediction.
    torch.testing.assert_close(out_a[~drop], run(net, a)[~drop])


def test_null_condition_is_learned_not_zero():
    net = make_net()
    inp = make_inputs(b=1)
    drop = torch.tensor([True])
    ref = run(net, inp, cond_drop=drop)
    with torch.no_grad():
        net.cond.null_emb.add_(torch.randn(32))  # not a constant: LayerNorm removes those
    assert (run(net, inp, cond_drop=drop) - ref).abs().amax() > 1e-3


def test_training_dropout_rate_matches_config():
    torch.manual_seed(0)
    net = make_net(cond_drop_prob=0.1).train()
    n = 20_000
    emb = torch.randn(n, D)
    tokens, mask = torch.randn(n, 3, W), torch.ones(n, 3, dtype=torch.bool)
    _, out_mask, out_emb, dropped = net.cond(emb, tokens, mask, None)
    rate = dropped.float().mean().item()
    assert abs(rate - 0.1) < 0.01  # binomial std is 0.002
    null = net.cond.null_emb.detach()
    is_null = (out_emb == null).all(-1)
    assert torch.equal(is_null, dropped)
    assert torch.equal(out_mask[dropped].sum(-1), torch.ones(int(dropped.sum()), dtype=torch.long))
    net.eval()
    assert not net.cond(emb, tokens, mask, None)[3].any()  # no random drops at eval


def test_zero_dropout_probability_never_drops():
    net = make_net(cond_drop_prob=0.0).train()
    dropped = net.cond(torch.randn(500, D), torch.randn(500, 2, W), torch.ones(500, 2).bool(), None)
    assert not dropped[3].any()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("x_t", torch.randn(B, D + 1), "x_t has shape"),
        ("t", torch.rand(B, 1), "t has shape"),
        ("text_emb", torch.randn(B - 1, D), "text_emb has shape"),
        ("text_tokens", torch.randn(B, L, W + 1), "token_dim"),
        ("text_tokens", torch.randn(B, 11, W), "text_context"),
        ("text_mask", torch.ones(B, L), "text_mask must be bool"),
    ],
)
def test_bad_inputs_raise_clear_errors(field, value, message):
    net, inp = make_net(), make_inputs()
    inp[field] = value
    with pytest.raises(ValueError, match=message):
        run(net, inp)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="divisible"):
        make_net(width=30, heads=4)
    with pytest.raises(ValueError, match="cond_drop_prob"):
        make_net(cond_drop_prob=1.5)


def test_sequence_layout_has_four_fixed_tokens():
    net, inp = make_net(), make_inputs()
    h = hidden(net, inp)
    assert h.shape == (B, L + N_FIXED, 32)
