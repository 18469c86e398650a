"""Judge the objects read from one image against the scene spec of its prompt, with a reason.

A prompt of the benchmark describes the whole scene, so the image must hold exactly as many
objects as the prompt mentions (GenEval's counting rule, arXiv 2310.11513). The objects pass
when some assignment of detected objects to mentions matches every stated attribute and, for a
relation, the grammar's ``relation_between`` of the first mention's centre to the second's
holds. Otherwise the reason comes from the assignment with the fewest mismatches, and names a
colour swap between two objects as such (the colour-attribution failure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import permutations

from unclip.data.shapes.grammar import relation_between
from unclip.data.shapes.spec import ObjectSpec, SceneSpec
from unclip.eval.reader import DetectedObject

ATTRIBUTES: tuple[str, ...] = ("color", "shape", "size", "position")


@dataclass(frozen=True)
class Verdict:
    """Whether one image satisfies its prompt; ``reason`` is empty when it does."""

    prompt: str
    category: str
    passed: bool
    reason: str
    detected: tuple[DetectedObject, ...]

    def to_json(self) -> dict:
        return {
            "prompt": self.prompt,
            "category": self.category,
            "passed": self.passed,
            "reason": self.reason,
            "detected": [o.describe() for o in self.detected],
        }


@dataclass(frozen=True)
class _Assignment:
    order: tuple[DetectedObject, ...]
    mismatches: tuple[tuple[int, str, str, str], ...]  # (mention, attribute, wanted, got)
    relation: str | None  # the relation read between the first two mentions

    def cost(self, spec: SceneSpec) -> int:
        wrong_relation = spec.relation is not None and self.relation != spec.relation
        return len(self.mismatches) + int(wrong_relation)


def describe_mention(mention: ObjectSpec) -> str:
    """The words a prompt uses for an object: ``large red circle``."""
    words = (mention.size, mention.color, mention.shape, mention.position)
    return " ".join(w for w in words if w)


def judge(
    objects: Sequence[DetectedObject], spec: SceneSpec, prompt: str = "", category: str = ""
) -> Verdict:
    """The verdict of the detected ``objects`` against ``spec``."""
    detected = tuple(objects)

    def failed(reason: str) -> Verdict:
        return Verdict(prompt, category, False, reason, detected)

    if len(detected) != len(spec.objects):
        found = "; ".join(o.describe() for o in detected)
        return failed(
            f"want {len(spec.objects)} object(s), found {len(detected)}"
            + (f": {found}" if found else "")
        )
    # fewest mismatches; among equals, the assignment that gets the shapes right (an object is
    # identified by its shape first, as GenEval identifies it by its class)
    best = min(
        (_assign(order, spec) for order in permutations(detected)),
        key=lambda a: (a.cost(spec), sum(attr == "shape" for _, attr, _, _ in a.mismatches)),
    )
    if best.cost(spec) == 0:
        return Verdict(prompt, category, True, "", detected)
    if _colors_swapped(best, spec):
        a, b = best.order
        return failed(f"colours swapped: got {a.color} {a.shape} and {b.color} {b.shape}")
    reasons = [
        f"{spec.objects[m].shape or 'object'} {attribute}: want {want}, got {got}"
        for m, attribute, want, got in best.mismatches
    ]
    if spec.relation is not None and best.relation != spec.relation:
        reasons.append(f"relation: want {spec.relation}, got {best.relation or 'none (< 10 px)'}")
    return failed("; ".join(reasons))


def _assign(order: tuple[DetectedObject, ...], spec: SceneSpec) -> _Assignment:
    mismatches = []
    for m, (mention, obj) in enumerate(zip(spec.objects, order, strict=True)):
        for attribute in ATTRIBUTES:
            want, got = getattr(mention, attribute), getattr(obj, attribute)
            if want is not None and want != got:
                mismatches.append((m, attribute, want, got or "unreadable"))
    relation = relation_between(order[0].center, order[1].center) if len(order) == 2 else None
    return _Assignment(order, tuple(mismatches), relation)


def _colors_swapped(best: _Assignment, spec: SceneSpec) -> bool:
    """Two objects whose colours, exchanged, would make every colour right."""
    if len(best.order) != 2 or not all(m.color for m in spec.objects):
        return False
    (a, b), (want_a, want_b) = best.order, spec.objects
    wrong_colors = {m for m, attribute, _, _ in best.mismatches if attribute == "color"}
    return wrong_colors == {0, 1} and (a.color, b.color) == (want_b.color, want_a.color)
