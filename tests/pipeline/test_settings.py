"""Stage settings: validated on construction, named in errors, recorded as plain dicts."""

from __future__ import annotations

import pytest

from unclip.pipeline import (
    DecoderSettings,
    InversionSettings,
    PriorSettings,
    UpsamplerSettings,
)


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (PriorSettings, {"sampler": "euler"}, "PriorSettings.sampler='euler'.*ddpm"),
        (DecoderSettings, {"spacing": "karras"}, "spacing='karras'"),
        (DecoderSettings, {"steps": 0}, "steps must be a positive integer"),
        (DecoderSettings, {"steps": 2.5}, "steps must be a positive integer"),
        (DecoderSettings, {"sampler": "heun", "eta": 0.5}, "eta=0.5 applies only to"),
        (DecoderSettings, {"eta": -1.0}, "eta must be"),
        (DecoderSettings, {"guidance_scale": float("nan")}, "guidance_scale"),
        (DecoderSettings, {"threshold": "soft"}, "threshold='soft'"),
        (PriorSettings, {"best_of": 0}, "best_of must be a positive integer"),
        (DecoderSettings, {"best_of": 0}, "DecoderSettings.best_of must be a positive integer"),
        (DecoderSettings, {"best_of": 2.0}, "DecoderSettings.best_of must be"),
        (DecoderSettings, {"text_guidance_scale": -1.0},
         "DecoderSettings.text_guidance_scale must be null or a finite number"),
        (DecoderSettings, {"text_guidance_scale": float("nan")}, "text_guidance_scale must be"),
        (UpsamplerSettings, {"aug_level": 1.5}, r"aug_level must be in \[0, 1\]"),
        (UpsamplerSettings, {"low_pass_sigma": -2.0}, "low_pass_sigma must be a finite number"),
        (UpsamplerSettings, {"low_pass_sigma": float("inf")}, "low_pass_sigma must be"),
        (InversionSettings, {"steps": -3}, "steps must be a positive integer"),
    ],
)
def test_bad_values_are_refused_by_name(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_from_dict_refuses_unknown_keys():
    assert DecoderSettings.from_dict({"steps": 7}).steps == 7
    assert DecoderSettings.from_dict({"best_of": 4}).best_of == 4
    with pytest.raises(ValueError, match=r"unknown DecoderSettings keys \['aug_level'\]"):
        DecoderSettings.from_dict({"aug_level": 0.2})


def test_sample_kwargs_and_records():
    s = UpsamplerSettings(sampler="dpmpp_2m", steps=9, spacing="logsnr", aug_level=0.2)
    assert s.sample_kwargs() == {"sampler": "dpmpp_2m", "steps": 9, "spacing": "logsnr",
                                 "eta": 0.0, "guidance_scale": 1.0, "threshold": "static"}
    assert s.to_dict()["aug_level"] == 0.2
    p = PriorSettings(best_of=3)
    assert "best_of" not in p.sample_kwargs() and p.to_dict()["best_of"] == 3
    d = DecoderSettings(best_of=4)
    assert "best_of" not in d.sample_kwargs() and d.to_dict()["best_of"] == 4
    assert d.sample_kwargs()["text_guidance_scale"] is None
    assert DecoderSettings(text_guidance_scale=6).sample_kwargs()["text_guidance_scale"] == 6


def test_inversion_decodes_with_deterministic_ddim_on_its_grid():
    s = InversionSettings(steps=12, spacing="trailing", guidance_scale=2.0).decoder_settings()
    assert (s.sampler, s.eta, s.threshold, s.steps, s.spacing, s.guidance_scale) == (
        "ddim", 0.0, None, 12, "trailing", 2.0)
