"""DDIM inversion: run the deterministic DDIM ODE backwards from an image to its noise x_T.

unCLIP fixes the decoder's DDIM latent ``x_T`` to the inversion of an image for reconstructions,
interpolations and text diffs (2204.06125 sec. 3.2-3.3, fig. 5). One step from ``t`` up to ``s``
inverts the DDIM step from ``s`` down to ``t`` (Song et al. 2010.02502 eq. 12 with eta = 0),
``x_s = alpha_s x0_hat + sigma_s eps_hat``, ``x0_hat = (x_t - sigma_t eps_hat) / alpha_t``, with
``eps_hat`` evaluated at ``(x_t, s)``: the sampling step's evaluation time (Mokady et al.
2211.09794 sec. 3). Sampling back with ``sampler="ddim", eta=0`` on the same grid reconstructs the
image up to the discretisation error. The guided denoiser, the time grid and the schedule are the
diffusion package's own (``ModelDenoiser``, ``make_timesteps``, ``schedule.alpha/sigma``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from tqdm.auto import trange

from unclip.diffusion import GaussianDiffusion, ModelDenoiser, make_timesteps


@torch.no_grad()
def ddim_invert(
    diffusion: GaussianDiffusion,
    model: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    *,
    steps: int = 50,
    spacing: str = "uniform",
    cond: Mapping[str, Any] | None = None,
    guidance_scale: float = 1.0,
    progress: bool = False,
) -> torch.Tensor:
    """The DDIM latent ``x_T`` (same shape/dtype as ``x0``) that deterministic DDIM maps to ``x0``.

    Args mirror ``unclip.diffusion.sample``; reconstruct with ``sample(..., sampler="ddim",
    eta=0.0, steps=steps, spacing=spacing, guidance_scale=guidance_scale, threshold=None)``.
    Guidance above 1 makes inversion markedly less exact (2211.09794 sec. 3).
    """
    denoiser = ModelDenoiser(diffusion, model, cond, guidance_scale)
    times = make_timesteps(diffusion.schedule, steps, spacing).flip(0)  # 0 = t_0 < ... < t_N
    alpha = diffusion.schedule.alpha(times).tolist()
    sigma = diffusion.schedule.sigma(times).tolist()
    x = x0
    for i in trange(steps, disable=not progress, desc="invert"):
        s = torch.full((x.shape[0],), float(times[i + 1]), dtype=torch.float32, device=x.device)
        eps = denoiser.eps(x, s).to(x.dtype)
        x0_hat = (x - sigma[i] * eps) / alpha[i]
        x = alpha[i + 1] * x0_hat + sigma[i + 1] * eps  # 2010.02502 eq. 12, eta = 0
    return x
