"""Paths through CLIP embedding space: slerp interpolation and text diffs (2204.06125 sec. 3).

CLIP's geometry is angular (cosine similarity), so paths between embeddings follow great circles:
``slerp(a, b, t) = sin((1 - t) w) / sin(w) a + sin(t w) / sin(w) b`` with ``w`` the angle between
``a`` and ``b`` (Shoemake 1985), applied to the raw vectors so that ``t = 0`` and ``t = 1``
return ``a`` and ``b`` exactly and the norm moves smoothly between theirs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

# Below this angle (radians) slerp and lerp agree to float32 precision; lerp avoids 0 / 0.
_PARALLEL = 1e-4


def slerp(
    a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | Sequence[float] | float
) -> torch.Tensor:
    """Spherical interpolation of ``a`` and ``b`` (each (D,) or (B, D)) at fractions ``t``.

    ``t`` scalar: returns ``a``'s shape; ``t`` of shape (T,): returns (T, D) for (D,) inputs, or
    (T, B, D) for batched ones. Computed in float32 whatever the input dtype.
    """
    if a.shape != b.shape:
        raise ValueError(f"slerp endpoints differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    a32, b32 = a.float(), b.float()
    tt = torch.as_tensor(t, dtype=torch.float32, device=a.device)
    scalar = tt.ndim == 0
    tt = tt.reshape(-1, *([1] * a.ndim))  # (T, 1, ..., 1)
    cos = (F.normalize(a32, dim=-1) * F.normalize(b32, dim=-1)).sum(-1, keepdim=True)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))  # 2204.06125 sec. 3.2: z_i0, z_i1 angle
    sin = torch.sin(omega)
    small = omega < _PARALLEL
    safe_sin = torch.where(small, torch.ones_like(sin), sin)
    wa = torch.where(small, 1 - tt, torch.sin((1 - tt) * omega) / safe_sin)
    wb = torch.where(small, tt, torch.sin(tt * omega) / safe_sin)
    out = wa * a32 + wb * b32
    # exact endpoints (the trigonometric weights round to 1 - 1e-7 at t = 0 and 1)
    out = torch.where(tt == 0, a32.expand_as(out), torch.where(tt == 1, b32.expand_as(out), out))
    return out[0] if scalar else out


def text_diff_direction(source_text: torch.Tensor, target_text: torch.Tensor) -> torch.Tensor:
    """``z_d = norm(z_t - z_t0)``: the unit text diff (2204.06125 sec. 3.3), rows (B, D) or (D,)."""
    diff = target_text.float() - source_text.float()
    if bool((diff.norm(dim=-1) == 0).any()):
        raise ValueError("the two captions have identical CLIP text embeddings: "
                         "their difference has no direction")
    return F.normalize(diff, dim=-1)


def text_diff_path(
    image_emb: torch.Tensor, direction: torch.Tensor, angles: Sequence[float]
) -> torch.Tensor:
    """``z_theta = slerp(z_i, z_d, theta)`` for each ``theta`` in ``angles`` (2204.06125 sec. 3.3).

    ``image_emb`` (D,), ``direction`` (D,) unit; the direction is scaled to ``|z_i|`` so the norm
    is kept along the arc and ``theta = 0`` returns ``z_i`` exactly. Returns (len(angles), D).
    The paper moves ``theta`` from 0 to a maximum in [0.25, 0.5]; 1 reaches ``z_d`` itself.
    """
    if image_emb.ndim != 1 or direction.shape != image_emb.shape:
        raise ValueError(f"expected (D,) image embedding and direction, got "
                         f"{tuple(image_emb.shape)} and {tuple(direction.shape)}")
    return slerp(image_emb, direction * image_emb.float().norm(), list(angles))
