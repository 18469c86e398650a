"""Draw a scene: shapes at 4x resolution, then an area (box) filter down to the canvas."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

from .grammar import BACKGROUND, CANVAS_SIZE, SUPERSAMPLE
from .scene import Scene, ShapeObject


def render_scene(scene: Scene, supersample: int = SUPERSAMPLE) -> Image.Image:
    """The scene as a ``CANVAS_SIZE`` x ``CANVAS_SIZE`` RGB image, antialiased by drawing at
    ``supersample`` times the resolution and averaging each block of pixels."""
    big = CANVAS_SIZE * supersample
    image = Image.new("RGB", (big, big), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        _draw_object(draw, obj, supersample)
    if supersample == 1:
        return image
    return image.resize((CANVAS_SIZE, CANVAS_SIZE), Image.Resampling.BOX)


def encode_png(image: Image.Image, compress_level: int = 6) -> bytes:
    """PNG bytes of an image (lossless, so the pixels are the ground truth)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def _draw_object(draw: ImageDraw.ImageDraw, obj: ShapeObject, scale: int) -> None:
    # the bbox [x0, x1) in canvas px covers supersampled pixels x0*scale .. x1*scale - 1
    x0, y0, x1, y1 = (round(v * scale) for v in obj.bbox)
    right, bottom = x1 - 1, y1 - 1
    if obj.shape == "square":
        draw.rectangle((x0, y0, right, bottom), fill=obj.rgb)
    elif obj.shape == "circle":
        draw.ellipse((x0, y0, right, bottom), fill=obj.rgb)
    elif obj.shape == "triangle":  # isosceles, pointing up, base width = height
        draw.polygon([(x0, bottom), (right, bottom), ((x0 + right) / 2, y0)], fill=obj.rgb)
    else:  # ShapeObject validates shapes, so this is a grammar/renderer mismatch
        raise ValueError(f"no renderer for shape {obj.shape!r}")
