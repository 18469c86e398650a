"""How faithfully a decoder renders whole held-out scenes from their true CLIP image embeddings.

The decoder's half of the compositional benchmark (``unclip.eval``): for held-out shapes images
the decoder samples from each image's true CLIP image embedding (no prior), the analytic reader
(``unclip.eval.reader``) reads the samples, and the benchmark's judge (``unclip.eval.verdict``)
holds what it finds against the image's own ground truth:

- ``objects``: exactly the source's number of objects, each of the source's colour and shape
  (for pairs, the benchmark's "two objects" question; a colour swap fails it);
- ``position`` and ``size`` (singles): and the source object's ninth of the image / size word,
  the benchmark's position and size questions (a decoder that ignores where the embedding puts
  the object scores about chance, 1/9, on ``position``);
- ``relation`` (pairs): and the source's spatial relation of its first object to its second.

Reported per scene kind (``single``, ``pair``, and ``one_colour_pair``: the pairs whose two
objects share a colour, the hardest, told apart by shape alone) for the samples and, as the
ceiling, for the real images at the decoder's resolution. Set against the benchmark's scores of
the whole stack (prior + decoder), this splits the stack's errors between the prior and the
decoder. ``--scenes pairs`` or ``one_colour_pairs`` reads only those scenes (the first ``--n``
of them in the shards), for a tighter figure on a rare kind.

    python -m unclip.lit.scene_fidelity --decoder logs/.../final.ckpt \\
        --shards 'data/embeddings/shapes_full/val/*.tar' --n 512 --guidance-scale 2
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from unclip.data.rebalance import one_color_pair
from unclip.data.shapes.scene import Scene
from unclip.data.shapes.spec import ObjectSpec, SceneSpec
from unclip.eval.reader import read_batch
from unclip.eval.verdict import judge
from unclip.lit.decoder import DecoderModule, load_decoder, resize
from unclip.lit.decoder_quality import base_inputs, sample_in_chunks


def scene_specs(meta: Mapping[str, Any]) -> dict[str, SceneSpec]:
    """The questions put to an image of the scene ``meta`` (its ``.json`` ground truth):
    ``objects`` (colour+shape of every object); for a single object ``position`` and ``size``,
    for a pair ``relation`` as well."""
    scene = Scene.from_json(dict(meta))
    objects = tuple(ObjectSpec(shape=o.shape, color=o.color) for o in scene.objects)
    specs = {"objects": SceneSpec(objects)}
    if len(objects) == 1:
        (o,) = scene.objects
        specs["position"] = SceneSpec((ObjectSpec(o.shape, o.color, position=o.position),))
        specs["size"] = SceneSpec((ObjectSpec(o.shape, o.color, size=o.size),))
    if len(objects) == 2:
        specs["relation"] = SceneSpec(objects, scene.relation)
    return specs


SCENES = {
    "all": lambda meta: True,
    "pairs": lambda meta: len(meta["objects"]) == 2,
    "one_colour_pairs": lambda meta: one_color_pair(meta["objects"], "a scene", "--scenes"),
}


def scene_kinds(meta: Mapping[str, Any]) -> list[str]:
    """The kinds a scene is reported under: ``single``; or ``pair``, and ``one_colour_pair``
    too when its two objects share a colour."""
    if len(meta["objects"]) == 1:
        return ["single"]
    return ["pair", "one_colour_pair"] if one_color_pair(meta["objects"], "a scene",
                                                         "scene_figures") else ["pair"]


def scene_figures(images: torch.Tensor, metas: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per scene kind (``scene_kinds``): the count ``n`` and the fraction of ``images``
    (N, 3, H, W) in [-1, 1] that pass each question of ``scene_specs``."""
    if len(images) != len(metas):
        raise ValueError(f"{len(images)} images for {len(metas)} ground-truth records")
    passed: dict[str, dict[str, list[bool]]] = {}
    for objects, meta in zip(read_batch(images.float().cpu()), metas, strict=True):
        for question, spec in scene_specs(meta).items():
            verdict = judge(objects, spec).passed
            for kind in scene_kinds(meta):
                passed.setdefault(kind, {}).setdefault(question, []).append(verdict)
    return {kind: {"n": len(q["objects"]),
                   **{name: sum(v) / len(v) for name, v in q.items()}}
            for kind, q in sorted(passed.items())}


@torch.no_grad()
def scene_fidelity(decoder: DecoderModule, batch: Mapping[str, Any], seed: int = 0,
                   chunk: int = 64, **sample_options: Any) -> dict[str, Any]:
    """``scene_figures`` of the decoder's samples from ``batch['image_emb']`` (and the caption
    tokens, for a decoder trained on them: ``base_inputs``) and of the real
    ``batch['image']`` at the decoder's resolution; ``sample_options`` go to
    ``DecoderModule.sample``."""
    samples = sample_in_chunks(decoder, base_inputs(decoder, batch),
                               torch.Generator(device=decoder.device).manual_seed(seed), chunk,
                               **sample_options)
    r = decoder.hparams["resolution"]
    return {"resolution": r, "sampling": {**decoder.hparams["sampling"], **sample_options},
            "samples": scene_figures(samples, batch["meta"]),
            "real": scene_figures(resize(batch["image"].float(), r), batch["meta"])}


def load_scenes(shards: str, n: int, scenes: str = "all", batch_size: int = 256
                ) -> dict[str, Any]:
    """The first ``n`` samples of embedding shards (with images) whose scene is of the kind
    ``scenes`` (a key of :data:`SCENES`), as one batch; a ``ValueError`` when the shards hold
    fewer."""
    from unclip.data.embeddings import EmbeddingDataModule

    if scenes not in SCENES:
        raise ValueError(f"--scenes {scenes!r}: choose one of {', '.join(SCENES)}")
    data = EmbeddingDataModule(test_shards=shards, batch_size=batch_size, num_workers=0,
                               with_images=True)
    data.setup("test")
    parts: list[dict[str, Any]] = []
    found = 0
    for batch in data.test_dataloader():
        rows = [i for i, meta in enumerate(batch["meta"]) if SCENES[scenes](meta)][: n - found]
        parts.append({k: v[rows] if isinstance(v, torch.Tensor) else [v[i] for i in rows]
                      for k, v in batch.items()})
        found += len(rows)
        if found == n:
            return {k: torch.cat([p[k] for p in parts]) if isinstance(parts[0][k], torch.Tensor)
                    else [x for p in parts for x in p[k]] for k in parts[0]}
    raise ValueError(f"{shards} holds {found} scenes of the kind {scenes!r}, fewer than --n {n}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: print the figures as JSON."""
    p = argparse.ArgumentParser(prog="python -m unclip.lit.scene_fidelity",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--decoder", required=True, help="base decoder checkpoint")
    p.add_argument("--shards", default="data/embeddings/shapes/val/*.tar",
                   help="embedding shards stored with their images (with_images)")
    p.add_argument("--n", type=int, default=256, help="held-out samples read (all kinds)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--sampler", default="dpmpp_2m")
    p.add_argument("--guidance-scale", type=float, default=1.0)
    p.add_argument("--text-guidance-scale", type=float, default=None,
                   help="two-condition guidance: this on the caption on top of the image "
                        "embedding's --guidance-scale (a caption-conditioned decoder)")
    p.add_argument("--scenes", default="all", choices=sorted(SCENES),
                   help="read only scenes of this kind")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_grad_enabled(False)
    result = scene_fidelity(load_decoder(args.decoder),
                            load_scenes(args.shards, args.n, args.scenes),
                            seed=args.seed, steps=args.steps, sampler=args.sampler,
                            guidance_scale=args.guidance_scale,
                            text_guidance_scale=args.text_guidance_scale)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
