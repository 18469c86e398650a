"""bf16 autocast (the default fast path) against fp32: training loss, network output, sampling.

The shipped stage configs (``decoder/base32``, ``prior/small``) are built with random weights;
the zero-initialised layers (output convs, residual branches) get small random values so the
networks compute something. Tolerances, from bf16's unit roundoff u = 2^-9 (8 significant bits):

- network output: relative L2 error <= 5%. One rounding per layer costs ~u in each activation;
  over the ~40 layers of the U-Net, random-walk accumulation gives ~sqrt(40) u ~ 1.2% (1.6%
  measured on this machine); 5% leaves room for other kernels and devices.
- loss: relative error <= 1%: the loss is a mean over every element, so the prediction errors
  average out (2e-4 measured).
- final sampling steps: the x0 prediction of the last steps moves by less than half an 8-bit
  level (1/255 in [-1, 1] units) anywhere (0.4 of a level measured, at t = 0.04), and 0.05 of a
  level on average: bf16 leaves no visible noise where the image is finished (eps prediction:
  the network error enters x0 scaled by sigma_t / alpha_t, small at the end).
- whole sample (20 DPM-Solver++ steps, guidance 3): mean absolute difference below one 8-bit
  level (0.5 measured). Individual pixels may differ more, since bf16 errors at the first steps
  (where x0 = (x - sigma eps) / alpha is amplified by 1 / alpha) move the trajectory, as any
  change of the noise would; the sampler state itself stays float32.
"""

from __future__ import annotations

import pytest
import torch

LEVEL = 2 / 255  # one 8-bit level in [-1, 1] units


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a busy shared machine OpenMP's spinning threads can make a
    2-thread run 10x slower; the figures compared here do not depend on it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def perturb_zero_init(net: torch.nn.Module, std: float = 0.02, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim >= 1 and bool((p == 0).all()):
                p.copy_(torch.randn(p.shape, generator=g) * std)


def bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


@pytest.fixture(scope="module")
def decoder():
    import _ours

    torch.manual_seed(0)
    module = _ours.build_decoder("base32")
    perturb_zero_init(module.net)
    return module.eval()


@pytest.fixture(scope="module")
def prior():
    import _ours

    module = _ours.build_prior("small")
    perturb_zero_init(module.net)
    return module.eval()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def test_decoder_output_and_loss_bf16_match_fp32(decoder):
    import _ours

    batch = _ours.decoder_batch(4, 32)
    x0, cond = decoder.targets(batch["image"]), decoder.train_condition(batch)
    g = torch.Generator().manual_seed(0)
    t = decoder.diffusion.sample_t(4, "cpu", g)
    noise = torch.randn(x0.shape, generator=g)
    x_t = decoder.diffusion.q_sample(x0, t, noise)
    with torch.no_grad():
        out32 = decoder.net(x_t, t, **cond)
        with bf16():
            out16 = decoder.net(x_t, t, **cond)
        loss32, _ = decoder.diffusion.training_loss(decoder.net, x0, cond, t=t, noise=noise)
        with bf16():
            loss16, _ = decoder.diffusion.training_loss(decoder.net, x0, cond, t=t, noise=noise)
    assert out16.dtype == torch.float32  # the network hands back the input dtype
    assert rel(out16, out32) < 0.05
    assert loss16.dtype == torch.float32
    assert abs(float(loss16.mean() / loss32.mean()) - 1) < 0.01


def test_prior_output_and_loss_bf16_match_fp32(prior):
    import _ours

    batch = _ours.decoder_batch(16, 1)
    x0 = prior.image_norm.normalize(batch["image_emb"])
    cond = prior.condition(batch["text_emb"], batch["text_tokens"], batch["text_mask"])
    g = torch.Generator().manual_seed(0)
    t = prior.diffusion.sample_t(16, "cpu", g)
    noise = torch.randn(x0.shape, generator=g)
    x_t = prior.diffusion.q_sample(x0, t, noise)
    with torch.no_grad():
        out32 = prior.net(x_t, t, **cond)
        with bf16():
            out16 = prior.net(x_t, t, **cond)
        loss32, _ = prior.diffusion.training_loss(prior.net, x0, cond, t=t, noise=noise)
        with bf16():
            loss16, _ = prior.diffusion.training_loss(prior.net, x0, cond, t=t, noise=noise)
    assert rel(out16, out32) < 0.05
    assert abs(float(loss16.mean() / loss32.mean()) - 1) < 0.01


@pytest.fixture(scope="module")
def decoder_samples(decoder):
    """fp32 and bf16 samples from the same noise (2 images, 20 steps, guidance 3), and the
    fp32 sampler states of every step."""
    from unclip.diffusion import sample

    g = torch.Generator().manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(2, 256, generator=g), dim=-1)
    x_T = torch.randn(2, 3, 32, 32, generator=g)
    opts = {k: decoder.hparams["sampling"][k] for k in ("sampler", "steps", "spacing",
                                                        "threshold")}
    states: list[tuple[float, torch.Tensor]] = []
    s32 = sample(decoder.diffusion, decoder.net, x_T, cond=decoder.condition(z),
                 guidance_scale=3.0, callback=lambda d: states.append((d["t"], d["x"])), **opts)
    s16 = decoder.sample(z, x_T=x_T, autocast=True, guidance_scale=3.0)  # the module's path
    return {"z": z, "fp32": s32.clamp(-1, 1), "bf16": s16, "states": states}


def test_decoder_samples_bf16_match_fp32(decoder_samples):
    s32, s16 = decoder_samples["fp32"], decoder_samples["bf16"]
    assert s16.dtype == torch.float32  # the sampler state stays float32 under autocast
    assert float((s16 - s32).abs().mean()) < LEVEL


def test_final_sampling_steps_in_bf16_leave_no_visible_noise(decoder, decoder_samples):
    from unclip.diffusion import ModelDenoiser

    opts = decoder.hparams["sampling"]
    denoiser = ModelDenoiser(decoder.diffusion, decoder.net, {"image_emb": decoder_samples["z"]},
                             3.0, opts["threshold"])
    assert len(decoder_samples["states"]) == opts["steps"]
    with torch.no_grad():
        for t, x in decoder_samples["states"][-3:]:
            time = torch.full((x.shape[0],), t)
            x0_32 = denoiser(x, time)
            with bf16():
                x0_16 = denoiser(x, time)
            assert x0_16.dtype == torch.float32
            diff = (x0_16 - x0_32).abs()
            assert float(diff.max()) < 0.5 * LEVEL, t
            assert float(diff.mean()) < 0.05 * LEVEL, t


def test_prior_samples_bf16_match_fp32(prior):
    import _ours

    batch = _ours.decoder_batch(4, 1)
    args = (batch["text_emb"], batch["text_tokens"].float(), batch["text_mask"])
    opts = {"sampler": "dpmpp_2m", "steps": 20, "spacing": "logsnr", "best_of": 1}
    z32 = prior.sample(*args, generator=torch.Generator().manual_seed(0), **opts)
    with bf16():
        z16 = prior.sample(*args, generator=torch.Generator().manual_seed(0), **opts)
    cos = torch.nn.functional.cosine_similarity(z16.float(), z32, dim=-1)
    assert bool((cos > 0.99).all()), cos
