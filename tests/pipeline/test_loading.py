"""Loading the stages from checkpoint paths: refusals name the files, the record is complete."""

from __future__ import annotations

import re

import pytest

from tests.pipeline.conftest import _save, make_decoder
from unclip.clip import FrozenCLIP
from unclip.clip.identity import file_sha256
from unclip.pipeline import (
    CheckpointLoadError,
    StageMismatchError,
    UnCLIPPipeline,
)


def load(stack, **kw):
    args = dict(prior=stack.prior, decoder=stack.decoder, upsamplers=[stack.upsampler],
                clip=stack.clip_spec())
    args.update(kw)
    return UnCLIPPipeline.from_checkpoints(**args)


def test_stages_trained_against_different_clips_are_refused_naming_both(stack):
    with pytest.raises(StageMismatchError) as err:
        load(stack, decoder=stack.decoder_other_clip)
    msg = str(err.value)
    assert str(stack.decoder_other_clip) in msg and str(stack.prior) in msg
    assert "weights_sha256" in msg and "tiny-clip" in msg


def test_upsampler_input_resolution_must_match_the_decoder(stack):
    with pytest.raises(StageMismatchError) as err:
        load(stack, upsamplers=[stack.upsampler_8px])
    msg = str(err.value)
    assert str(stack.upsampler_8px) in msg and str(stack.decoder) in msg
    assert "takes 8 px images" in msg and "produces 16 px images" in msg


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"prior": "missing/prior.ckpt"}, "checkpoint not found — prior: missing/prior.ckpt"),
        ({"upsamplers": ["nope.ckpt"]}, "upsampler0: nope.ckpt"),
        ({"decoder": "PRIOR"}, "cannot load the decoder checkpoint .*prior.ckpt.*not a decoder"),
        ({"decoder": "UPSAMPLER"}, "is an upsampler checkpoint .*given as the decoder"),
        ({"upsamplers": ["DECODER"]}, "is a base decoder checkpoint, given as upsampler0"),
    ],
)
def test_wrong_or_missing_checkpoints_are_named(stack, kw, match):
    names = {"PRIOR": stack.prior, "DECODER": stack.decoder, "UPSAMPLER": stack.upsampler}
    kw = {k: [names.get(x, x) for x in v] if isinstance(v, list) else names.get(v, v)
          for k, v in kw.items()}
    with pytest.raises(CheckpointLoadError, match=match):
        load(stack, **kw)


def test_an_unreadable_checkpoint_is_named(stack, tmp_path):
    bad = tmp_path / "garbage.ckpt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointLoadError, match=re.escape(str(bad))):
        load(stack, prior=bad)


def test_clip_from_a_local_file_must_be_given(stack):
    with pytest.raises(CheckpointLoadError, match="local weights file.*clip.pretrained"):
        load(stack, clip=None)


def test_a_given_clip_must_be_the_one_the_stages_were_trained_against(stack):
    with pytest.raises(StageMismatchError, match="not the CLIP the checkpoints were trained"):
        load(stack, clip=stack.clip_spec(stack.other_clip))


def test_the_loaded_pipeline_records_its_checkpoints(pipe, stack):
    info = pipe.describe()
    assert [c["stage"] for c in info["checkpoints"]] == ["prior", "decoder", "upsampler0"]
    for c, path in zip(info["checkpoints"], [stack.prior, stack.decoder, stack.upsampler],
                       strict=True):
        assert c["path"] == str(path.resolve()) and c["sha256"] == file_sha256(path)
    assert info["clip_identity"]["weights_sha256"] == file_sha256(stack.clip)
    assert info["resolutions"] == [16, 32] and pipe.resolution == 32
    assert not pipe.prior.training and not pipe.decoder.training


def test_direct_construction_checks_the_stages_too(pipe):
    with pytest.raises(StageMismatchError, match="must be a base decoder"):
        UnCLIPPipeline(pipe.clip, pipe.prior, pipe.upsamplers[0])
    match = "upsampler 1 takes 16 px images but upsampler 0 produces 32"
    with pytest.raises(StageMismatchError, match=match):
        UnCLIPPipeline(pipe.clip, pipe.prior, pipe.decoder, [pipe.upsamplers[0]] * 2)


def test_an_upsampler_without_clip_input_serves_a_decoder_of_another_clip(stack, tmp_path):
    """The upsampler takes only its low-res image: the CLIP it recorded does not bind it."""
    other = FrozenCLIP("tiny-clip", pretrained=str(stack.other_clip)).identity
    upsampler = _save(make_decoder(other, 32, low_res=16, seed=3), tmp_path / "up_other.ckpt")
    pipe = load(stack, upsamplers=[upsampler])
    assert not pipe.upsamplers[0].uses_clip and pipe.decoder.uses_clip
    assert pipe.upsamplers[0].hparams["clip_identity"] != pipe.decoder.hparams["clip_identity"]
