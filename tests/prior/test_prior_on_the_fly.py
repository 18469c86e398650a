"""Image-caption batches: the prior runs a FrozenCLIP on the fly instead of embedding shards."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.prior.helpers import make_module
from unclip.clip import FrozenCLIP


@pytest.fixture(scope="module")
def clip() -> FrozenCLIP:
    torch.manual_seed(0)
    return FrozenCLIP("tiny-clip")  # random init: nothing to download


def test_training_step_on_images_and_captions(clip):
    module = make_module(clip=clip, clip_identity=None)
    assert module.hparams["clip_identity"] == clip.identity
    assert module.hparams["network"]["dim"] == clip.embed_dim
    batch = {"image": torch.rand(4, 3, 32, 32) * 2 - 1,
             "caption": ["a red circle", "a blue square", "a cyan triangle", "a red circle"]}
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is None for p in clip.parameters())  # CLIP stays frozen
    # CLIP is not part of the prior's weights, nor copied by EMA's deepcopy
    assert not any(k.startswith(("clip", "_clip")) for k in module.state_dict())
    assert copy.deepcopy(module)._clip.module is clip


def test_given_identity_must_match_the_clip(clip):
    other = dict(clip.identity, weights_sha256="0" * 64)
    with pytest.raises(ValueError, match="weights_sha256"):
        make_module(clip=clip, clip_identity=other)


def test_image_shards_without_identity_file_use_the_clips(clip, tmp_path):
    module = make_module(clip=clip, clip_identity=str(tmp_path / "shapes-*.tar"))
    assert module.hparams["clip_identity"] == clip.identity
    with pytest.raises(FileNotFoundError, match="clip_identity.json"):
        make_module(clip_identity=str(tmp_path))
