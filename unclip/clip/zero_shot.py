"""Zero-shot attribute accuracy of a CLIP on shapes images, from their ``.json`` ground truth.

Four tasks, each a choice among prompts written in the shapes grammar:

- ``color_shape``: single-object images against all 24 ``a {color} {shape}`` prompts;
- ``position``: single-object images against the 9 ``a {size} {color} {shape} {position}``
  prompts that differ only in position;
- ``relation``: two-object images with a relation against the 4
  ``a {color} {shape} {relation} a {color} {shape}`` prompts that differ only in relation;
- ``color_binding``: two-object images of two colours and two shapes against
  ``a {color} {shape} and a {color} {shape}`` and the same with the colours exchanged: whether
  the embeddings bind each colour to its shape (chance: 50%).

The prediction is the prompt whose text embedding has the highest cosine similarity with the
image embedding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from unclip.data.shapes import COLORS, POSITIONS, RELATIONS, SHAPES, pair_caption, single_caption

TASKS: tuple[str, ...] = ("color_shape", "position", "relation", "color_binding")
COLOR_SHAPE_PROMPTS: tuple[str, ...] = tuple(
    single_caption(color, shape) for color in COLORS for shape in SHAPES
)


@dataclass(frozen=True)
class ZeroShotQuestion:
    """One image's choice: which of ``prompts`` is true (``answer`` indexes it)."""

    task: str
    index: int  # the image's row in the batch
    prompts: tuple[str, ...]
    answer: int


def questions_for(meta: Mapping[str, Any], index: int) -> list[ZeroShotQuestion]:
    """The zero-shot questions one shapes sample answers."""
    try:
        objects = meta["objects"]
    except (KeyError, TypeError) as err:
        raise ValueError(f"sample {index} has no shapes ground truth 'objects': {meta!r}") from err
    if len(objects) == 1:
        o = objects[0]
        positions = tuple(single_caption(o["color"], o["shape"], o["size"], p) for p in POSITIONS)
        return [
            ZeroShotQuestion(
                "color_shape", index, COLOR_SHAPE_PROMPTS,
                COLOR_SHAPE_PROMPTS.index(single_caption(o["color"], o["shape"])),
            ),
            ZeroShotQuestion("position", index, positions, POSITIONS.index(o["position"])),
        ]
    if len(objects) != 2:
        return []
    questions = []
    a, b = objects
    if a["color"] != b["color"] and a["shape"] != b["shape"]:
        binding = (pair_caption(a["color"], a["shape"], b["color"], b["shape"]),
                   pair_caption(b["color"], a["shape"], a["color"], b["shape"]))
        questions.append(ZeroShotQuestion("color_binding", index, binding, 0))
    relation = meta.get("relation")
    if relation:
        a, b = objects[relation["subject"]], objects[relation["object"]]
        prompts = tuple(
            pair_caption(a["color"], a["shape"], b["color"], b["shape"], r) for r in RELATIONS
        )
        questions.append(
            ZeroShotQuestion("relation", index, prompts, RELATIONS.index(relation["relation"])))
    return questions


def zero_shot_correct(
    image_emb: torch.Tensor,
    metas: Sequence[Mapping[str, Any]],
    encode_text: Callable[[list[str]], torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Per task, a bool tensor: whether each question of the batch was answered right.

    ``image_emb`` (B, D) are the images' CLIP embeddings, ``metas`` their ``.json`` records and
    ``encode_text`` maps prompts to (N, D) embeddings (each distinct prompt is encoded once).
    """
    if len(metas) != image_emb.shape[0]:
        raise ValueError(f"{image_emb.shape[0]} image embeddings but {len(metas)} metas")
    questions = [q for i, m in enumerate(metas) for q in questions_for(m, i)]
    result = {task: torch.zeros(0, dtype=torch.bool) for task in TASKS}
    if not questions:
        return result
    prompts = sorted({p for q in questions for p in q.prompts})
    row = {p: i for i, p in enumerate(prompts)}
    text = F.normalize(encode_text(prompts).float(), dim=-1)
    image = F.normalize(image_emb.float(), dim=-1).to(text.device)
    for task in TASKS:
        qs = [q for q in questions if q.task == task]
        if not qs:
            continue
        ids = torch.tensor([[row[p] for p in q.prompts] for q in qs], device=text.device)
        rows = torch.tensor([q.index for q in qs], device=text.device)
        scores = torch.einsum("qd,qkd->qk", image[rows], text[ids])
        answers = torch.tensor([q.answer for q in qs], device=text.device)
        result[task] = (scores.argmax(1) == answers).cpu()
    return result
