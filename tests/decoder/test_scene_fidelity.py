"""scene_fidelity: the benchmark's judge applied to whole held-out scenes, on true renders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unclip.data.shapes import ObjectSpec, render_scene, sample_scene
from unclip.lit.decoder import resize
from unclip.lit.scene_fidelity import scene_figures, scene_specs

SCENES = [sample_scene(seed) for seed in range(200)]
METAS = [s.to_json() for s in SCENES]


def _images(scenes) -> torch.Tensor:
    arrays = [np.asarray(render_scene(s)) for s in scenes]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return _images(SCENES)


def test_specs_ask_for_colour_and_shape_a_single_for_place_and_size_a_pair_for_relation() -> None:
    pair = next(s for s in SCENES if len(s.objects) == 2)
    specs = scene_specs(pair.to_json())
    assert set(specs) == {"objects", "relation"}
    assert [(o.color, o.shape, o.size, o.position) for o in specs["objects"].objects] == [
        (o.color, o.shape, None, None) for o in pair.objects]
    assert specs["objects"].relation is None and specs["relation"].relation == pair.relation
    single = next(s for s in SCENES if len(s.objects) == 1)
    specs = scene_specs(single.to_json())
    assert set(specs) == {"objects", "position", "size"}
    (o,) = single.objects
    assert specs["position"].objects[0] == ObjectSpec(o.shape, o.color, position=o.position)
    assert specs["size"].objects[0].size == o.size and specs["size"].objects[0].position is None


@pytest.mark.parametrize("resolution", [64, 32])
def test_true_renders_pass_every_question(images, resolution) -> None:
    fig = scene_figures(resize(images, resolution), METAS)
    kinds = [len(s.objects) for s in SCENES]
    assert fig["single"]["n"] == kinds.count(1) and fig["pair"]["n"] == kinds.count(2)
    assert fig["single"]["objects"] == fig["single"]["position"] == 1.0
    assert fig["single"]["size"] == 1.0 and "relation" not in fig["single"]
    assert "position" not in fig["pair"]
    assert fig["pair"]["objects"] == 1.0 and fig["pair"]["relation"] == 1.0


def test_pairs_of_one_colour_are_also_reported_on_their_own(images) -> None:
    one_colour = [i for i, s in enumerate(SCENES) if len(s.objects) == 2
                  and s.objects[0].color == s.objects[1].color]
    assert len(one_colour) >= 3  # about 1 pair in 11.5
    fig = scene_figures(images, METAS)
    assert fig["one_colour_pair"]["n"] == len(one_colour)
    assert fig["one_colour_pair"]["objects"] == fig["one_colour_pair"]["relation"] == 1.0
    # each judged against the next one-colour scene's truth: its own kind fails, alone
    shifted = [METAS[i] for i in one_colour[1:] + one_colour[:1]]
    fig = scene_figures(images[one_colour], shifted)
    assert set(fig) == {"pair", "one_colour_pair"} and fig["one_colour_pair"]["objects"] < 0.5


def test_other_scenes_fail_and_a_mirrored_pair_fails_only_its_relation(images) -> None:
    shifted = METAS[1:] + METAS[:1]  # every image judged against another scene's truth
    assert scene_figures(images, shifted)["pair"]["objects"] < 0.2
    sideways = [i for i, s in enumerate(SCENES)
                if s.relation in ("to the left of", "to the right of")]
    assert len(sideways) >= 10
    mirrored = images[sideways].flip(-1)  # colours and shapes kept, left and right exchanged
    fig = scene_figures(mirrored, [METAS[i] for i in sideways])
    assert fig["pair"]["objects"] == 1.0 and fig["pair"]["relation"] == 0.0


def test_a_mirrored_single_off_the_middle_column_fails_only_its_position(images) -> None:
    off = [i for i, s in enumerate(SCENES) if len(s.objects) == 1
           and s.objects[0].position not in ("in the center", "at the top", "at the bottom")]
    assert len(off) >= 10
    fig = scene_figures(images[off].flip(-1), [METAS[i] for i in off])
    assert fig["single"]["objects"] == fig["single"]["size"] == 1.0
    assert fig["single"]["position"] == 0.0


def test_a_count_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="2 images for 1 ground-truth"):
        scene_figures(torch.zeros(2, 3, 8, 8), METAS[:1])
