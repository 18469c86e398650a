"""PriorModule: hyperparameters, loss, sampling, best-of-n, optimiser and LR schedule."""

from __future__ import annotations

import json

import pytest
import torch

from tests.prior.helpers import CAPTIONS, IDENTITY, D, W, first_batch, make_module
from unclip.lit.prior_metrics import cosine


def test_hyperparameters_are_plain_and_resolved():
    module = make_module()
    hp = dict(module.hparams)
    json.dumps(hp)  # plain containers only: loads under torch.load(weights_only=True)
    assert hp["network"]["dim"] == D and hp["network"]["token_dim"] == W
    assert hp["network"]["text_context"] == IDENTITY["context_length"]
    assert hp["clip_identity"] == IDENTITY
    assert hp["norm"]["image"]["kind"] == "l2" and hp["norm"]["text"]["dim"] == D
    assert hp["diffusion"]["schedule"]["name"] == "cosine"
    assert hp["diffusion"]["prediction"] == "x0"
    assert hp["sampling"]["best_of"] == 2


def test_identity_can_come_from_clip_identity_json(tmp_path):
    path = tmp_path / "clip_identity.json"
    path.write_text(json.dumps(IDENTITY))
    assert make_module(clip_identity=str(path)).hparams["clip_identity"] == IDENTITY


def test_identity_and_network_width_must_agree():
    with pytest.raises(ValueError, match="network.dim=20 but the CLIP model has embed_dim=16"):
        make_module(network=dict(dim=20, token_dim=W, width=32, depth=1, heads=4))
    with pytest.raises(ValueError, match="network.dim is null"):
        make_module(clip_identity=None)
    with pytest.raises(ValueError, match="shorter than the CLIP context_length=6"):
        make_module(network=dict(dim=None, token_dim=None, text_context=4))
    with pytest.raises(ValueError, match="unknown prior network keys"):
        make_module(network=dict(dim=None, token_dim=None, widht=32))


def test_meanstd_norm_reads_stats_and_stores_them(tmp_path):
    stats = {
        "image": {"mean": [0.5] * D, "std": [2.0] * D},
        "text": {"mean": [0.0] * D, "std": [1.0] * D},
    }
    path = tmp_path / "stats.json"
    path.write_text(json.dumps(stats))
    module = make_module(norm={"kind": "meanstd", "stats": str(path)})
    assert module.hparams["norm"]["image"]["mean"] == [0.5] * D
    x = torch.randn(3, D)
    torch.testing.assert_close(module.image_norm.normalize(x), (x - 0.5) / 2.0)
    with pytest.raises(ValueError, match="needs norm.stats"):
        make_module(norm={"kind": "meanstd", "stats": None})


def test_training_step_gives_finite_loss_and_gradients():
    module = make_module()
    loss = module.training_step(first_batch(), 0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in module.net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert module.net.head.weight.grad.abs().sum() > 0


def test_loss_decreases_when_overfitting_one_batch():
    module = make_module()
    batch = first_batch(8)
    x0 = module.image_norm.normalize(batch["image_emb"])
    cond = module.condition(batch["text_emb"], batch["text_tokens"], batch["text_mask"])
    g = torch.Generator().manual_seed(0)
    t, noise = torch.rand(8, generator=g), torch.randn(8, D, generator=g)

    def loss() -> torch.Tensor:
        return module.diffusion.training_loss(module.net, x0, cond, t=t, noise=noise)[0].mean()

    module.net.cond.drop_prob = 0.0  # a fixed objective: no random condition dropout
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    first = loss().item()
    for _ in range(15):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < 0.5 * first


def _cond(batch):
    return batch["text_emb"], batch["text_tokens"], batch["text_mask"]


def test_sample_shape_unit_norm_and_determinism():
    module = make_module().eval()
    batch = first_batch(5)
    a = module.sample(*_cond(batch), generator=torch.Generator().manual_seed(7))
    b = module.sample(*_cond(batch), generator=torch.Generator().manual_seed(7))
    c = module.sample(*_cond(batch), generator=torch.Generator().manual_seed(8))
    assert a.shape == (5, D)
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(5))  # l2 inverse: unit CLIP embeddings
    torch.testing.assert_close(a, b)
    assert (a - c).abs().amax() > 1e-3


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmpp_2m"])
def test_every_sampler_runs_through_the_module(sampler):
    module = make_module().eval()
    out = module.sample(*_cond(first_batch(3)), sampler=sampler, steps=3, best_of=1)
    assert out.shape == (3, D) and torch.isfinite(out).all()


def test_best_of_n_keeps_the_candidate_closest_to_the_text():
    """Best-of-2 (2204.06125 sec. 2.1) = argmax text cosine over the same 2 candidates."""
    module = make_module().eval()
    batch = first_batch(4)
    n = 3
    best = module.sample(*_cond(batch), best_of=n, generator=torch.Generator().manual_seed(3))
    repeated = [x.repeat_interleave(n, dim=0) for x in _cond(batch)]
    cands = module.sample(*repeated, best_of=1, generator=torch.Generator().manual_seed(3))
    cands = cands.view(4, n, D)
    scores = cosine(cands, batch["text_emb"][:, None].expand_as(cands))
    expected = cands[torch.arange(4), scores.argmax(1)]
    torch.testing.assert_close(best, expected)
    assert (scores.max(1).values >= scores[:, 0]).all()
    assert not torch.allclose(cands[:, 0], cands[:, 1])  # the candidates really differ


def test_guidance_changes_the_sample():
    module = make_module().eval()
    cond = _cond(first_batch(3))
    a = module.sample(*cond, best_of=1, generator=torch.Generator().manual_seed(1))
    b = module.sample(
        *cond, best_of=1, guidance_scale=3.0, generator=torch.Generator().manual_seed(1)
    )
    assert (a - b).abs().amax() > 1e-4


def test_bad_sampling_options_raise():
    module = make_module().eval()
    with pytest.raises(ValueError, match="unknown sampling options"):
        module.sample(*_cond(first_batch(2)), best_off=2)
    with pytest.raises(ValueError, match="best_of must be >= 1"):
        module.sample(*_cond(first_batch(2)), best_of=0)
    with pytest.raises(ValueError, match="unknown sampling options"):
        make_module(sampling={"n_steps": 3})


def test_image_caption_batch_without_clip_is_refused():
    module = make_module()
    with pytest.raises(ValueError, match="need the module's `clip`"):
        module.embed_batch({"image": torch.zeros(1, 3, 8, 8), "caption": ["x"]})
    with pytest.raises(KeyError, match="image_emb or image\\+caption"):
        module.embed_batch({"caption": CAPTIONS})


def test_weight_decay_only_on_matrices():
    module = make_module()
    opt = module.configure_optimizers()["optimizer"]
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"])
    ids = {id(p) for p in no_decay["params"]}
    assert id(module.net.pos_text) in ids and id(module.net.cond.null_emb) in ids
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5)  # warmup step 0 of 2


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_eps_and_v_predictions_train_and_sample(prediction):
    diffusion = {"schedule": {"name": "cosine", "timesteps": 1000}, "prediction": prediction}
    module = make_module(diffusion=diffusion)
    assert module.hparams["diffusion"]["prediction"] == prediction
    assert torch.isfinite(module.training_step(first_batch(4), 0))
    out = module.eval().sample(*_cond(first_batch(2)), steps=3, best_of=1)
    assert out.shape == (2, D) and torch.isfinite(out).all()
