"""Loss weights of one-colour pairs: the weights, the weighted mean, the decoder's objective."""

from __future__ import annotations

import pytest
import torch

from tests.decoder.shapes_data import ShapesBatches, render_batch
from tests.decoder.test_decoder_module import make_module
from unclip.clip import FrozenCLIP
from unclip.data.rebalance import one_color_pair
from unclip.lit.scene_loss_weights import same_color_pair_weights, weighted_mean

RED_CIRCLE = {"shape": "circle", "color": "red"}
RED_SQUARE = {"shape": "square", "color": "red"}
BLUE_SQUARE = {"shape": "square", "color": "blue"}


def test_only_pairs_of_one_colour_are_weighted():
    metas = [{"objects": [RED_CIRCLE]}, {"objects": [RED_CIRCLE, BLUE_SQUARE]},
             {"objects": [RED_CIRCLE, RED_SQUARE]}]
    weights = same_color_pair_weights(metas, ["a", "b", "c"], 4.0)
    assert weights.tolist() == [1.0, 1.0, 4.0]
    assert weights.dtype == torch.float32


def test_the_real_generators_ground_truth_is_read():
    batch = render_batch("train", range(200))
    weights = same_color_pair_weights(batch["meta"], batch["key"], 3.0)
    expected = [3.0 if len(m["objects"]) == 2 and m["objects"][0]["color"] ==
                m["objects"][1]["color"] else 1.0 for m in batch["meta"]]
    assert weights.tolist() == expected
    assert 3.0 in expected and 1.0 in expected  # 200 scenes hold both kinds


def test_missing_ground_truth_is_named():
    with pytest.raises(ValueError, match=r"same_color_pair_weight needs .*'objects'; "
                                         r"sample k7 has \['caption'\]"):
        same_color_pair_weights([{"caption": "x"}], ["k7"], 2.0)
    with pytest.raises(ValueError, match=r"same_color_pair_weight needs each object's 'color'"
                                         r".*sample k8"):
        same_color_pair_weights([{"objects": [RED_CIRCLE, {"shape": "square"}]}], ["k8"], 2.0)
    assert not one_color_pair([RED_CIRCLE], "sample s", "key")  # a single needs no colour check


def test_weighted_mean_is_the_mean_of_a_stream_drawn_by_weight():
    loss = torch.tensor([0.5, 2.0, 1.0])
    # weight 3 on the second sample: the mean of a batch holding it three times
    expected = torch.tensor([0.5, 2.0, 2.0, 2.0, 1.0]).mean()
    torch.testing.assert_close(weighted_mean(loss, torch.tensor([1.0, 3.0, 1.0])), expected)
    torch.testing.assert_close(weighted_mean(loss, torch.full((3,), 7.0)), loss.mean())
    with pytest.raises(ValueError, match="differ"):
        weighted_mean(loss, torch.ones(2))


@pytest.fixture(scope="module")
def clip() -> FrozenCLIP:
    torch.manual_seed(0)
    return FrozenCLIP("tiny-clip")


def test_decoder_objective_weights_pairs_of_one_colour(clip):
    module = make_module(clip.identity, same_color_pair_weight=5.0)
    assert module.hparams["same_color_pair_weight"] == 5.0
    batch = {"meta": [{"objects": [RED_CIRCLE, RED_SQUARE]}, {"objects": [BLUE_SQUARE]}],
             "key": ["p", "s"]}
    loss = torch.tensor([1.0, 3.0])
    torch.testing.assert_close(module.training_objective(batch, loss), torch.tensor(8.0 / 6.0))
    with pytest.raises(KeyError, match=r"same_color_pair_weight = 5.0 needs each batch's 'meta'"):
        module.training_objective({"image": None}, loss)
    plain = make_module(clip.identity)  # weight 1: the plain mean, no ground truth needed
    torch.testing.assert_close(plain.training_objective({}, loss), loss.mean())


@pytest.mark.parametrize("weight", [0.0, -1.0, float("inf")])
def test_bad_weight_is_named(clip, weight):
    with pytest.raises(ValueError, match="decoder.same_color_pair_weight"):
        make_module(clip.identity, same_color_pair_weight=weight)


def test_decoder_trains_with_weighted_pairs(clip, tmp_path):
    import pytorch_lightning as pl

    module = make_module(clip.identity, same_color_pair_weight=4.0, num_val_samples=0)
    trainer = pl.Trainer(max_steps=3, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(module, ShapesBatches(n_train=64, batch_size=16, clip=clip))
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss_weighted"])
    assert torch.isfinite(metrics["train/loss"])
