"""The decoder and upsampler quality tools run end to end on tiny real inputs.

A tiny random CLIP saved as a weights file, real shapes shards embedded with their images, and
tiny decoder and upsampler checkpoints: ``decoder_quality`` and
``benchmarks/upsampler_consistency.py`` and ``scene_fidelity`` load them by path as users do and
report every figure. Nothing is asserted about quality (the networks are untrained): the
figures are well formed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT
from tests.pipeline.conftest import _save, make_decoder
from unclip.clip import FrozenCLIP
from unclip.data.precompute import precompute_split
from unclip.data.shapes.writer import write_dataset
from unclip.lit import decoder_quality, scene_fidelity


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("quality_tools")
    torch.manual_seed(0)
    weights = root / "clip.pt"
    torch.save(FrozenCLIP("tiny-clip").model.state_dict(), weights)
    clip = FrozenCLIP("tiny-clip", pretrained=str(weights))
    write_dataset(root / "shapes", {"test": 24}, seed=0, workers=0, shard_size=12,
                  progress=False)
    precompute_split(clip, str(root / "shapes" / "test" / "*.tar"), root / "emb",
                     batch_size=12, with_images=True, progress=False)
    return {
        "clip": weights, "shards": root / "emb" / "*.tar",
        "decoder": _save(make_decoder(clip.identity, 16), root / "decoder.ckpt"),
        "upsampler": _save(make_decoder(clip.identity, 32, low_res=16), root / "up.ckpt"),
    }


def test_decoder_quality_reports_samples_real_images_and_upsampling(inputs, capsys) -> None:
    result = decoder_quality.main([
        "--decoder", str(inputs["decoder"]), "--upsampler", str(inputs["upsampler"]),
        "--clip-model", "tiny-clip", "--clip-weights", str(inputs["clip"]),
        "--shards", str(inputs["shards"]), "--n", "24", "--steps", "2",
        "--upsampler-low-pass-sigma", "1", "--upsampler-aug-level", "0",
        "--upsampler-steps", "3"])
    assert json.loads(capsys.readouterr().out) == result
    assert 0 < result["n"] <= 24 and result["resolution"] == 16
    for key in ("samples", "real", "upsampled", "real_upsampler_resolution"):
        assert set(result[key]) >= {"accuracy", "cosine", "analytic_accuracy"}
        assert 0.0 <= result[key]["accuracy"] <= 1.0 and -1.0 <= result[key]["cosine"] <= 1.0
    assert result["upsampled"]["resolution"] == 32 and 0 <= result["upsampled"]["agreement"] <= 1
    assert result["upsampler_sampling"]["low_pass_sigma"] == 1.0
    assert result["upsampler_sampling"]["aug_level"] == 0.0
    assert result["upsampler_sampling"]["steps"] == 3
    up = result["upsampled"]
    # the readings that upsampling breaks and mends account for the change in accuracy
    assert abs((up["accuracy"] - result["samples"]["accuracy"])
               - (up["wrong_to_right"] - up["right_to_wrong"])) < 1e-6
    assert up["agreement"] <= 1 - up["right_to_wrong"] - up["wrong_to_right"] + 1e-6
    assert 0 <= result["real_upsampler_resolution"]["agreement"] <= 1
    assert result["real_upsampler_resolution"]["analytic_accuracy"] == 1.0  # real images read


def test_scene_fidelity_reports_singles_and_pairs_for_samples_and_real_images(inputs, capsys
                                                                              ) -> None:
    result = scene_fidelity.main([
        "--decoder", str(inputs["decoder"]), "--shards", str(inputs["shards"]), "--n", "24",
        "--steps", "2", "--guidance-scale", "2"])
    assert json.loads(capsys.readouterr().out) == result
    assert result["resolution"] == 16 and result["sampling"]["guidance_scale"] == 2.0
    real, samples = result["real"], result["samples"]
    assert real["single"]["n"] + real["pair"]["n"] == 24
    assert {k: v["n"] for k, v in samples.items()} == {k: v["n"] for k, v in real.items()}
    assert set(samples["pair"]) == {"n", "objects", "relation"}
    assert all(0.0 <= v <= 1.0 for kind in samples.values() for k, v in kind.items() if k != "n")


def test_scene_fidelity_reads_only_the_scenes_asked_for(inputs, capsys) -> None:
    everything = scene_fidelity.load_scenes(str(inputs["shards"]), 24)
    pairs = [m for m in everything["meta"] if len(m["objects"]) == 2]
    one_colour = [m for m in pairs if m["objects"][0]["color"] == m["objects"][1]["color"]]
    batch = scene_fidelity.load_scenes(str(inputs["shards"]), len(pairs), "pairs")
    assert batch["meta"] == pairs and len(batch["image_emb"]) == len(batch["image"]) == len(pairs)
    result = scene_fidelity.main([
        "--decoder", str(inputs["decoder"]), "--shards", str(inputs["shards"]),
        "--n", str(len(pairs)), "--steps", "2", "--scenes", "pairs"])
    assert set(result["real"]) == {"pair"} | ({"one_colour_pair"} if one_colour else set())
    assert result["real"]["pair"]["n"] == len(pairs)
    with pytest.raises(ValueError, match=r"holds \d+ scenes of the kind 'one_colour_pairs', "
                                         r"fewer than --n 25"):
        scene_fidelity.load_scenes(str(inputs["shards"]), 25, "one_colour_pairs")
    with pytest.raises(ValueError, match="--scenes 'triples'"):
        scene_fidelity.load_scenes(str(inputs["shards"]), 1, "triples")


def test_upsampler_consistency_benchmark_prints_a_row_per_sigma(inputs) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "upsampler_consistency.py"),
         "--upsampler", str(inputs["upsampler"]), "--clip-model", "tiny-clip",
         "--clip-weights", str(inputs["clip"]), "--shards", str(inputs["shards"]),
         "--n", "24", "--sigmas", "0", "2", "--steps", "3", "--aug-level", "0"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("real", "input, bilinear", "upsampled, sigma 0", "upsampled, sigma 2"):
        assert name in proc.stdout
    assert "16 -> 32 px" in proc.stdout
    assert "'steps': 3" in proc.stdout and "'aug_level': 0.0" in proc.stdout


def test_reading_changes_counts_what_upsampling_breaks_and_mends() -> None:
    truth = torch.tensor([0, 1, 2, 3, 4])
    before = torch.tensor([0, 1, 9, 9, 4])   # right, right, wrong, wrong, right
    after = torch.tensor([0, 7, 2, 8, 4])    # kept, broken, mended, changed but still wrong, kept
    changes = decoder_quality.reading_changes(before, after, truth)
    assert changes == pytest.approx(
        {"agreement": 0.4, "right_to_wrong": 0.2, "wrong_to_right": 0.2})


def test_a_caption_conditioned_decoder_samples_with_its_captions(inputs) -> None:
    from unclip.lit.decoder import load_decoder

    batch = decoder_quality.load_test_batch(str(inputs["shards"]), 8)
    decoder = load_decoder(inputs["decoder"])
    assert decoder.hparams["text_condition"]
    given = decoder_quality.base_inputs(decoder, batch, [1, 3, 4])
    assert set(given) == {"image_emb", "text_tokens", "text_mask"}
    torch.testing.assert_close(given["image_emb"], batch["image_emb"][[1, 3, 4]].float())
    torch.testing.assert_close(given["text_tokens"], batch["text_tokens"][[1, 3, 4]].float())
    assert torch.equal(given["text_mask"], batch["text_mask"][[1, 3, 4]].bool())

    def draw(chunk_inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return decoder_quality.sample_in_chunks(
            decoder, chunk_inputs, torch.Generator().manual_seed(0), chunk=2, steps=2)

    with_captions = draw(given)
    assert with_captions.shape == (3, 3, 16, 16)
    # the captions reach the network: without them it samples the learned null caption
    assert not torch.allclose(with_captions, draw({"image_emb": given["image_emb"]}))
    torch.testing.assert_close(with_captions, draw(given))  # one generator throughout


def test_missing_captions_and_misaligned_inputs_are_named(inputs) -> None:
    from unclip.lit.decoder import load_decoder

    batch = decoder_quality.load_test_batch(str(inputs["shards"]), 4)
    decoder = load_decoder(inputs["decoder"])
    del batch["text_mask"]
    with pytest.raises(ValueError, match="text_condition=true.*no text_mask"):
        decoder_quality.base_inputs(decoder, batch)
    with pytest.raises(ValueError, match="different lengths"):
        decoder_quality.sample_in_chunks(
            decoder, {"image_emb": batch["image_emb"], "text_tokens": batch["text_tokens"][:2]},
            torch.Generator(), steps=2)
