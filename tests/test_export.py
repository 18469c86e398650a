"""``python -m unclip.export``: a tiny real pipeline exported to safetensors + ``pipeline.json``
and loaded back has the same weights and draws the same samples under a seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT
from tests.pipeline.conftest import Stack, build_stack
from unclip.export import load_exported_pipeline, main
from unclip.lit.decoder import load_decoder
from unclip.pipeline import (
    CheckpointLoadError,
    DecoderSettings,
    PriorSettings,
    UnCLIPPipeline,
    UpsamplerSettings,
)

FAST = dict(prior_settings=PriorSettings(sampler="ddim", steps=3, best_of=2),
            decoder_settings=DecoderSettings(sampler="ddim", steps=3, guidance_scale=2.0),
            upsampler_settings=UpsamplerSettings(sampler="ddim", steps=2, aug_level=0.1))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    torch.set_num_threads(1)
    return build_stack(tmp_path_factory.mktemp("export_stack"), with_8px_upsampler=False)


@pytest.fixture(scope="module")
def exported(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "pipe"
    argv = ["--prior", str(stack.prior), "--decoder", str(stack.decoder),
            "--upsampler", str(stack.upsampler), "--out", str(out)]
    assert main(argv) == 0
    return out


def _original(stack: Stack) -> UnCLIPPipeline:
    return UnCLIPPipeline.from_checkpoints(stack.prior, stack.decoder, [stack.upsampler],
                                           clip=stack.clip_spec())


def test_directory_holds_safetensors_and_one_config(exported: Path, stack: Stack) -> None:
    names = sorted(p.name for p in exported.iterdir())
    assert names == ["decoder.safetensors", "pipeline.json", "prior.safetensors",
                     "upsampler0.safetensors"]
    manifest = json.loads((exported / "pipeline.json").read_text())
    assert [s["stage"] for s in manifest["stages"]] == ["prior", "decoder", "upsampler0"]
    assert manifest["resolutions"] == [16, 32]
    assert manifest["clip_identity"]["model_name"] == "tiny-clip"
    prior, decoder = manifest["stages"][0]["config"], manifest["stages"][1]["config"]
    assert set(prior["norm"]) == {"image", "text"}  # the prior's embedding normalisation
    assert decoder["diffusion"]["prediction"] == "eps"
    assert manifest["stages"][0]["source"]["path"] == str(stack.prior.resolve())
    assert load_decoder(exported / "upsampler0.safetensors").is_upsampler  # one file loads alone


def test_round_trip_keeps_weights_configs_and_samples(exported: Path, stack: Stack) -> None:
    before = _original(stack)
    after = load_exported_pipeline(exported, clip=stack.clip_spec())
    pairs = [(before.prior, after.prior), (before.decoder, after.decoder),
             (before.upsamplers[0], after.upsamplers[0])]
    for a, b in pairs:
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        for key in sa:
            assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key
        assert dict(a.hparams) == dict(b.hparams)
    assert after.decoder.ema_weights == before.decoder.ema_weights
    assert after.describe()["resolutions"] == before.describe()["resolutions"] == [16, 32]
    x = before.text_to_image(["a red circle", ""], seed=7, **FAST)
    y = after.text_to_image(["a red circle", ""], seed=7, **FAST)
    assert torch.equal(x.image_embeds, y.image_embeds)
    assert torch.equal(x.images, y.images) and bool(torch.isfinite(y.images).all())
    z = after.text_to_image(["a red circle", ""], seed=8, **FAST)
    assert not torch.equal(y.images, z.images)  # the comparison can fail


def test_a_modified_file_is_refused_naming_it(exported: Path, stack: Stack, tmp_path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in exported.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    data = bytearray((copy / "decoder.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "decoder.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointLoadError, match=r"decoder\.safetensors has sha256 .*modified"):
        load_exported_pipeline(copy, clip=stack.clip_spec())
    (copy / "decoder.safetensors").unlink()
    with pytest.raises(CheckpointLoadError, match=r"decoder\.safetensors is missing"):
        load_exported_pipeline(copy, clip=stack.clip_spec())
    with pytest.raises(CheckpointLoadError, match="no pipeline.json"):
        load_exported_pipeline(tmp_path, clip=stack.clip_spec())


def test_mismatched_stages_are_refused_and_nothing_is_written(stack: Stack, tmp_path, capsys):
    out = tmp_path / "bad"
    argv = ["--prior", str(stack.prior), "--decoder", str(stack.decoder_other_clip),
            "--out", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "export failed" in err and str(stack.decoder_other_clip) in err
    assert not (out / "pipeline.json").exists()
    argv = ["--prior", str(stack.prior), "--decoder", str(stack.upsampler), "--out", str(out)]
    assert main(argv) == 1
    assert "is an upsampler checkpoint" in capsys.readouterr().err


def test_a_non_empty_directory_needs_overwrite(exported: Path, stack: Stack, capsys) -> None:
    argv = ["--prior", str(stack.prior), "--decoder", str(stack.decoder), "--out", str(exported)]
    assert main(argv) == 1
    assert "is not empty" in capsys.readouterr().err
    before = (exported / "pipeline.json").read_text()
    assert json.loads(before)["resolutions"] == [16, 32]


def test_module_entry_point_runs(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "unclip.export", "--prior", str(stack.prior),
           "--decoder", str(stack.decoder), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT),
                               "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "pipeline.json" in proc.stdout and (out / "decoder.safetensors").is_file()
    pipe = load_exported_pipeline(out, clip=stack.clip_spec())
    assert pipe.upsamplers == [] and pipe.resolution == 16
