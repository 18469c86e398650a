"""The analytic reader on real renders: exact on clean ones, robust on degraded ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

from unclip.data.shapes import (
    BACKGROUND,
    Scene,
    ShapeObject,
    objects_satisfy,
    render_scene,
    sample_scene,
)
from unclip.eval.reader import read_batch, read_objects, to_canvas


def degrade(image: Image.Image, noise: float, blur: float, size: int, seed: int) -> np.ndarray:
    """What a generator might produce: blurred, resampled, with per-pixel colour noise."""
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    if size != image.width:
        image = image.resize((size, size), Image.Resampling.BOX)
    rng = np.random.default_rng(seed)
    pixels = np.asarray(image, dtype=np.float64) + rng.normal(0, noise, (size, size, 3))
    return np.clip(pixels, 0, 255).round().astype(np.uint8)


def accuracy(images: list, scenes: list[Scene]) -> float:
    """Share of images whose read objects equal the scene's every attribute and relation."""
    right = [
        objects_satisfy(read_objects(image), scene.spec())
        for image, scene in zip(images, scenes, strict=True)
    ]
    return sum(right) / len(right)


SCENES = [sample_scene(seed) for seed in range(10_000, 10_400)]


def test_reads_every_attribute_of_clean_renders():
    """Shape, colour, size, position of every object and the relation: >= 99% of 400 scenes,
    singles and pairs separately."""
    for kind in ("single", "pair"):
        scenes = [s for s in SCENES if s.kind == kind]
        assert len(scenes) > 150
        assert accuracy([render_scene(s) for s in scenes], scenes) >= 0.99, kind


def test_measures_centre_and_half_size_to_sub_pixel_precision():
    worst_centre, worst_size = 0.0, 0.0
    for scene in SCENES[:150]:
        read = read_objects(render_scene(scene))
        assert len(read) == len(scene.objects)
        for obj in scene.objects:
            match = min(read, key=lambda o: math.dist(o.center, obj.center))
            worst_centre = max(worst_centre, math.dist(match.center, obj.center))
            worst_size = max(worst_size, abs(match.half_size - obj.half_size))
    assert worst_centre < 0.5 and worst_size < 0.5, (worst_centre, worst_size)


@pytest.mark.parametrize(
    ("noise", "blur", "size"),
    [(12.0, 0.0, 64), (0.0, 0.8, 64), (12.0, 0.8, 64), (8.0, 0.5, 32)],
    ids=["noise", "blur", "noise+blur", "32px"],
)
def test_robust_to_noise_blur_and_low_resolution(noise, blur, size):
    scenes = SCENES[:150]
    images = [degrade(render_scene(s), noise, blur, size, i) for i, s in enumerate(scenes)]
    assert accuracy(images, scenes) >= 0.98


def test_accepts_pil_arrays_and_tensors_alike():
    image = render_scene(SCENES[0])
    array = np.array(image)
    as_float = torch.from_numpy(array).permute(2, 0, 1).float() / 127.5 - 1.0
    as_uint8 = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    reference = read_objects(image)
    assert len(reference) == len(SCENES[0].objects)
    batch = read_batch(as_float[None].repeat(2, 1, 1, 1))
    for read in (read_objects(array), read_objects(as_float), read_objects(as_uint8), *batch):
        assert [o.describe() for o in read] == [o.describe() for o in reference]
        for a, b in zip(read, reference, strict=True):
            assert a.center == pytest.approx(b.center, abs=1e-4)
    np.testing.assert_allclose(to_canvas(as_float), array, atol=1e-4)


def test_background_and_noise_alone_hold_no_objects():
    assert read_objects(Image.new("RGB", (64, 64), BACKGROUND)) == []
    rng = np.random.default_rng(0)
    noisy = np.clip(np.array(BACKGROUND) + rng.normal(0, 12, (64, 64, 3)), 0, 255)
    assert read_objects(noisy.astype(np.uint8)) == []
    speck = Image.new("RGB", (64, 64), BACKGROUND)
    ImageDraw.Draw(speck).rectangle((30, 30, 32, 32), fill=(220, 40, 40))  # 9 px: noise
    assert read_objects(speck) == []


def test_off_palette_colour_is_unreadable():
    olive = ShapeObject("square", "yellow", (110, 120, 30), 12.0, (32.0, 32.0))
    (read,) = read_objects(render_scene(Scene((olive,))))
    assert read.color is None and read.shape == "square"


def test_touching_objects_of_two_colours_are_split():
    image = Image.new("RGB", (64, 64), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle((8, 20, 31, 43), fill=(220, 40, 40))  # red square, 24 px
    draw.rectangle((32, 26, 43, 37), fill=(50, 90, 230))  # blue square, 12 px, touching it
    read = read_objects(image)
    assert [(o.color, o.shape, o.size) for o in read] == [
        ("red", "square", "large"),
        ("blue", "square", "small"),
    ]


@pytest.mark.parametrize("height", [8, 1])
def test_stretched_blob_has_no_readable_shape(height):
    image = Image.new("RGB", (64, 64), BACKGROUND)
    ImageDraw.Draw(image).rectangle((8, 28, 55, 28 + height - 1), fill=(40, 200, 210))
    (read,) = read_objects(image)
    assert read.shape is None and read.color == "cyan"


def test_triangle_pointing_down_is_not_a_triangle():
    image = Image.new("RGB", (64, 64), BACKGROUND)
    ImageDraw.Draw(image).polygon([(16, 16), (47, 16), (31.5, 47)], fill=(40, 180, 60))
    (read,) = read_objects(image)
    assert read.taper < -0.5 and read.shape is None
