"""FrozenCLIP over a tiny random open_clip model: encodings, freezing, truncation, loading."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import open_clip
import pytest
import torch

from unclip.clip import FrozenCLIP

CAPTIONS = ["a red circle", "a large blue square in the top left", ""]


def test_text_encoding_shapes_and_mask(tiny_clip: FrozenCLIP) -> None:
    enc = tiny_clip.encode_text(CAPTIONS)
    b, length = len(CAPTIONS), tiny_clip.context_length
    assert enc.pooled.shape == (b, tiny_clip.embed_dim) == (3, 32)
    assert enc.tokens.shape == (b, length, tiny_clip.token_dim) == (3, 16, 64)
    assert enc.mask.shape == (b, length) and enc.mask.dtype == torch.bool
    # start + BPE tokens + end-of-text are real, the rest is padding
    expected = [len(tiny_clip.tokenizer.encode(c)) + 2 for c in CAPTIONS]
    assert enc.mask.sum(1).tolist() == expected
    assert enc.mask[2].tolist() == [True, True] + [False] * (length - 2)  # the empty prompt


def test_mask_is_not_fooled_by_token_zero(tiny_clip: FrozenCLIP) -> None:
    """``!`` has id 0, the padding id of open_clip's tokenizer: it must count as a real token."""
    tokens, mask = tiny_clip.tokenize(["a red circle !$"])  # "!$" -> [0, 259]
    assert (tokens[0, : mask[0].sum()] == 0).any()
    assert mask[0].sum() == len(tiny_clip.tokenizer.encode("a red circle !$")) + 2


def test_pooled_equals_open_clip_encode_text(tiny_clip: FrozenCLIP) -> None:
    enc = tiny_clip.encode_text(CAPTIONS)
    tokens, _ = tiny_clip.tokenize(CAPTIONS)
    torch.testing.assert_close(enc.pooled, tiny_clip.model.encode_text(tokens))


def test_tokens_are_last_layer_after_ln_final(tiny_clip: FrozenCLIP) -> None:
    """Cross-check against open_clip's own intermediates API (last block, ln_final applied)."""
    enc = tiny_clip.encode_text(CAPTIONS)
    tokens, _ = tiny_clip.tokenize(CAPTIONS)
    out = tiny_clip.model.forward_intermediates(
        text=tokens, text_indices=1, normalize_intermediates=True, intermediates_only=True
    )
    torch.testing.assert_close(enc.tokens, out["text_intermediates"][-1])
    # pooling takes the end-of-text token: pooled = tokens[eot] @ text_projection
    eot = enc.mask.sum(1) - 1
    pooled = enc.tokens[torch.arange(3), eot] @ tiny_clip.model.text_projection
    torch.testing.assert_close(enc.pooled, pooled)


def test_encode_image_applies_model_preprocessing(tiny_clip: FrozenCLIP) -> None:
    """Images at any size in [-1, 1] -> the model's resolution and mean/std."""
    torch.manual_seed(1)
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    emb = tiny_clip.encode_image(images)
    assert emb.shape == (2, tiny_clip.embed_dim)
    cfg = tiny_clip.preprocess_cfg
    x = torch.nn.functional.interpolate((images + 1) / 2, size=32, mode="bicubic",
                                        antialias=True).clamp(0, 1)
    x = (x - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    torch.testing.assert_close(emb, tiny_clip.model.encode_image(x))


def test_frozen_through_a_training_step(tiny_clip: FrozenCLIP) -> None:
    """A parent module in train mode, optimised over all its parameters, leaves CLIP unchanged."""
    head = torch.nn.Linear(tiny_clip.embed_dim, 1)
    parent = torch.nn.ModuleDict({"clip": tiny_clip, "head": head})
    parent.train()
    assert not tiny_clip.training and not tiny_clip.model.training
    assert not any(p.requires_grad for p in tiny_clip.parameters())
    before = {k: v.clone() for k, v in tiny_clip.state_dict().items()}
    head_before = head.weight.detach().clone()
    optimizer = torch.optim.AdamW(parent.parameters(), lr=0.1, weight_decay=0.5)
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    loss = head(tiny_clip.encode_image(images)).square().mean() + head(
        tiny_clip.encode_text(["a", "b", "c", "d"]).pooled).mean()
    loss.backward()
    optimizer.step()
    assert not torch.equal(head.weight, head_before)  # the step did happen
    for k, v in tiny_clip.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_gradients_flow_to_input_images(tiny_clip: FrozenCLIP) -> None:
    images = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_(True)
    tiny_clip.encode_image(images).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_truncation_warns_and_keeps_end_of_text(tiny_clip: FrozenCLIP) -> None:
    long = "a " + "very " * 40 + "long caption"
    with pytest.warns(UserWarning, match="context length of 16 tokens and are truncated"):
        enc = tiny_clip.encode_text([long, "a red circle"])
    tokens, _ = tiny_clip.tokenize(["a red circle"])
    assert enc.mask[0].all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tokens, _ = tiny_clip.tokenize(["a red circle", ""])  # no warning
        long_tokens = tiny_clip.tokenizer([long], context_length=16)
    assert long_tokens[0, -1] == tiny_clip.tokenizer.eot_token_id


def test_captions_must_be_a_list_of_strings(tiny_clip: FrozenCLIP) -> None:
    with pytest.raises(TypeError, match="list of strings"):
        tiny_clip.encode_text("a red circle")
    with pytest.raises(TypeError, match="must be strings"):
        tiny_clip.encode_text(["a red circle", None])


def test_identity_stable_across_reloads(tiny_weights: Path, tmp_path: Path) -> None:
    a = FrozenCLIP("tiny-clip", pretrained=str(tiny_weights))
    b = FrozenCLIP("tiny-clip", pretrained=str(tiny_weights))
    assert a.identity == b.identity
    assert a.identity["pretrained"] == "file" and len(a.identity["weights_sha256"]) == 64
    assert a.identity["embed_dim"] == 32 and a.identity["token_dim"] == 64
    json.dumps(a.identity)  # a plain, JSON-safe record
    torch.testing.assert_close(a.encode_text(CAPTIONS).pooled, b.encode_text(CAPTIONS).pooled)
    # other weights: another identity
    state = torch.load(tiny_weights, weights_only=True)
    state["logit_scale"] = state["logit_scale"] + 1
    other = tmp_path / "other.pt"
    torch.save(state, other)
    assert FrozenCLIP("tiny-clip", pretrained=str(other)).identity["weights_sha256"] != \
        a.identity["weights_sha256"]


def test_random_inits_have_distinct_identities() -> None:
    torch.manual_seed(0)
    a = FrozenCLIP("tiny-clip")
    torch.manual_seed(1)
    b = FrozenCLIP("tiny-clip")
    torch.manual_seed(0)
    c = FrozenCLIP("tiny-clip")
    assert a.identity["pretrained"] is None
    assert a.identity["weights_sha256"] != b.identity["weights_sha256"]
    assert a.identity == c.identity


def test_loads_from_own_model_config(tiny_weights: Path, tmp_path: Path) -> None:
    from unclip.clip import PROJECT_CONFIG_DIR

    config = tmp_path / "my-tiny.json"
    config.write_text((PROJECT_CONFIG_DIR / "tiny-clip.json").read_text())
    clip = FrozenCLIP(model_config=str(config), pretrained=str(tiny_weights))
    reference = FrozenCLIP("tiny-clip", pretrained=str(tiny_weights))
    assert clip.model_name == "my-tiny"
    # same architecture and weights under another name: the same CLIP
    assert clip.identity["config_sha256"] == reference.identity["config_sha256"]
    assert clip.identity["weights_sha256"] == reference.identity["weights_sha256"]
    with pytest.raises(ValueError, match="disagrees with model_config"):
        FrozenCLIP(model_name="tiny-clip", model_config=str(config))


def test_open_clip_loads_the_same_file(tiny_weights: Path, tiny_clip: FrozenCLIP) -> None:
    model, _, _ = open_clip.create_model_and_transforms("tiny-clip", pretrained=str(tiny_weights))
    clip = FrozenCLIP("tiny-clip", pretrained=str(tiny_weights))
    tokens, _ = clip.tokenize(CAPTIONS)
    torch.testing.assert_close(model.eval().encode_text(tokens), clip.encode_text(CAPTIONS).pooled)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model_name": "no-such-clip"}, ValueError, "unknown open_clip model 'no-such-clip'"),
        ({"model_name": "tiny-clip", "pretrained": "/nonexistent/w.pt"}, FileNotFoundError,
         "neither a file nor an open_clip tag"),
        ({"model_config": "/nonexistent/c.json"}, FileNotFoundError, "model config not found"),
        ({}, ValueError, "needs model_name or model_config"),
        ({"model_name": "ViT-L-14", "pretrained": "openai"}, ValueError,
         "use model_name='ViT-L-14-quickgelu'"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        FrozenCLIP(**kwargs)


def test_bad_model_config_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"embed_dim": 8}')
    with pytest.raises(ValueError, match=r"lacks keys \['vision_cfg', 'text_cfg'\]"):
        FrozenCLIP(model_config=str(bad))
