"""Best of ``k``: keep, per row, the candidate whose CLIP embedding is most cosine-similar to a
target embedding.

The prior keeps the best of its ``k`` sampled image embeddings by their cosine with the caption's
text embedding (2204.06125 sec. 2.1); the pipeline reranks ``k`` decoded images by the cosine of
their CLIP image embeddings with the caption's text embedding (the CLIP reranking of DALL·E,
2102.12092 sec. 2.5), or with the conditioning image embedding where there is no caption.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def best_of(candidates: torch.Tensor, candidate_embeds: torch.Tensor, targets: torch.Tensor,
            k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The best of each row's ``k`` candidates, and which one it was.

    Args:
        candidates: (B * k, ...) row-major groups: rows ``b * k .. b * k + k - 1`` belong to
            image ``b``.
        candidate_embeds: (B * k, D) CLIP image embeddings of the candidates.
        targets: (B, D) the embeddings each image's candidates are scored against.
        k: candidates per image.

    Returns:
        ``(best (B, ...), index (B,))``: each image's highest-cosine candidate and its position
        in the group.
    """
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    rows = targets.shape[0]
    if candidates.shape[0] != rows * k or candidate_embeds.shape[0] != rows * k:
        raise ValueError(f"{rows} targets with k={k} need {rows * k} candidates, got "
                         f"{candidates.shape[0]} candidates and {candidate_embeds.shape[0]} "
                         f"embeddings")
    score = F.cosine_similarity(candidate_embeds.float().unflatten(0, (rows, k)),
                                targets.float().to(candidate_embeds.device)[:, None], dim=-1)
    index = score.argmax(dim=1)
    chosen = torch.arange(rows, device=index.device) * k + index
    return candidates[chosen.to(candidates.device)], index
