"""Image I/O and the all-or-nothing writing of a run directory."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from unclip.pipeline import ImageInputError, load_image, make_grid, to_pil, write_run


def test_images_round_trip_through_files(tmp_path):
    x = torch.linspace(-1, 1, 3 * 8 * 12).reshape(1, 3, 8, 12)
    (im,) = to_pil(x)
    assert im.size == (12, 8)
    im.save(tmp_path / "a.png")
    y = load_image(tmp_path / "a.png", 8)  # centre crop 8x8, no resize
    assert y.shape == (3, 8, 8) and y.min() >= -1 and y.max() <= 1
    torch.testing.assert_close(y, x[0, :, :, 2:10], atol=1 / 127.5, rtol=0)
    assert load_image(tmp_path / "a.png", 4).shape == (3, 4, 4)


def test_unreadable_and_missing_images_are_named(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ImageInputError, match="cannot read input image .*x.png"):
        load_image(tmp_path / "x.png", 8)
    with pytest.raises(ImageInputError, match="not found: .*y.png"):
        load_image(tmp_path / "y.png", 8)


def test_grid_layout():
    ims = [Image.new("RGB", (4, 3)) for _ in range(5)]
    assert make_grid(ims, ncol=2, pad=1).size == (2 * 4 + 3, 3 * 3 + 4)
    assert make_grid(ims).size == (3 * 4 + 4 * 2, 2 * 3 + 3 * 2)


def test_write_run_is_all_or_nothing(tmp_path):
    ims = [(f"{k}.png", Image.new("RGB", (4, 4), (k * 50, 0, 0))) for k in range(3)]
    paths = write_run(tmp_path, ims, {"seed": 1}, tensors={"x_T": torch.ones(2, 2)})
    record = json.loads(paths["record"].read_text())
    assert record["images"] == ["images/0.png", "images/1.png", "images/2.png"]
    assert record["seed"] == 1 and record["tensors"] == "tensors.safetensors"
    assert torch.equal(load_file(str(paths["tensors"]))["x_T"], torch.ones(2, 2))
    before = {p.name: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    with pytest.raises(TypeError):  # the record cannot be written: nothing changes
        write_run(tmp_path, ims[:1], {"bad": object()})
    with pytest.raises(ValueError, match="unique plain file names"):
        write_run(tmp_path, [ims[0], ims[0]], {})
    assert {p.name: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".staging")]

    write_run(tmp_path, ims[:1], {"seed": 2})  # a new run replaces the old one entirely
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["0.png"]
    assert not (tmp_path / "tensors.safetensors").exists()
