"""Zero-shot questions from shapes ground truth, and their scoring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import webdataset as wds

from unclip.clip.zero_shot import COLOR_SHAPE_PROMPTS, questions_for, zero_shot_correct
from unclip.data.shapes import POSITIONS, RELATIONS, Scene, ShapeObject


def _meta(*objects: ShapeObject) -> dict:
    return Scene(objects).to_json()


RED_CIRCLE = ShapeObject("circle", "red", (220, 40, 40), 7.0, (10.0, 10.0))
BLUE_SQUARE = ShapeObject("square", "blue", (50, 90, 230), 13.0, (45.0, 16.0))
ORANGE_TRIANGLE = ShapeObject("triangle", "orange", (245, 140, 30), 14.0, (32.0, 32.0))


def test_prompt_sets_follow_the_grammar() -> None:
    assert len(COLOR_SHAPE_PROMPTS) == 24 == len(set(COLOR_SHAPE_PROMPTS))
    assert "an orange triangle" in COLOR_SHAPE_PROMPTS
    cs, pos = questions_for(_meta(RED_CIRCLE), 0)
    assert cs.prompts[cs.answer] == "a red circle"
    assert len(pos.prompts) == 9 and pos.prompts[pos.answer] == "a small red circle in the top left"
    assert pos.prompts[POSITIONS.index("at the bottom")] == "a small red circle at the bottom"
    binding, rel = questions_for(_meta(RED_CIRCLE, BLUE_SQUARE), 3)
    assert binding.task == "color_binding" and binding.index == 3
    assert binding.prompts == ("a red circle and a blue square", "a blue circle and a red square")
    assert binding.answer == 0
    assert rel.index == 3 and len(rel.prompts) == 4
    assert rel.prompts[rel.answer] == "a red circle to the left of a blue square"
    assert rel.prompts[RELATIONS.index("above")] == "a red circle above a blue square"


def test_pairs_without_relation_ask_the_binding_only() -> None:
    near = ShapeObject("square", "blue", (50, 90, 230), 7.0, (27.0, 12.0))
    assert [q.task for q in questions_for(_meta(RED_CIRCLE, near), 0)] == [
        "color_binding", "relation"]
    meta = _meta(RED_CIRCLE, near)
    meta["relation"] = None
    assert [q.task for q in questions_for(meta, 0)] == ["color_binding"]


@pytest.mark.parametrize("other", [
    ShapeObject("square", "red", (220, 40, 40), 13.0, (45.0, 16.0)),   # same colour
    ShapeObject("circle", "blue", (50, 90, 230), 13.0, (45.0, 16.0)),  # same shape
])
def test_binding_needs_two_colours_and_two_shapes(other: ShapeObject) -> None:
    """With a colour or a shape in common, exchanging the colours changes nothing to ask."""
    assert [q.task for q in questions_for(_meta(RED_CIRCLE, other), 0)] == ["relation"]


def test_missing_ground_truth_is_named() -> None:
    with pytest.raises(ValueError, match="sample 5 has no shapes ground truth"):
        questions_for({"caption": "x"}, 5)


def _one_hot_encoder(prompts_in_order: list[str]):
    vocab = {p: i for i, p in enumerate(prompts_in_order)}

    def encode(prompts: list[str]) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.tensor([vocab[p] for p in prompts]),
                                           len(vocab)).float()

    return encode, vocab


def test_scoring_counts_right_and_wrong_answers() -> None:
    metas = [_meta(RED_CIRCLE), _meta(ORANGE_TRIANGLE), _meta(RED_CIRCLE, BLUE_SQUARE)]
    questions = [q for i, m in enumerate(metas) for q in questions_for(m, i)]
    everything = sorted({p for q in questions for p in q.prompts})
    encode, vocab = _one_hot_encoder(everything)
    # image 0 points at its true colour/shape and position; image 1 at wrong answers;
    # image 2 at its true relation and at the colour-swapped caption
    image = torch.zeros(3, len(vocab))
    cs0, pos0, cs1, pos1, bind2, rel2 = questions
    image[0, vocab["a red circle"]] = 1.0
    image[0, vocab[pos0.prompts[pos0.answer]]] = 1.0
    image[1, vocab["a blue triangle"]] = 1.0
    image[1, vocab[pos1.prompts[(pos1.answer + 1) % 9]]] = 1.0
    image[2, vocab[rel2.prompts[rel2.answer]]] = 1.0
    image[2, vocab["a blue circle and a red square"]] = 1.0
    result = zero_shot_correct(image, metas, encode)
    assert result["color_binding"].tolist() == [False]
    assert result["color_shape"].tolist() == [True, False]
    assert result["position"].tolist() == [True, False]
    assert result["relation"].tolist() == [True]


def test_scoring_on_real_val_shards(shapes_dir: Path) -> None:
    metas = [json.loads(s["json"]) for s in wds.WebDataset(
        str(shapes_dir / "val" / "shapes-000000.tar"), shardshuffle=False)]
    questions = [q for i, m in enumerate(metas) for q in questions_for(m, i)]
    everything = sorted({p for q in questions for p in q.prompts})
    encode, vocab = _one_hot_encoder(everything)
    image = torch.zeros(len(metas), len(vocab))
    for q in questions:  # an oracle: every image embedding points at all its true prompts
        image[q.index, vocab[q.prompts[q.answer]]] = 1.0
    result = zero_shot_correct(image, metas, encode)
    singles = sum(len(m["objects"]) == 1 for m in metas)
    assert result["color_shape"].numel() == singles == result["position"].numel()
    assert all(r.all() for r in result.values())


def test_released_weights_evaluate_through_frozen_clip(
    shapes_dir: Path, tiny_weights: Path, tiny_clip, capsys
) -> None:
    """The CLI counts every question of the shards, and a random CLIP scores near chance."""
    from unclip.clip.zero_shot_eval import evaluate, main

    result = evaluate(tiny_clip, str(shapes_dir / "val" / "shapes-*.tar"), batch_size=8)
    metas = [json.loads(s["json"]) for shard in sorted((shapes_dir / "val").glob("*.tar"))
             for s in wds.WebDataset(str(shard), shardshuffle=False)]
    singles = sum(len(m["objects"]) == 1 for m in metas)
    assert result["color_shape"]["n"] == result["position"]["n"] == singles > 0
    assert result["color_shape"]["accuracy"] < 0.5  # 24 choices, untrained
    main(["--model", "tiny-clip", "--pretrained", str(tiny_weights),
          "--shards", str(shapes_dir / "val" / "shapes-*.tar"), "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["color_shape"] == result["color_shape"]
