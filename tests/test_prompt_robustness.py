"""Odd prompts (empty, 10,000 characters, Unicode, emoji, control characters) go through the
real FrozenCLIP tokenizer, the pipeline's sampling and sample.py without crashing, and give
sensible results: finite images in range, truncation with a warning, blank = unconditional."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from tests.conftest import compose_config
from tests.pipeline.conftest import _clip_file, _save, make_decoder, make_prior
from unclip.clip import FrozenCLIP
from unclip.pipeline import DecoderSettings, PriorSettings, UnCLIPPipeline
from unclip.pipeline.run import run_sample

LONG = ("a large red circle in the top left, " * 300)[:10_000]
PROMPTS = {
    "empty": "",
    "whitespace": " \t\n\r ",
    "long_words": LONG,
    "long_word": "x" * 10_000,
    "long_emoji": "🚀" * 10_000,
    "unicode": "un cercle rouge à gauche — 赤い円, دائرة حمراء, e\u0301 Ω≈ç√",
    "emoji": "🔴 ⬛ 👩‍👩‍👧‍👦 🇫🇷",
    "control": "a red\x00 circle\x07\x1b[31m\x7f\u202e\u200b\ufeff",
    "only_control": "\x00\x01\x02\x7f",
    "lone_surrogate": "a red \ud800 circle",
}
FAST = dict(prior_settings=PriorSettings(sampler="ddim", steps=3, best_of=1),
            decoder_settings=DecoderSettings(sampler="ddim", steps=3, guidance_scale=2.0))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("prompt_stack")
    clip = _clip_file(root / "clip.pt", seed=0)
    return {"clip": root / "clip.pt",
            "prior": _save(make_prior(clip.identity), root / "prior.ckpt"),
            "decoder": _save(make_decoder(clip.identity), root / "decoder.ckpt")}


@pytest.fixture(scope="module")
def pipe(files: dict[str, Path]) -> UnCLIPPipeline:
    return UnCLIPPipeline.from_checkpoints(
        files["prior"], files["decoder"],
        clip={"model_name": "tiny-clip", "pretrained": str(files["clip"])})


def _encode(clip: FrozenCLIP, prompts: list[str]):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # truncation, checked separately
        return clip.encode_text(prompts)


def test_every_prompt_encodes_to_finite_embeddings(pipe: UnCLIPPipeline) -> None:
    enc = _encode(pipe.clip, list(PROMPTS.values()))
    length = pipe.clip.context_length
    assert enc.pooled.shape == (len(PROMPTS), pipe.clip.embed_dim)
    assert enc.tokens.shape[:2] == enc.mask.shape == (len(PROMPTS), length)
    assert bool(torch.isfinite(enc.pooled).all()) and bool(torch.isfinite(enc.tokens).all())
    assert bool(enc.mask[:, :2].all())  # start and end-of-text at least
    lengths = dict(zip(PROMPTS, enc.mask.sum(1).tolist(), strict=True))
    assert lengths["empty"] == lengths["whitespace"] == lengths["only_control"] == 2
    for name in ("long_words", "long_word", "long_emoji"):
        assert lengths[name] == length  # cut to the context, end-of-text kept last


def test_over_long_prompts_are_truncated_with_a_warning(pipe: UnCLIPPipeline) -> None:
    with pytest.warns(UserWarning, match="exceed the CLIP context length.*truncated"):
        long = pipe.clip.encode_text([LONG])
    short = _encode(pipe.clip, [LONG[:300]])  # also over-long: the same first tokens
    assert torch.equal(long.pooled, short.pooled)


def test_control_characters_are_dropped_by_the_tokenizer(pipe: UnCLIPPipeline) -> None:
    """C0 controls, DEL and terminal escapes go (ftfy); format characters such as U+200B stay."""
    enc = _encode(pipe.clip, ["a red circle", "a red\x00 circle\x07\x1b[31m\x7f", "",
                              "\x00\x01\x7f"])
    torch.testing.assert_close(enc.pooled[0], enc.pooled[1])
    torch.testing.assert_close(enc.pooled[2], enc.pooled[3])
    assert not torch.allclose(enc.pooled[0], enc.pooled[2])  # the comparison can fail


def test_every_prompt_samples_to_finite_images_in_range(pipe: UnCLIPPipeline) -> None:
    prompts = list(PROMPTS.values())
    with pytest.warns(UserWarning, match="truncated"):
        out = pipe.text_to_image(prompts, seed=0, **FAST)
    assert out.images.shape == (len(prompts), 3, 16, 16)
    assert bool(torch.isfinite(out.images).all()) and bool(torch.isfinite(out.image_embeds).all())
    assert out.images.min() >= -1 and out.images.max() <= 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        again = pipe.text_to_image(prompts, seed=0, **FAST)
    assert torch.equal(out.images, again.images)


def test_blank_prompts_are_unconditional(pipe: UnCLIPPipeline) -> None:
    """Empty and whitespace-only rows use the prior's null condition: guidance leaves them."""
    prompts = ["a red circle", PROMPTS["empty"], PROMPTS["whitespace"]]
    plain = pipe.image_embeddings(prompts, PriorSettings(steps=3, best_of=1), seed=1)[0]
    guided = pipe.image_embeddings(prompts, PriorSettings(steps=3, best_of=1,
                                                          guidance_scale=4.0), seed=1)[0]
    assert torch.equal(plain[1:], guided[1:])
    assert not torch.allclose(plain[0], guided[0])


def test_non_string_prompts_are_refused_clearly(pipe: UnCLIPPipeline) -> None:
    with pytest.raises(TypeError, match="list of strings"):
        pipe.text_to_image("a red circle", **FAST)
    with pytest.raises(TypeError, match="strings"):
        pipe.text_to_image(["a red circle", None], **FAST)


def _sample_py(files: dict[str, Path], out: Path, *overrides: str, **values: object) -> dict:
    """sample.py's runner in-process; ``values`` are set after composing (any string)."""
    cfg = compose_config("sample", [
        f"checkpoints.prior='{files['prior']}'", f"checkpoints.decoder='{files['decoder']}'",
        f"checkpoints.clip={{model_name:tiny-clip,pretrained:'{files['clip']}'}}",
        "sampling.prior.sampler=ddim", "sampling.prior.steps=3", "sampling.decoder.steps=3",
        "device=cpu", "progress=false", "n=1", *overrides], output_dir=out)
    for key, value in values.items():
        cfg[key] = value
    paths = run_sample(cfg)
    return json.loads(paths["record"].read_text(encoding="utf-8"))


def test_sample_py_records_odd_prompts_exactly(files: dict[str, Path], tmp_path: Path) -> None:
    lines = [PROMPTS[k] for k in ("long_words", "long_emoji", "unicode", "emoji", "control")]
    prompts_file = tmp_path / "prompts.txt"
    prompts_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        record = _sample_py(files, tmp_path / "run", f"prompts_file='{prompts_file}'")
    assert [o["prompt"] for o in record["outputs"]] == [line.strip() for line in lines]
    assert all((tmp_path / "run" / o["file"]).is_file() for o in record["outputs"])


def test_sample_py_survives_a_lone_surrogate(files: dict[str, Path], tmp_path: Path) -> None:
    prompt = PROMPTS["lone_surrogate"]
    record = _sample_py(files, tmp_path / "run", prompt=prompt)
    assert record["outputs"][0]["prompt"] == prompt
