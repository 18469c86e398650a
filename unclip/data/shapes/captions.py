"""Caption forms of the shapes grammar: templates, builders, sampling and parsing.

The four canonical forms of DESIGN.md are always in the caption distribution (60% of captions);
paraphrases add variety. Every form, canonical or not, parses back with :func:`parse_caption`.
``a`` becomes ``an`` before a vowel (``an orange circle``); parsing accepts either article.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass

from .grammar import COLORS, POSITIONS, RELATIONS, SHAPES, SIZES, relation_between
from .scene import Scene
from .spec import ObjectSpec, SceneSpec


@dataclass(frozen=True)
class CaptionForm:
    """A caption template. Slots: ``{size0} {color0} {shape0} {position0} {relation} {size1}
    {color1} {shape1}``; object 0 is mentioned first, ``{relation}`` is 0's relation to 1."""

    name: str
    template: str
    num_objects: int
    canonical: bool
    weight: float  # relative frequency among the forms for the same number of objects

    @property
    def slots(self) -> tuple[str, ...]:
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.template) if f)

    @property
    def needs_relation(self) -> bool:
        return "relation" in self.slots


_P1, _P2 = 0.4 / 7, 0.4 / 5  # the paraphrases share 40% of the single / pair captions
CAPTION_FORMS: tuple[CaptionForm, ...] = (
    # canonical (DESIGN.md): evaluation prompts are written in these
    CaptionForm(
        "size_color_shape_position", "a {size0} {color0} {shape0} {position0}", 1, True, 0.3
    ),
    CaptionForm("color_shape", "a {color0} {shape0}", 1, True, 0.3),
    CaptionForm("relation", "a {color0} {shape0} {relation} a {color1} {shape1}", 2, True, 0.3),
    CaptionForm("conjunction", "a {color0} {shape0} and a {color1} {shape1}", 2, True, 0.3),
    # paraphrases
    CaptionForm("size_color_shape", "a {size0} {color0} {shape0}", 1, False, _P1),
    CaptionForm("color_shape_position", "a {color0} {shape0} {position0}", 1, False, _P1),
    CaptionForm("shape_position", "a {shape0} {position0}", 1, False, _P1),
    CaptionForm("size_shape", "a {size0} {shape0}", 1, False, _P1),
    CaptionForm("there_is", "there is a {size0} {color0} {shape0} {position0}", 1, False, _P1),
    CaptionForm("image_of", "an image of a {color0} {shape0} on a dark background", 1, False, _P1),
    CaptionForm("position_first", "{position0}, a {size0} {color0} {shape0}", 1, False, _P1),
    CaptionForm(
        "size_relation",
        "a {size0} {color0} {shape0} {relation} a {size1} {color1} {shape1}",
        2, False, _P2,
    ),
    CaptionForm("relation_partial", "a {color0} {shape0} {relation} a {shape1}", 2, False, _P2),
    CaptionForm(
        "image_of_relation", "an image of a {color0} {shape0} {relation} a {color1} {shape1}",
        2, False, _P2,
    ),
    CaptionForm("two_shapes", "two shapes: a {color0} {shape0} and a {color1} {shape1}", 2, False,
                _P2),
    CaptionForm(
        "size_conjunction", "a {size0} {color0} {shape0} and a {size1} {color1} {shape1}",
        2, False, _P2,
    ),
)
FORMS: dict[str, CaptionForm] = {f.name: f for f in CAPTION_FORMS}
CANONICAL_FORMS: tuple[str, ...] = tuple(f.name for f in CAPTION_FORMS if f.canonical)

_VOCABULARY = {
    "size": tuple(SIZES),
    "color": tuple(COLORS),
    "shape": SHAPES,
    "position": POSITIONS,
    "relation": RELATIONS,
}


@dataclass(frozen=True)
class Caption:
    """A caption of a scene: its text, form, what it states, and which scene object each mention
    refers to (``order[i]`` is the scene index of mention ``i``)."""

    text: str
    form: str
    spec: SceneSpec
    order: tuple[int, ...]

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "form": self.form,
            "canonical": FORMS[self.form].canonical,
            "mentions": [
                {"object": index, **mention.to_json()}
                for index, mention in zip(self.order, self.spec.objects, strict=True)
            ],
            "relation": self.spec.relation,
        }


@dataclass(frozen=True)
class ParsedCaption:
    """The result of :func:`parse_caption`."""

    form: str
    canonical: bool
    spec: SceneSpec


def build_caption(form: str, spec: SceneSpec) -> str:
    """The caption of ``form`` stating ``spec``; raises if the spec lacks an attribute the form
    names or the object counts differ."""
    if form not in FORMS:
        raise ValueError(f"unknown caption form {form!r}; expected one of {tuple(FORMS)}")
    template = FORMS[form]
    if len(spec.objects) != template.num_objects:
        raise ValueError(f"form {form!r} mentions {template.num_objects} objects, spec has "
                         f"{len(spec.objects)}")
    values = {}
    for slot in template.slots:
        value = spec.relation if slot == "relation" else getattr(
            spec.objects[int(slot[-1])], slot[:-1]
        )
        if value is None:
            raise ValueError(f"form {form!r} needs {slot}, which the spec leaves out: {spec}")
        values[slot] = value
    return _with_articles(template.template.format(**values))


def single_caption(
    color: str, shape: str, size: str | None = None, position: str | None = None
) -> str:
    """``a {size} {color} {shape} {position}`` with the given attributes, e.g.
    ``single_caption("red", "circle", "large", "in the top left")``; with neither size nor
    position: ``a {color} {shape}``."""
    form = {
        (True, True): "size_color_shape_position",
        (False, False): "color_shape",
        (True, False): "size_color_shape",
        (False, True): "color_shape_position",
    }[(size is not None, position is not None)]
    return build_caption(form, SceneSpec((ObjectSpec(shape, color, size, position),)))


def pair_caption(
    color_a: str, shape_a: str, color_b: str, shape_b: str, relation: str | None = None
) -> str:
    """``a {color} {shape} {relation} a {color} {shape}``, or with no relation
    ``a {color} {shape} and a {color} {shape}``."""
    spec = SceneSpec((ObjectSpec(shape_a, color_a), ObjectSpec(shape_b, color_b)), relation)
    return build_caption("relation" if relation is not None else "conjunction", spec)


def canonical_captions(scene: Scene) -> dict[str, str]:
    """Every canonical caption true of the scene, by form (objects in scene order)."""
    full = scene.spec()
    result = {}
    for name in CANONICAL_FORMS:
        form = FORMS[name]
        if form.num_objects != len(scene.objects) or (form.needs_relation and not full.relation):
            continue
        result[name] = build_caption(name, full)
    return result


def sample_caption(scene: Scene, rng: random.Random) -> Caption:
    """A random caption true of the scene: a form (by weight), a mention order, and the text."""
    full = scene.spec()
    forms = [
        f for f in CAPTION_FORMS
        if f.num_objects == len(scene.objects) and not (f.needs_relation and full.relation is None)
    ]
    form = rng.choices(forms, weights=[f.weight for f in forms])[0]
    order = tuple(rng.sample(range(len(scene.objects)), len(scene.objects)))
    mentioned = tuple(_mention(full.objects[i], form, k) for k, i in enumerate(order))
    relation = None
    if form.needs_relation:
        relation = relation_between(scene.objects[order[0]].center, scene.objects[order[1]].center)
    spec = SceneSpec(mentioned, relation)
    return Caption(build_caption(form.name, spec), form.name, spec, order)


def parse_caption(caption: str) -> ParsedCaption:
    """Parse a caption of any form of the grammar; raises ValueError naming the caption when it
    is not one."""
    text = _normalise(caption)
    for form, pattern in _PATTERNS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        groups = match.groupdict()
        objects = tuple(
            ObjectSpec(
                shape=groups.get(f"shape{k}"),
                color=groups.get(f"color{k}"),
                size=groups.get(f"size{k}"),
                position=groups.get(f"position{k}"),
            )
            for k in range(form.num_objects)
        )
        spec = SceneSpec(objects, groups.get("relation"))
        return ParsedCaption(form.name, form.canonical, spec)
    raise ValueError(f"caption {caption!r} is in none of the shapes caption forms")


def _mention(obj: ObjectSpec, form: CaptionForm, k: int) -> ObjectSpec:
    """The attributes of ``obj`` that ``form`` states for mention ``k``."""
    said = {slot[:-1] for slot in form.slots if slot.endswith(str(k))}
    return ObjectSpec(*(getattr(obj, a) if a in said else None
                        for a in ("shape", "color", "size", "position")))


def _with_articles(text: str) -> str:
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def _normalise(text: str) -> str:
    text = " ".join(text.lower().strip().rstrip(".").split())
    return re.sub(r"\ban\b", "a", text)


def _compile(form: CaptionForm) -> re.Pattern:
    parts = []
    for literal, slot, _, _ in string.Formatter().parse(_normalise(form.template)):
        parts.append(re.escape(literal))
        if slot:
            words = _VOCABULARY[slot.rstrip("01")]
            parts.append(f"(?P<{slot}>{'|'.join(re.escape(w) for w in words)})")
    return re.compile("".join(parts))


_PATTERNS: tuple[tuple[CaptionForm, re.Pattern], ...] = tuple(
    (f, _compile(f)) for f in CAPTION_FORMS
)
