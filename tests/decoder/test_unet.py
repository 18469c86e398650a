"""UNet: shapes, conditioning, learned nulls, dropout rates, upsampler input, input checks."""

from __future__ import annotations

import pytest
import torch

from unclip.models.unet import UNet, coordinate_grid

B, D, W, L, R = 3, 24, 20, 6, 16


def randomize(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter: zero-initialised output layers would hide all dependencies."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return net


def make_net(**kw) -> UNet:
    torch.manual_seed(0)
    args = dict(resolution=R, model_channels=32, channel_mult=(1, 2), num_blocks=1,
                attn_resolutions=(8,), head_channels=16, image_emb_dim=D, text_token_dim=W)
    args.update(kw)
    return randomize(UNet(**args)).eval()


def make_upsampler(**kw) -> UNet:
    return make_net(image_emb_dim=None, text_token_dim=None, attn_resolutions=(),
                    low_res_channels=3, **kw)


def inputs(b: int = B, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return dict(
        x_t=torch.randn(b, 3, R, R, generator=g),
        t=torch.rand(b, generator=g),
        image_emb=torch.randn(b, D, generator=g),
        text_tokens=torch.randn(b, L, W, generator=g),
        text_mask=torch.arange(L)[None] < torch.randint(1, L + 1, (b, 1), generator=g),
    )


def run(net: UNet, inp: dict[str, torch.Tensor], **kw) -> torch.Tensor:
    cond = {k: v for k, v in inp.items() if k not in ("x_t", "t")}
    cond.update(kw)
    return net(inp["x_t"], inp["t"], **cond)


def test_output_shape_dtype_and_zero_init():
    torch.manual_seed(0)
    fresh = UNet(resolution=R, model_channels=32, channel_mult=(1, 2), num_blocks=1,
                 attn_resolutions=(8,), head_channels=16, image_emb_dim=D)
    inp = inputs()
    del inp["text_tokens"], inp["text_mask"]
    out = run(fresh, inp)
    assert out.shape == (B, 3, R, R) and out.dtype == torch.float32
    assert torch.count_nonzero(out) == 0  # zero-initialised output conv (ADM)
    out = run(make_net(), inputs())
    assert out.shape == (B, 3, R, R) and torch.isfinite(out).all() and out.std() > 0


def test_rows_are_independent():
    net, inp = make_net(), inputs()
    full = run(net, inp)
    for i in range(B):
        row = {k: v[i : i + 1] for k, v in inp.items()}
        torch.testing.assert_close(run(net, row), full[i : i + 1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("field", ["t", "image_emb", "text_tokens"])
def test_output_depends_on_each_condition(field):
    net, inp = make_net(), inputs()
    other = dict(inp)
    other[field] = inputs(seed=7)[field]
    diff = (run(net, inp) - run(net, other)).abs().amax(dim=(1, 2, 3))
    assert (diff > 1e-3).all()


def test_masked_caption_tokens_are_ignored():
    net, inp = make_net(), inputs()
    inp["text_mask"][:, 3:] = False
    other = dict(inp, text_tokens=inp["text_tokens"].clone())
    other["text_tokens"][:, 3:] = 100.0
    torch.testing.assert_close(run(net, inp), run(net, other), atol=1e-5, rtol=1e-5)


def test_image_embedding_norm_is_ignored():
    net, inp = make_net(), inputs()
    scaled = dict(inp, image_emb=3.0 * inp["image_emb"])
    torch.testing.assert_close(run(net, inp), run(net, scaled), atol=1e-5, rtol=1e-5)


def test_cond_drop_replaces_conditions_by_nulls():
    net, inp = make_net(), inputs()
    drop = torch.tensor([True, False, True])
    out = run(net, inp, cond_drop=drop)
    other = dict(inp, **{k: v for k, v in inputs(seed=9).items() if k not in ("x_t", "t")})
    out_other = run(net, other, cond_drop=drop)
    # dropped rows ignore their image embedding and caption; kept rows do not
    torch.testing.assert_close(out[drop], out_other[drop], atol=1e-5, rtol=1e-5)
    assert (out[~drop] - out_other[~drop]).abs().max() > 1e-3
    # the unconditional call without any condition equals the dropped rows
    uncond = net(inp["x_t"], inp["t"], cond_drop=torch.ones(B, dtype=torch.bool))
    torch.testing.assert_close(uncond[drop], out[drop], atol=1e-5, rtol=1e-5)


def test_null_conditions_are_learned():
    net = make_net().train()
    inp = inputs()
    run(net, inp, cond_drop=torch.ones(B, dtype=torch.bool)).square().mean().backward()
    cond = net.conditioner
    for null in (cond.null_image, cond.null_text):
        assert null.grad is not None and null.grad.abs().sum() > 0
    before = [cond.null_image.detach().clone(), cond.null_text.detach().clone()]
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    assert not torch.equal(before[0], cond.null_image)
    assert not torch.equal(before[1], cond.null_text)


def test_missing_caption_is_the_null_caption():
    net, inp = make_net(), inputs()
    drop_all = torch.ones(B, dtype=torch.bool)
    no_text = {k: v for k, v in inp.items() if k not in ("text_tokens", "text_mask")}
    # with the image dropped too, both calls see only nulls
    torch.testing.assert_close(run(net, no_text, cond_drop=drop_all),
                               run(net, inp, cond_drop=drop_all), atol=1e-5, rtol=1e-5)


def test_dropout_rates_in_training_only():
    net = make_net(image_drop_prob=0.1, text_drop_prob=0.5).train()
    n = 40_000
    image, text = net.conditioner.drop_masks(n, None, torch.device("cpu"))
    tol = 4 * (0.25 / n) ** 0.5  # 4 standard errors of a proportion
    assert abs(image.float().mean() - 0.1) < tol
    assert abs(text.float().mean() - 0.5) < tol
    assert abs((image & text).float().mean() - 0.05) < tol  # drawn independently
    forced = torch.zeros(n, dtype=torch.bool)
    forced[:100] = True
    image, text = net.conditioner.drop_masks(n, forced, torch.device("cpu"))
    assert image[:100].all() and text[:100].all()
    net.eval()
    image, text = net.conditioner.drop_masks(n, forced, torch.device("cpu"))
    assert torch.equal(image, forced) and torch.equal(text, forced)


def test_training_dropout_reaches_the_output():
    net, inp = make_net(image_drop_prob=1.0, text_drop_prob=1.0), inputs()
    net.train()
    dropped = run(net, inp)
    net.eval()
    torch.testing.assert_close(dropped, run(net, inp, cond_drop=torch.ones(B, dtype=torch.bool)),
                               atol=1e-5, rtol=1e-5)


def test_upsampler_uses_low_res_and_aug_level():
    net = make_upsampler()
    g = torch.Generator().manual_seed(3)
    x, t = torch.randn(B, 3, R, R, generator=g), torch.rand(B, generator=g)
    low = torch.randn(B, 3, R // 2, R // 2, generator=g, requires_grad=True)
    level = torch.full((B,), 0.2)
    out = net(x, t, low_res=low, aug_level=level)
    assert out.shape == (B, 3, R, R)
    other_low = net(x, t, low_res=torch.randn(B, 3, R // 2, R // 2, generator=g), aug_level=level)
    other_level = net(x, t, low_res=low, aug_level=torch.full((B,), 0.7))
    assert ((out - other_low).abs().amax(dim=(1, 2, 3)) > 1e-3).all()
    assert ((out - other_level).abs().amax(dim=(1, 2, 3)) > 1e-3).all()
    out.sum().backward()
    assert low.grad is not None and (low.grad.abs().sum(dim=(1, 2, 3)) > 0).all()
    # aug_level=None is the clean low-res image, level 0
    torch.testing.assert_close(net(x, t, low_res=low), net(x, t, low_res=low,
                               aug_level=torch.zeros(B)))


def test_bf16_autocast_channels_last_matches_float32():
    net, inp = make_net(), inputs()
    ref = run(net, inp)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = run(net, dict(inp, x_t=inp["x_t"].contiguous(memory_format=torch.channels_last)))
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()
    inp16 = dict(inp, text_tokens=inp["text_tokens"].half())  # shards store tokens as fp16
    assert torch.isfinite(run(net, inp16)).all()


def test_parameters_are_channels_last():
    net = make_net()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)


@pytest.mark.parametrize(
    ("kwargs", "call", "match"),
    [
        ({}, dict(image_emb=torch.randn(B, D + 1)), "image_emb must have shape"),
        ({}, dict(image_emb=None), "pass image_emb"),
        ({}, dict(text_tokens=torch.randn(B, L, W + 1)), "text_tokens must have shape"),
        ({}, dict(text_mask=torch.ones(B, L + 1, dtype=torch.bool)), "text_mask must have shape"),
        ({}, dict(low_res=torch.randn(B, 3, 8, 8)), "not an upsampler"),
        ({}, dict(cond_drop=torch.ones(B + 1, dtype=torch.bool)), "cond_drop must have shape"),
        ({"image_emb_dim": None}, dict(), "no image conditioning"),
        ({"text_token_dim": None}, dict(), "no caption conditioning"),
    ],
)
def test_bad_inputs_are_named(kwargs, call, match):
    net, inp = make_net(**kwargs), inputs()
    inp.update(call)
    with pytest.raises(ValueError, match=match):
        run(net, inp)


def test_upsampler_requires_low_res():
    net = make_upsampler()
    with pytest.raises(ValueError, match="pass low_res"):
        net(torch.randn(B, 3, R, R), torch.rand(B))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(resolution=20, channel_mult=(1, 1, 2, 2)), "not divisible"),
        (dict(attn_resolutions=(4,)), "not feature-map sizes"),
        (dict(head_channels=24), "not a multiple of head_channels"),
        (dict(image_drop_prob=1.5), "image_drop_prob"),
        (dict(model_channels=40), "normalisation groups"),
        (dict(layout_res=-1), "layout_res"),
        (dict(layout_res=4, layout_channels=0), "layout_channels"),
        (dict(layout_res=4, image_emb_dim=None), "needs image conditioning"),
    ],
)
def test_bad_configs_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_net(**kwargs)


def test_context_mask_only_with_caption_tokens():
    """Image tokens are always real: without captions the attention gets no mask at all (a mask
    of ones only costs; on CUDA it rules out the flash kernel)."""
    from unclip.models.unet_conditioning import DecoderConditioner

    inp = inputs()
    image_only = DecoderConditioner(32, 16, image_emb_dim=D, num_image_tokens=4).eval()
    cond = image_only(B, inp["image_emb"])
    assert cond.context.shape == (B, 4, 16) and cond.context_mask is None
    both = DecoderConditioner(32, 16, image_emb_dim=D, num_image_tokens=4,
                              text_token_dim=W).eval()
    cond = both(B, inp["image_emb"], inp["text_tokens"], inp["text_mask"])
    assert cond.context.shape == (B, 4 + L, 16)
    assert torch.equal(cond.context_mask[:, :4], torch.ones(B, 4, dtype=torch.bool))
    assert torch.equal(cond.context_mask[:, 4:], inp["text_mask"])


def test_attention_without_mask_equals_a_mask_of_ones():
    from unclip.models.unet_blocks import AttentionBlock

    torch.manual_seed(0)
    block = randomize(AttentionBlock(32, head_channels=16, context_dim=8, groups=8))
    x, context = torch.randn(2, 32, 4, 4), torch.randn(2, 5, 8)
    ones = torch.ones(2, 5, dtype=torch.bool)
    torch.testing.assert_close(block(x, context, None), block(x, context, ones))


def test_coordinate_grid_is_x_then_y_in_minus_one_to_one():
    grid = coordinate_grid(torch.zeros(2, 3, 4, 5))
    assert grid.shape == (2, 2, 4, 5)
    torch.testing.assert_close(grid[0, 0, 2], torch.linspace(-1, 1, 5))  # x along a row
    torch.testing.assert_close(grid[1, 1, :, 3], torch.linspace(-1, 1, 4))  # y down a column
    assert grid[0, 0, 0, 0] == grid[0, 1, 0, 0] == -1  # top left
    assert grid[0, 0, -1, -1] == grid[0, 1, -1, -1] == 1  # bottom right


def test_coordinate_channels_are_two_extra_inputs_of_the_input_conv():
    """With the coordinate weights zeroed the network is the plain one with the same weights,
    and with them it is not: the grid reaches the input conv, and only there."""
    coord = make_net(coord_channels=True)
    plain_net = make_net()
    assert coord.input_conv.in_channels == plain_net.input_conv.in_channels + 2
    inp = inputs()
    with torch.no_grad():
        coord.input_conv.weight[:, 3:].zero_()
        state = coord.state_dict()
        state["input_conv.weight"] = state["input_conv.weight"][:, :3]
        plain_net.load_state_dict(state)
        torch.testing.assert_close(run(coord, inp), run(plain_net, inp))
        coord.input_conv.weight[:, 3:].normal_()
        assert (run(coord, inp) - run(plain_net, inp)).abs().amax() > 1e-3


def test_upsampler_with_coordinate_channels_takes_both_inputs():
    net = make_upsampler(coord_channels=True)
    assert net.input_conv.in_channels == 3 + 3 + 2
    inp = inputs()
    out = net(inp["x_t"], inp["t"], low_res=torch.randn(B, 3, R // 2, R // 2))
    assert out.shape == (B, 3, R, R) and torch.isfinite(out).all()


def test_layout_map_is_a_linear_projection_of_the_unit_embedding():
    """The map is W (sqrt(D) z) + b reshaped to (C, r, r), z the unit embedding; dropped rows
    all get the null embedding's map; without layout_res there is no map."""
    from unclip.models.unet_conditioning import DecoderConditioner

    inp = inputs()
    torch.manual_seed(0)
    cond = DecoderConditioner(32, 16, image_emb_dim=D, layout_res=4, layout_channels=5).eval()
    drop = torch.tensor([False, True, True])
    layout = cond(B, inp["image_emb"], cond_drop=drop).layout
    assert layout.shape == (B, 5, 4, 4)
    z = torch.nn.functional.normalize(inp["image_emb"][0], dim=-1) * D**0.5
    expected = (cond.image_to_layout.weight @ z + cond.image_to_layout.bias).view(5, 4, 4)
    torch.testing.assert_close(layout[0], expected)
    torch.testing.assert_close(layout[1], layout[2])
    assert (layout[0] - layout[1]).abs().amax() > 1e-3
    # the scale is O(1) at initialisation, so the input conv sees it from the first step
    assert 0.1 < layout[0].std() < 3
    plain = DecoderConditioner(32, 16, image_emb_dim=D).eval()
    assert plain(B, inp["image_emb"]).layout is None


def test_layout_map_reaches_the_input_conv_resized_to_the_image():
    """Zeroing the layout weights of the input conv gives the plain network; the map is the
    bilinearly resized projection, concatenated after x_t (and the coordinates)."""
    layout_net = make_net(layout_res=4, layout_channels=5, coord_channels=True)
    plain_net = make_net(coord_channels=True)
    assert layout_net.input_conv.in_channels == 3 + 2 + 5
    inp = inputs()
    with torch.no_grad():
        layout_net.input_conv.weight[:, 5:].zero_()
        state = {k: v for k, v in layout_net.state_dict().items()
                 if not k.startswith("conditioner.image_to_layout")}
        state["input_conv.weight"] = state["input_conv.weight"][:, :5]
        plain_net.load_state_dict(state)
        torch.testing.assert_close(run(layout_net, inp), run(plain_net, inp))
        layout_net.input_conv.weight[:, 5:].normal_()
        with_map = run(layout_net, inp)
        assert (with_map - run(plain_net, inp)).abs().amax() > 1e-3
        # the map carries the embedding: a different embedding changes the output through it
        other = dict(inp, image_emb=inputs(seed=7)["image_emb"])
        layout_net.conditioner.image_to_emb.weight.zero_()
        layout_net.conditioner.image_to_tokens.weight.zero_()
        assert (run(layout_net, other) - run(layout_net, inp)).abs().amax() > 1e-3
