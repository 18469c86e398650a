"""Two-condition guidance (2211.09800 eq. 3): the image embedding and the caption guided apart."""

from __future__ import annotations

import pytest
import torch

from tests.decoder.test_unet import inputs, make_net, run
from unclip.diffusion import ClassifierFreeGuidance, TwoConditionGuidance
from unclip.diffusion.guidance import guided


def _cond(inp: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in inp.items() if k not in ("x_t", "t")}


def test_text_drop_is_the_null_caption_and_keeps_the_image_embedding():
    net, inp = make_net(), inputs()
    both = run(net, inp)
    dropped = run(net, inp, text_drop=torch.ones(3, dtype=torch.bool))
    no_caption = net(inp["x_t"], inp["t"], image_emb=inp["image_emb"])  # caption absent
    torch.testing.assert_close(dropped, no_caption)
    assert (dropped - both).abs().max() > 1e-3  # the caption mattered
    # dropping the caption of row 1 only leaves rows 0 and 2 as they were
    one = run(net, inp, text_drop=torch.tensor([False, True, False]))
    torch.testing.assert_close(one[[0, 2]], both[[0, 2]])
    torch.testing.assert_close(one[1], dropped[1])
    with pytest.raises(ValueError, match=r"text_drop must have shape \(3,\)"):
        run(net, inp, text_drop=torch.ones(2, dtype=torch.bool))


def test_the_combination_of_the_three_terms_in_one_batched_forward():
    net, inp = make_net(), inputs()
    calls = []

    def counted(x, t, **cond):
        calls.append(x.shape[0])
        return net(x, t, **cond)

    out = TwoConditionGuidance(counted, 2.0, 5.0)(inp["x_t"], inp["t"], **_cond(inp))
    assert calls == [9]
    both = run(net, inp)
    image = run(net, inp, text_drop=torch.ones(3, dtype=torch.bool))
    null = run(net, inp, cond_drop=torch.ones(3, dtype=torch.bool))
    # batched 9 rows against 3: float rounding, scaled by 5
    torch.testing.assert_close(out, null + 2.0 * (image - null) + 5.0 * (both - image),
                               atol=2e-4, rtol=1e-3)


def test_equal_scales_are_classifier_free_guidance():
    net, inp = make_net(), inputs()
    two = TwoConditionGuidance(net, 3.0, 3.0)(inp["x_t"], inp["t"], **_cond(inp))
    one = ClassifierFreeGuidance(net, 3.0)(inp["x_t"], inp["t"], **_cond(inp))
    torch.testing.assert_close(two, one, atol=2e-4, rtol=1e-3)
    # a larger caption scale moves the output along what the caption adds
    more = TwoConditionGuidance(net, 3.0, 6.0)(inp["x_t"], inp["t"], **_cond(inp))
    caption = run(net, inp) - run(net, inp, text_drop=torch.ones(3, dtype=torch.bool))
    torch.testing.assert_close(more - one, 3.0 * caption, atol=2e-4, rtol=1e-3)


def test_rows_the_caller_dropped_stay_dropped():
    net, inp = make_net(), inputs()
    given = torch.tensor([True, False, False])
    out = TwoConditionGuidance(net, 2.0, 4.0)(inp["x_t"], inp["t"], cond_drop=given,
                                              **_cond(inp))
    null = run(net, inp, cond_drop=torch.ones(3, dtype=torch.bool))
    torch.testing.assert_close(out[0], null[0], atol=1e-4, rtol=1e-3)  # every term: the null
    assert (out[1:] - null[1:]).abs().max() > 1e-3


def test_guided_picks_the_wrapper():
    def net(x, t):
        return x

    assert guided(net, 1.0) is net
    assert isinstance(guided(net, 2.0), ClassifierFreeGuidance)
    two = guided(net, 1.0, text_scale=4.0)
    assert isinstance(two, TwoConditionGuidance)
    assert (two.image_scale, two.text_scale) == (1.0, 4.0)
