"""clamp_l2norm: the prior's x0 predictions projected onto the l2 embedding sphere."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tests.prior.helpers import D, first_batch, make_module
from unclip.diffusion import sample
from unclip.embedding_norm import EmbeddingNorm
from unclip.pipeline import PriorSettings


def _cond(batch):
    return batch["text_emb"], batch["text_tokens"], batch["text_mask"]


def test_project_puts_every_row_on_the_sqrt_d_sphere_in_its_direction() -> None:
    norm = EmbeddingNorm("l2", 16)
    z = torch.randn(5, 16) * torch.tensor([[0.1], [1.0], [3.0], [10.0], [0.5]])
    projected = norm.project(z)
    torch.testing.assert_close(projected.norm(dim=-1), torch.full((5,), math.sqrt(16)))
    torch.testing.assert_close(torch.nn.functional.normalize(projected, dim=-1),
                               torch.nn.functional.normalize(z, dim=-1))
    with pytest.raises(ValueError, match="needs the 'l2' normalisation; this one is 'meanstd'"):
        EmbeddingNorm("meanstd", 4, [0.0] * 4, [1.0] * 4).project(torch.randn(2, 4))


def test_the_module_samples_with_every_x0_prediction_projected() -> None:
    """``sample(clamp_l2norm=True)`` is the sampler run with ``image_norm.project`` as its x0
    transform, and differs from the unclamped sample under guidance."""
    module = make_module().eval()
    batch = first_batch(3)
    opts = dict(sampler="ddpm", steps=4, best_of=1, guidance_scale=3.0)
    clamped = module.sample(*_cond(batch), clamp_l2norm=True,
                            generator=torch.Generator().manual_seed(2), **opts)
    plain = module.sample(*_cond(batch), generator=torch.Generator().manual_seed(2), **opts)
    gen = torch.Generator().manual_seed(2)
    x_T = torch.randn(3, D, generator=gen)
    seen: list[torch.Tensor] = []

    def projecting(x0: torch.Tensor) -> torch.Tensor:
        out = module.image_norm.project(x0)
        seen.append(out)
        return out

    cond = module.condition(*_cond(batch))
    with torch.no_grad():
        manual = sample(module.diffusion, module.net, x_T, cond=cond, generator=gen,
                        x0_transform=projecting, sampler="ddpm", steps=4, spacing="uniform",
                        eta=0.0, guidance_scale=3.0)
    torch.testing.assert_close(clamped, module.image_norm.denormalize(manual))
    assert seen and all(torch.allclose(x.norm(dim=-1), torch.full((3,), math.sqrt(D)))
                        for x in seen)
    assert (clamped - plain).abs().amax() > 1e-4


def test_a_prior_without_the_l2_sphere_refuses_it_by_name(tmp_path) -> None:
    stats = {"image": {"mean": [0.0] * D, "std": [1.0] * D},
             "text": {"mean": [0.0] * D, "std": [1.0] * D}}
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    module = make_module(norm={"kind": "meanstd", "stats": str(tmp_path / "stats.json")}).eval()
    with pytest.raises(ValueError, match="clamp_l2norm=true needs a prior trained with norm.kind"):
        module.sample(*_cond(first_batch(2)), clamp_l2norm=True, steps=2)


def test_settings_carry_it_and_refuse_a_non_boolean() -> None:
    assert PriorSettings().clamp_l2norm is False
    assert PriorSettings(clamp_l2norm=True).to_dict()["clamp_l2norm"] is True
    assert "clamp_l2norm" not in PriorSettings().sample_kwargs()  # the module's option, not
    with pytest.raises(ValueError, match="clamp_l2norm must be true or false"):  # the sampler's
        PriorSettings(clamp_l2norm="yes")
