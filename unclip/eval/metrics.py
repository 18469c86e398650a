"""Distribution metrics between generated and reference images, all as torchmetrics metrics.

- ``fd_clip``: Fréchet distance of CLIP image embeddings, torchmetrics'
  ``FrechetInceptionDistance`` with the frozen CLIP as its ``feature`` module (FD_CLIP, Stein et
  al. 2023, arXiv 2306.04675):  ``FD = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))``.
- ``kid_clip``: torchmetrics' ``KernelInceptionDistance`` on the same features (Bińkowski et al.
  2018: unbiased MMD^2 with the cubic kernel ``(x.y / D + 1)^3``, mean/std over subsets).
- ``cmmd_clip``: CMMD (arXiv 2401.09603), ``unclip.eval.cmmd``.
- ``inception_fid``: the classic FID, only with local Inception weights (nothing is downloaded);
  otherwise ``None`` and a note saying why it was skipped.

All take images in the project convention (float ``(B, 3, H, W)`` in ``[-1, 1]``) through
``update(images, real=...)``. ``clip_distribution_metrics`` bundles the CLIP ones in a
``MetricCollection`` sharing one feature module, so each batch is embedded once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance
from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

from unclip.eval.clip_features import CLIPImageFeatures, ImageEncoder
from unclip.eval.cmmd import CMMD


def _features(encoder: ImageEncoder | CLIPImageFeatures) -> CLIPImageFeatures:
    return encoder if isinstance(encoder, CLIPImageFeatures) else CLIPImageFeatures(encoder)


def fd_clip(encoder: ImageEncoder | CLIPImageFeatures, **kwargs: Any) -> FrechetInceptionDistance:
    """FD_CLIP: torchmetrics FID over CLIP image embeddings (kwargs go to the FID)."""
    return FrechetInceptionDistance(feature=_features(encoder), **kwargs)


def kid_clip(
    encoder: ImageEncoder | CLIPImageFeatures,
    subsets: int = 100,
    subset_size: int = 1000,
    **kwargs: Any,
) -> KernelInceptionDistance:
    """KID on CLIP image embeddings; ``subset_size`` must not exceed either set's size."""
    return KernelInceptionDistance(
        feature=_features(encoder), subsets=subsets, subset_size=subset_size, **kwargs
    )


def cmmd_clip(encoder: ImageEncoder | CLIPImageFeatures, **kwargs: Any) -> CMMD:
    """CMMD on (L2-normalised) CLIP image embeddings."""
    return CMMD(_features(encoder), **kwargs)


def clip_distribution_metrics(
    encoder: ImageEncoder,
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    reset_real_features: bool = True,
) -> MetricCollection:
    """``{"fd_clip", "kid_clip", "cmmd"}`` sharing one CLIP feature module.

    ``update(images, real=True|False)`` embeds each batch once; ``compute()`` returns
    ``{"fd_clip", "kid_clip_mean", "kid_clip_std", "cmmd"}`` (KID's tuple is flattened).
    """
    features = CLIPImageFeatures(encoder)
    return MetricCollection(
        {
            "fd_clip": fd_clip(features, reset_real_features=reset_real_features),
            "kid_clip": kid_clip(
                features, kid_subsets, kid_subset_size, reset_real_features=reset_real_features
            ),
            "cmmd": cmmd_clip(features, reset_real_features=reset_real_features),
        },
        compute_groups=False,
    )


def flatten_results(results: dict[str, Any]) -> dict[str, float]:
    """``MetricCollection.compute()`` output -> plain floats (KID's ``(mean, std)`` split)."""
    flat: dict[str, float] = {}
    for name, value in results.items():
        if isinstance(value, tuple):
            flat[f"{name}_mean"], flat[f"{name}_std"] = float(value[0]), float(value[1])
        elif isinstance(value, dict):
            flat.update(flatten_results({f"{name}_{k}": v for k, v in value.items()}))
        else:
            flat[name] = float(value)
    return flat


class InceptionFID(FrechetInceptionDistance):
    """torchmetrics FID (Inception-v3, 2048-d pool features) taking images in ``[-1, 1]``."""

    def __init__(self, weights_path: str, **kwargs: Any) -> None:
        super().__init__(
            feature=2048, normalize=True, feature_extractor_weights_path=weights_path, **kwargs
        )

    def update(self, imgs: Tensor, real: bool) -> None:
        """Map ``[-1, 1]`` floats to the ``[0, 1]`` torchmetrics expects with ``normalize``."""
        super().update(((imgs + 1.0) / 2.0).clamp(0.0, 1.0), real)


def inception_fid(weights_path: str | Path | None) -> tuple[InceptionFID | None, str | None]:
    """The Inception FID if it can run offline, else ``(None, note)``.

    ``weights_path``: the torch-fidelity Inception weights file
    (e.g. ``weights-inception-2015-12-05-6726825d.pth``) on local disk; torchmetrics would otherwise
    download it, which this project never does at run time.
    """
    if weights_path is None:
        return None, "inception FID skipped: no local Inception weights path given"
    if not Path(weights_path).is_file():
        return None, f"inception FID skipped: weights file not found at {weights_path}"
    if not _TORCH_FIDELITY_AVAILABLE:
        return None, "inception FID skipped: torch-fidelity is not installed"
    return InceptionFID(str(weights_path)), None
