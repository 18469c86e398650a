"""Rendering: antialiased, objects only inside their boxes, and read back exactly from pixels."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial.distance import cdist

from unclip.data.shapes import (
    BACKGROUND,
    CANVAS_SIZE,
    Scene,
    ShapeObject,
    relation_between,
    render_scene,
    sample_scene,
)
from unclip.eval.reader import read_objects

SCENES = [sample_scene(seed) for seed in range(1000, 1300)]


def _foreground(image) -> np.ndarray:
    return (np.asarray(image) != np.asarray(BACKGROUND, dtype=np.uint8)).any(axis=-1)


def test_pixels_give_back_the_ground_truth() -> None:
    for scene in SCENES:
        found = read_objects(render_scene(scene))
        assert len(found) == len(scene.objects), scene
        truth = scene.objects  # each detection paired with the nearest true centre
        found = [min(found, key=lambda d, o=o: np.hypot(*np.subtract(d.center, o.center)))
                 for o in truth]
        for obj, det in zip(truth, found, strict=True):
            assert (det.shape, det.color, det.size, det.position) == (
                obj.shape, obj.color, obj.size, obj.position), (scene, det)
            assert np.allclose(det.center, obj.center, atol=0.35), (obj, det)
            assert abs(det.half_size - obj.half_size) < 0.6, (obj, det)
        if scene.kind == "pair":
            assert relation_between(found[0].center, found[1].center) == relation_between(
                truth[0].center, truth[1].center)


def test_nothing_is_drawn_outside_the_boxes() -> None:
    ys, xs = np.mgrid[0:CANVAS_SIZE, 0:CANVAS_SIZE]
    for scene in SCENES:
        foreground = _foreground(render_scene(scene))
        allowed = np.zeros_like(foreground)
        for x0, y0, x1, y1 in (o.bbox for o in scene.objects):
            allowed |= (xs + 1 > x0) & (xs < x1) & (ys + 1 > y0) & (ys < y1)  # pixel meets bbox
        assert not (foreground & ~allowed).any()


def test_two_objects_never_touch() -> None:
    for scene in (s for s in SCENES if s.kind == "pair"):
        labels, count = ndimage.label(_foreground(render_scene(scene)), structure=np.ones((3, 3)))
        assert count == 2
        a, b = (np.argwhere(labels == k) for k in (1, 2))
        assert cdist(a, b, "chebyshev").min() >= 3  # pixel rows/columns, as the 3 px rule says


def test_edges_are_antialiased() -> None:
    obj = ShapeObject("circle", "red", (220, 40, 40), 12.0, (32.0, 32.0))
    smooth = np.asarray(render_scene(Scene((obj,))))
    hard = np.asarray(render_scene(Scene((obj,)), supersample=1).resize((64, 64)))
    assert len(np.unique(hard.reshape(-1, 3), axis=0)) == 2
    assert len(np.unique(smooth.reshape(-1, 3), axis=0)) > 10


def test_triangle_points_up() -> None:
    obj = ShapeObject("triangle", "green", (40, 180, 60), 12.0, (32.0, 32.0))
    mask = _foreground(render_scene(Scene((obj,))))
    widths = mask.sum(axis=1)
    rows = np.nonzero(widths)[0]
    assert widths[rows[0]] < 4 and widths[rows[-2]] >= 22  # apex on top, base at the bottom


def test_render_from_json_reproduces_the_image() -> None:
    for scene in SCENES[:20]:
        again = Scene.from_json(scene.to_json())
        assert np.array_equal(np.asarray(render_scene(scene)), np.asarray(render_scene(again)))
