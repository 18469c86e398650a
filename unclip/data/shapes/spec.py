"""Constraints on a scene, as a caption states them: the mentioned attributes of each object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from itertools import permutations

from .grammar import COLORS, POSITIONS, RELATIONS, SHAPES, SIZES, relation_between


@dataclass(frozen=True)
class ObjectSpec:
    """Attributes a caption states about one object; ``None`` means unconstrained."""

    shape: str | None = None
    color: str | None = None
    size: str | None = None
    position: str | None = None

    def __post_init__(self) -> None:
        for name, vocabulary in (
            ("shape", SHAPES),
            ("color", tuple(COLORS)),
            ("size", tuple(SIZES)),
            ("position", POSITIONS),
        ):
            value = getattr(self, name)
            if value is not None and value not in vocabulary:
                raise ValueError(f"unknown {name} {value!r}; expected one of {vocabulary}")

    def matches(self, obj: object) -> bool:
        """Whether an object (anything with shape/color/size/position attributes) satisfies this."""
        return all(
            getattr(self, f.name) is None or getattr(self, f.name) == getattr(obj, f.name)
            for f in fields(self)
        )

    def to_json(self) -> dict:
        """The stated attributes only."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


@dataclass(frozen=True)
class SceneSpec:
    """What a caption says: one or two objects and, for two, optionally the relation of the first
    to the second."""

    objects: tuple[ObjectSpec, ...]
    relation: str | None = None

    def __post_init__(self) -> None:
        if len(self.objects) not in (1, 2):
            raise ValueError(f"a scene has 1 or 2 objects, not {len(self.objects)}")
        if self.relation is not None:
            if self.relation not in RELATIONS:
                raise ValueError(f"unknown relation {self.relation!r}; expected one of {RELATIONS}")
            if len(self.objects) != 2:
                raise ValueError("a relation needs exactly two objects")


def objects_satisfy(objects: Sequence[object], spec: SceneSpec) -> bool:
    """Whether ``objects`` (with shape/color/size/position/center attributes) are exactly the
    spec's objects in some order, with the spec's relation between the first two mentioned."""
    if len(spec.objects) != len(objects):
        return False
    for order in permutations(objects):
        if not all(s.matches(o) for s, o in zip(spec.objects, order, strict=True)):
            continue
        if spec.relation is None or relation_between(
            order[0].center, order[1].center
        ) == spec.relation:
            return True
    return False
