"""One call per unCLIP stage: prior, base decoder, upsampler (2204.06125 sec. 2).

Each stage computes its conditioning once, then runs ``unclip.diffusion.sample`` over the stage
module's own network and diffusion, with the stage's settings. Networks run under bf16 autocast
when enabled (and the stage module allows it); the sampler state stays float32.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import torch

from unclip.clip import TextEncoding
from unclip.diffusion import sample
from unclip.lit.decoder import DecoderModule
from unclip.lit.prior import PriorModule

from .settings import DecoderSettings, PriorSettings, UpsamplerSettings

log = logging.getLogger(__name__)


def stage_generator(seed: int, stage: str, device: torch.device | str) -> torch.Generator:
    """A generator for one stage, seeded from ``(seed, stage)``.

    Each stage draws from its own stream, so changing one stage's settings (steps, best-of)
    leaves the noise of the other stages unchanged.
    """
    digest = hashlib.sha256(f"unclip/{int(seed)}/{stage}".encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def autocast_for(module: PriorModule | DecoderModule, enabled: bool) -> Any:
    """bf16 autocast of ``module``'s network on its device, if ``enabled`` and the stage's own
    sampling config does not turn it off (``sampling.autocast: false``); else a no-op."""
    if not enabled or not module.hparams.get("sampling", {}).get("autocast", True):
        return contextlib.nullcontext()
    return torch.autocast(module.device.type, dtype=torch.bfloat16)


def run_prior(
    prior: PriorModule,
    text: TextEncoding,
    unconditional: Sequence[bool],
    settings: PriorSettings,
    generator: torch.Generator,
    *,
    use_autocast: bool = True,
    progress: bool = False,
) -> torch.Tensor:
    """Sample CLIP image embeddings (B, D) for encoded captions (2204.06125 sec. 2.1).

    Rows flagged ``unconditional`` (empty prompts) are sampled from the prior's learned null
    text condition (its classifier-free-guidance training, 2207.12598), one candidate each;
    the other rows go through ``PriorModule.sample`` (best-of-n, guidance).
    """
    flags = torch.tensor(list(unconditional), dtype=torch.bool)
    if flags.shape != (text.pooled.shape[0],):
        raise ValueError(f"unconditional has {len(flags)} flags for {text.pooled.shape[0]} rows")
    device = text.pooled.device
    out = torch.empty(text.pooled.shape, dtype=torch.float32, device=device)
    cond_rows, null_rows = (~flags).nonzero().flatten(), flags.nonzero().flatten()
    opts = settings.to_dict()
    log.info("prior (batch %d): %s", len(flags), opts)
    with autocast_for(prior, use_autocast):
        if len(cond_rows):
            idx = cond_rows.to(device)
            out[idx] = prior.sample(text.pooled[idx], text.tokens[idx], text.mask[idx],
                                    generator=generator, progress=progress, **opts).float()
        if len(null_rows):
            idx = null_rows.to(device)
            cond = prior.condition(text.pooled[idx], text.tokens[idx], text.mask[idx])
            cond["cond_drop"] = torch.ones(len(idx), dtype=torch.bool, device=device)
            x_T = torch.randn(len(idx), text.pooled.shape[1], generator=generator,
                              device=generator.device).to(device)
            kwargs = {**settings.sample_kwargs(), "guidance_scale": 1.0}
            z = sample(prior.diffusion, prior.net, x_T, cond=cond, generator=generator,
                       progress=progress, x0_transform=prior.x0_transform(settings.clamp_l2norm),
                       **kwargs)
            out[idx] = prior.image_norm.denormalize(z)
    return out


def stage_condition(
    module: DecoderModule,
    image_emb: torch.Tensor | None,
    text: TextEncoding | None,
    low_res: torch.Tensor | None = None,
    aug_level: float | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The conditioning a decoder or upsampler was trained with, from what the pipeline has.

    The image embedding goes to image-conditioned stages, the caption tokens to
    caption-conditioned ones (without a caption, e.g. for variations, they get the learned null
    caption); upsamplers get the low-res image noised to ``aug_level``.
    """
    hp = module.hparams
    use_image = image_emb if hp["image_condition"] else None
    tokens = mask = None
    if hp["text_condition"] and text is not None:
        tokens, mask = text.tokens, text.mask
    return module.condition(use_image, tokens, mask, low_res, aug_level, generator)


def low_pass_sigma(module: DecoderModule, settings: Any) -> float | None:
    """The upsampler's low-pass consistency sigma: the settings' own, else the checkpoint's."""
    sigma = getattr(settings, "low_pass_sigma", None)
    return module.hparams["sampling"].get("low_pass_sigma") if sigma is None else sigma


def run_image_stage(
    module: DecoderModule,
    cond: dict[str, torch.Tensor],
    settings: DecoderSettings | UpsamplerSettings,
    generator: torch.Generator,
    batch: int,
    *,
    x_T: torch.Tensor | None = None,
    use_autocast: bool = True,
    progress: bool = False,
    name: str = "decoder",
    low_res: torch.Tensor | None = None,
) -> torch.Tensor:
    """Images (B, 3, R, R) in [-1, 1] from a decoder or upsampler and its conditioning.

    ``x_T`` (B, 3, R, R) is the initial noise (default: drawn from ``generator``); ``name``
    labels the stage in the log line that precedes its progress bar. For an upsampler,
    ``low_res`` is its clean input, to which the low-pass consistency of
    ``settings.low_pass_sigma`` (or the checkpoint's) ties every x0 prediction.
    """
    device = module.device
    r = module.hparams["resolution"]
    transform, record = None, settings.to_dict()
    if low_res is not None:
        sigma = low_pass_sigma(module, settings)
        transform = module.consistency(low_res.to(device), sigma)
        record["low_pass_sigma"] = sigma
    log.info("%s (%d px, batch %d): %s", name, r, batch, record)
    if x_T is None:
        x_T = torch.randn(batch, 3, r, r, generator=generator, device=generator.device)
    if x_T.shape != (batch, 3, r, r):
        raise ValueError(f"x_T must have shape {(batch, 3, r, r)}, got {tuple(x_T.shape)}")
    with autocast_for(module, use_autocast):
        x = sample(module.diffusion, module.net, x_T.to(device, torch.float32), cond=cond,
                   generator=generator, progress=progress, x0_transform=transform,
                   **settings.sample_kwargs())
    return x.clamp(-1, 1)
