"""sample.py end to end: every mode writes images, a grid and a run.json that describes the run;
unusable requests fail with a clear error and leave no output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file

from tests.conftest import REPO_ROOT, compose_config
from unclip.clip.identity import file_sha256
from unclip.pipeline import (
    CheckpointLoadError,
    ImageInputError,
    StageMismatchError,
    to_pil,
)
from unclip.pipeline.run import SampleRequestError, run_sample

FAST = [
    "sampling.prior.sampler=ddim", "sampling.prior.steps=3",
    "sampling.decoder.steps=3", "sampling.upsampler.steps=2", "inversion.steps=3",
    "device=cpu", "progress=false",
]


def stack_overrides(stack, decoder: Path | None = None) -> list[str]:
    return [
        f"checkpoints.prior='{stack.prior}'",
        f"checkpoints.decoder='{decoder or stack.decoder}'",
        f"checkpoints.upsamplers=['{stack.upsampler}']",
        f"checkpoints.clip={{model_name:tiny-clip,pretrained:'{stack.clip}'}}",
    ]


@pytest.fixture
def sample(stack, tmp_path):
    """``sample(*overrides)`` -> (run dir, written paths): sample.py's config, run in-process."""

    def _run(*overrides: str, decoder: Path | None = None):
        out = tmp_path / "run"
        cfg = compose_config("sample", [*stack_overrides(stack, decoder), *FAST, *overrides],
                             output_dir=out)
        return out, run_sample(cfg)

    return _run


@pytest.fixture(scope="module")
def image_files(tmp_path_factory, images) -> list[Path]:
    root = tmp_path_factory.mktemp("inputs")
    paths = [root / "disc.png", root / "square.jpg"]
    for path, im in zip(paths, to_pil(images), strict=True):
        im.resize((48, 40)).save(path)  # not square, not the model size: cropped and resized
    return paths


def assert_nothing_written(out: Path) -> None:
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert not {"images", "grid.png", "run.json", "tensors.safetensors"} & set(left), left
    assert not [n for n in left if n.startswith(".staging")], left


def test_cli_writes_images_grid_and_a_record_of_the_run(stack, tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "sample.py", *stack_overrides(stack), *FAST,
           "prompt=a large red circle in the top left", "n=2", "seed=0", f"hydra.run.dir={out}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny networks: see conftest.one_thread
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert record["mode"] == "text2img" and record["seed"] == 0 and record["n"] == 2
    assert record["inputs"]["prompts"] == ["a large red circle in the top left"]
    files = [o["file"] for o in record["outputs"]]
    assert files == ["images/p0000_00.png", "images/p0000_01.png"] == record["images"]
    for f in files:
        assert Image.open(out / f).size == (32, 32)
    assert Image.open(out / "grid.png").size == (2 * 32 + 3 * 2, 32 + 2 * 2)
    ckpts = {c["stage"]: c for c in record["checkpoints"]}
    assert ckpts["prior"]["sha256"] == file_sha256(stack.prior)
    assert ckpts["upsampler0"]["path"] == str(stack.upsampler.resolve())
    assert record["clip_identity"]["weights_sha256"] == file_sha256(stack.clip)
    assert record["settings"]["prior"]["steps"] == 3
    assert record["settings"]["decoder"]["guidance_scale"] == 3.0
    assert record["settings"]["upsamplers"][0]["aug_level"] == pytest.approx(0.1)
    assert record["config"]["checkpoints"]["decoder"] == str(stack.decoder)


def test_same_seed_same_files_and_prompts_file_batches(sample, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a blue square\n\n赤い円 — un cercle 🚀\n", encoding="utf-8")
    out, paths = sample(f"prompts_file='{prompts}'", "n=1", "batch_size=1", "seed=4")
    record = json.loads(paths["record"].read_text())
    assert [o["prompt"] for o in record["outputs"]] == ["a blue square", "赤い円 — un cercle 🚀"]
    assert [o["seed"] for o in record["outputs"]] == [4, 5]  # batch k uses seed + k
    first = [(out / f).read_bytes() for f in record["images"]]
    _, again = sample(f"prompts_file='{prompts}'", "n=1", "batch_size=1", "seed=4")
    assert first == [(out / f).read_bytes() for f in record["images"]]
    assert again["record"] == paths["record"]


def test_empty_prompt_is_sampled_unconditionally(sample):
    _, paths = sample("prompt=''", "n=1")
    record = json.loads(paths["record"].read_text())
    assert record["inputs"]["prompts"] == [""] and len(record["outputs"]) == 1


def test_variations_mode(sample, image_files):
    out, paths = sample("mode=variations", f"images=['{image_files[0]}','{image_files[1]}']",
                        "n=2")
    record = json.loads(paths["record"].read_text())
    assert len(record["outputs"]) == 4 and record["outputs"][2]["image"] == str(image_files[1])
    assert record["settings"]["decoder"]["sampler"] == "ddim"
    assert record["settings"]["decoder"]["eta"] == 1.0 and record["settings"]["decoder"][
        "steps"] == 3
    assert record["inputs"]["images"][0]["sha256"] == file_sha256(image_files[0])


def test_interpolate_mode(sample, image_files):
    out, paths = sample("mode=interpolate", f"images=['{image_files[0]}','{image_files[1]}']",
                        "interpolate.frames=3")
    record = json.loads(paths["record"].read_text())
    assert [o["t"] for o in record["outputs"]] == [0.0, 0.5, 1.0]
    assert record["inputs"]["frames"] == 3 and record["inputs"]["noise"] == "random"
    assert all((out / f).is_file() for f in record["images"])


def test_textdiff_mode(sample, image_files):
    out, paths = sample("mode=textdiff", f"images=['{image_files[0]}']",
                        "textdiff.source='a red circle'", "textdiff.target='a blue circle'",
                        "textdiff.angles=[0.0,0.5]")
    record = json.loads(paths["record"].read_text())
    assert [o["angle"] for o in record["outputs"]] == [0.0, 0.5]
    assert record["settings"]["inversion"]["steps"] == 3  # paper: the image's inverted noise
    assert record["inputs"]["source"] == "a red circle"


def test_invert_mode_writes_latents(sample, image_files):
    out, paths = sample("mode=invert", f"images='{image_files[1]}'")  # one image, no list
    record = json.loads(paths["record"].read_text())
    assert [o["kind"] for o in record["outputs"]] == ["input", "reconstruction"]
    tensors = load_file(str(paths["tensors"]))
    assert tensors["x_T"].shape == (1, 3, 16, 16) and tensors["image_embeds"].shape == (1, 32)
    assert record["settings"]["decoder"]["sampler"] == "ddim"
    assert record["settings"]["decoder"]["eta"] == 0.0


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (["mode=paint", "prompt=x"], SampleRequestError, "mode='paint' is not a mode"),
        ([], SampleRequestError, "mode=text2img needs prompt"),
        (["mode=variations"], SampleRequestError, r"needs images=\["),
        (["prompt=x", "sampling.decoder.sampler=euler"], SampleRequestError,
         "sampling.decoder: DecoderSettings.sampler='euler'"),
        (["prompt=x", "n=0"], SampleRequestError, "n must be a positive integer"),
        (["mode=textdiff", "images=[IMG]"], SampleRequestError, "textdiff.source"),
        (["mode=interpolate", "images=[IMG]"], SampleRequestError, "two images"),
        (["mode=variations", "images=[BAD]"], ImageInputError, "cannot read input image"),
        (["mode=variations", "images=['missing.png']"], ImageInputError, "not found"),
        (["prompt=x", "checkpoints.prior='nope.ckpt'"], CheckpointLoadError, "nope.ckpt"),
        (["prompt=x", "checkpoints.decoder=null"], SampleRequestError, "checkpoints.decoder"),
        (["prompt=x", "DECODER_OTHER_CLIP"], StageMismatchError, "trained against CLIP"),
        (["mode=textdiff", "images=[IMG]", "textdiff.source=a", "textdiff.target=a"],
         ValueError, "identical CLIP text embeddings"),  # fails after the stages loaded
    ],
)
def test_unusable_requests_fail_clearly_and_write_nothing(
    sample, stack, tmp_path, image_files, overrides, error, match
):
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello")
    subst = {"[IMG]": f"['{image_files[0]}']", "[BAD]": f"['{bad}']"}
    decoder = stack.decoder_other_clip if "DECODER_OTHER_CLIP" in overrides else None
    args = []
    for o in overrides:
        if o == "DECODER_OTHER_CLIP":
            continue
        for k, v in subst.items():
            o = o.replace(k, v)
        args.append(o)
    with pytest.raises(error, match=match):
        sample(*args, decoder=decoder)
    assert_nothing_written(tmp_path / "run")


def test_a_failed_run_leaves_an_earlier_complete_run_intact(sample, image_files):
    out, paths = sample("prompt=a red circle", "n=1")
    before = paths["record"].read_bytes()
    with pytest.raises(ValueError, match="identical"):
        sample("mode=textdiff", f"images=['{image_files[0]}']", "textdiff.source=a",
               "textdiff.target=a")
    assert paths["record"].read_bytes() == before
    assert [p.name for p in (out / "images").iterdir()] == ["p0000_00.png"]
    assert not [p for p in out.iterdir() if p.name.startswith(".staging")]
