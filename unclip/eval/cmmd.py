"""CMMD: maximum mean discrepancy between CLIP embeddings (Jayasumana et al., arXiv 2401.09603).

    k(x, y) = exp(-||x - y||^2 / (2 sigma^2)),  sigma = 10        (Gaussian RBF kernel, paper)
    MMD^2 = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(n(n-1)) sum_{i!=j} k(y_i, y_j)
            - 2/(mn) sum_{i,j} k(x_i, y_j)               (unbiased MMD^2_u, Gretton et al. 2012)
    CMMD = 1000 * MMD^2                                           (the paper's reported scale)

on L2-normalised CLIP image embeddings, as the reference implementation
(google-research/cmmd, ``embedding.py`` normalises, ``distance.py`` scales by 1000).

Estimator: the paper specifies the unbiased U-statistic (diagonal terms excluded), which
is the default here (``unbiased=True``); the reference ``distance.py`` averages the full kernel
matrices, i.e. the biased V-statistic, reproduced with ``unbiased=False``. The two differ by
``O(1/n)``; the unbiased one is ~0 (and may be slightly negative) for two samples of one
distribution.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

SIGMA = 10.0
SCALE = 1000.0


def _rbf_kernel(x: Tensor, y: Tensor, sigma: float) -> Tensor:
    """Gaussian RBF kernel matrix ``k(x_i, y_j) = exp(-||x_i - y_j||^2 / (2 sigma^2))``."""
    sq_dist = x.square().sum(-1)[:, None] + y.square().sum(-1)[None, :] - 2.0 * x @ y.T
    return torch.exp(-sq_dist.clamp_min(0.0) / (2.0 * sigma**2))


def cmmd(
    x: Tensor,
    y: Tensor,
    *,
    sigma: float = SIGMA,
    scale: float = SCALE,
    unbiased: bool = True,
    normalize: bool = True,
) -> Tensor:
    """CMMD between embedding sets ``x (m, D)`` and ``y (n, D)``, computed in float64.

    ``normalize`` L2-normalises the rows first (pass ``False`` for already unit embeddings or
    for a different feature space).
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"expected (m, D) and (n, D) embeddings, got {x.shape} and {y.shape}")
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"CMMD needs at least 2 samples per set, got {m} and {n}")
    x, y = x.double(), y.double()
    if normalize:
        x, y = nn.functional.normalize(x, dim=-1), nn.functional.normalize(y, dim=-1)
    k_xx, k_yy, k_xy = _rbf_kernel(x, x, sigma), _rbf_kernel(y, y, sigma), _rbf_kernel(x, y, sigma)
    if unbiased:  # MMD^2_u: U-statistic over i != j
        term_xx = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
        term_yy = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    else:  # reference distance.py: V-statistic over the full matrices
        term_xx, term_yy = k_xx.mean(), k_yy.mean()
    return scale * (term_xx + term_yy - 2.0 * k_xy.mean())


class CMMD(Metric):
    """Streaming CMMD with torchmetrics' ``update(imgs, real)`` convention (as FID/KID).

    Args:
        feature: module mapping the ``update`` inputs to ``(N, D)`` embeddings
            (``CLIPImageFeatures``; ``nn.Identity()`` to pass embeddings directly).
        sigma, scale, unbiased, normalize: see :func:`cmmd`.
        reset_real_features: keep the real embeddings across ``reset()`` when ``False``.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(
        self,
        feature: nn.Module,
        *,
        sigma: float = SIGMA,
        scale: float = SCALE,
        unbiased: bool = True,
        normalize: bool = True,
        reset_real_features: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.feature = feature
        self.sigma, self.scale = sigma, scale
        self.unbiased, self.normalize = unbiased, normalize
        self.reset_real_features = reset_real_features
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    def update(self, imgs: Tensor, real: bool) -> None:
        """Embed a batch and store it as real or generated."""
        features = self.feature(imgs).double()
        (self.real_features if real else self.fake_features).append(features)

    def compute(self) -> Tensor:
        """CMMD between everything seen so far (real vs generated)."""
        real = dim_zero_cat(self.real_features)
        fake = dim_zero_cat(self.fake_features)
        return cmmd(
            real, fake, sigma=self.sigma, scale=self.scale,
            unbiased=self.unbiased, normalize=self.normalize,
        ).float()

    def reset(self) -> None:
        """Reset, keeping the real embeddings when ``reset_real_features`` is ``False``."""
        real = list(self.real_features)
        super().reset()
        if not self.reset_real_features:
            self.real_features = real
