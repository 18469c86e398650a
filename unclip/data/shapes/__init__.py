"""The shapes dataset: grammar, scenes, rendering, captions and the shard writer.

Plain Python (no torch), so evaluation and zero-shot checks can import it cheaply::

    from unclip.data.shapes import sample_scene, render_scene, parse_caption, single_caption
"""

from .captions import (
    CANONICAL_FORMS,
    CAPTION_FORMS,
    FORMS,
    Caption,
    CaptionForm,
    ParsedCaption,
    build_caption,
    canonical_captions,
    pair_caption,
    parse_caption,
    sample_caption,
    single_caption,
)
from .grammar import (
    BACKGROUND,
    CANVAS_SIZE,
    COLORS,
    MIN_GAP,
    MIN_RELATION_OFFSET,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    inverse_relation,
    position_of,
    relation_between,
)
from .render import encode_png, render_scene
from .scene import SPLITS, Scene, ShapeObject, sample_scene, sample_seed
from .spec import ObjectSpec, SceneSpec, objects_satisfy

__all__ = [
    "BACKGROUND", "CANONICAL_FORMS", "CANVAS_SIZE", "CAPTION_FORMS", "COLORS", "FORMS",
    "MIN_GAP", "MIN_RELATION_OFFSET", "POSITIONS", "RELATIONS", "SHAPES", "SIZES", "SPLITS",
    "Caption", "CaptionForm", "ObjectSpec", "ParsedCaption", "Scene",
    "SceneSpec", "ShapeObject", "build_caption", "canonical_captions",
    "encode_png", "inverse_relation", "objects_satisfy", "pair_caption", "parse_caption",
    "position_of", "relation_between", "render_scene", "sample_caption", "sample_scene",
    "sample_seed", "single_caption",
]
