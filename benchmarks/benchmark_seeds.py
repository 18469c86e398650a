"""The compositional benchmark of a trained stack over several seeds, at the base resolution.

One image per prompt makes a category's score noisy: on 48 prompts one seed can read 23 points
apart from another for the same checkpoints (session 14, the relation category). This script
samples the benchmark's prompts (``unclip.eval.prompts``, as ``evaluate.py`` builds them) through
prior and base decoder only, under bf16 autocast, once per seed, and prints each seed's
per-category scores, their mean and spread, the pair categories split into prompts whose two
objects share a colour and the others, and the most frequent failure reasons::

    .venv/bin/python benchmarks/benchmark_seeds.py --seeds 0 1 2 \\
        --prior logs/train_prior/shapes_full/checkpoints/final.ckpt \\
        --decoder logs/train_decoder/shapes_full/checkpoints/final.ckpt \\
        --clip data/clip/shapes_full_clip.pt

Seed ``s`` draws the same noise as ``evaluate.py seed=s batch_size=32`` does (chunks of
``--batch`` prompts, the chunk's index added to the seed). The base decoder's 32 px samples
read like the upsampled 64 px ones (the reader resamples to 64 px): with session 13's stack,
seed 0 read 75.3% (mean) at 32 px and 75.0% after the upsampler. ``--embeddings true-renders``
skips the prior: the decoder reads the CLIP image embedding of a true render of each prompt
(``unclip.eval.compositional.render_prompts``, as the evaluation's ceiling draws it), so the
gap to the default (``prior``) is what the prior costs on these prompts. ``--categories
two_objects relation`` samples only those categories' prompts (the same prompts, in chunks of
their own, so a seed draws other noise than in the full run) at a fraction of the time: the
way to many seeds of the categories in doubt on a CPU. ``--device cuda``
samples on a GPU (about 10 s per seed on one H200 with ``--batch 96``; 2 to 9 minutes on 2
cores).
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import time

import numpy as np
import torch

from unclip.data.transforms import images_to_tensor, resize_center_crop
from unclip.eval.compositional import render_prompts, score
from unclip.eval.prompts import CATEGORIES, BenchmarkPrompt, build_prompt_set
from unclip.pipeline import DecoderSettings, PriorSettings, UnCLIPPipeline


def failure_kind(reason: str) -> str:
    """A verdict's reason without the objects it names: ``found 3``, ``circle shape``..."""
    reason = re.sub(r"want \d+ object\(s\), found (\d+).*", r"found \1", reason)
    return re.sub(r":.*", "", reason)


def same_color(prompt: BenchmarkPrompt) -> bool:
    """Whether a prompt names two objects of one colour (told apart by shape alone)."""
    objects = prompt.spec.objects
    return len(objects) == 2 and objects[0].color == objects[1].color


def true_render_images(pipe: UnCLIPPipeline, prompts: list[BenchmarkPrompt], seed: int,
                       decoder: DecoderSettings) -> torch.Tensor:
    """The base decoder's images from the CLIP image embeddings of true renders of ``prompts``
    (no prior); ``decode`` reranks candidates against the caption, as in ``text_to_image``."""
    side = min(pipe.clip.identity["image_size"])
    renders = [np.asarray(resize_center_crop(image.convert("RGB"), side), dtype=np.uint8)
               for image in render_prompts(prompts, seed)]
    z = pipe.encode_images(images_to_tensor(renders))
    text = pipe.encode_text([q.text for q in prompts])
    return pipe.decode(z, text=text, decoder_settings=decoder, seed=seed, upsample=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prior", required=True)
    p.add_argument("--decoder", required=True)
    p.add_argument("--clip", required=True, help="the shapes CLIP's exported weights")
    p.add_argument("--clip-model", default="shapes-clip")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--per-category", type=int, default=48)
    p.add_argument("--categories", nargs="+", choices=CATEGORIES, default=list(CATEGORIES),
                   help="the benchmark's categories to sample (default: all six)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--prior-sampler", default="ddim", help="ddpm, ddim, dpmpp_2m or heun")
    p.add_argument("--prior-steps", type=int, default=10)
    p.add_argument("--prior-guidance", type=float, default=2.0)
    p.add_argument("--prior-best-of", type=int, default=2)
    p.add_argument("--prior-clamp-l2norm", action="store_true",
                   help="project the prior's x0 predictions onto the l2 embedding sphere "
                        "(PriorSettings.clamp_l2norm)")
    p.add_argument("--decoder-guidance", type=float, default=2.0)
    p.add_argument("--decoder-steps", type=int, default=20)
    p.add_argument("--decoder-best-of", type=int, default=1,
                   help="decoded candidates per image, reranked by CLIP (DecoderSettings.best_of)")
    p.add_argument("--decoder-text-guidance", type=float, default=None,
                   help="the caption's own guidance scale (DecoderSettings.text_guidance_scale); "
                        "default: one scale for embedding and caption")
    p.add_argument("--reasons", type=int, default=10, help="failure reasons printed")
    p.add_argument("--device", default="cpu", help="cpu or cuda (bf16 autocast on either)")
    p.add_argument("--embeddings", choices=("prior", "true-renders"), default="prior",
                   help="the decoder's image embeddings: the prior's samples, or the CLIP "
                        "embeddings of true renders of the prompts (what the prior costs)")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    pipe = UnCLIPPipeline.from_checkpoints(
        args.prior, args.decoder, [], clip={"model_name": args.clip_model,
                                            "pretrained": args.clip},
        device=args.device, autocast=True)
    prompts = [q for q in build_prompt_set(args.per_category, 0) if q.category in args.categories]
    prior = PriorSettings(sampler=args.prior_sampler, steps=args.prior_steps,
                          guidance_scale=args.prior_guidance, best_of=args.prior_best_of,
                          clamp_l2norm=args.prior_clamp_l2norm)
    decoder = DecoderSettings(sampler="dpmpp_2m", steps=args.decoder_steps, spacing="trailing",
                              guidance_scale=args.decoder_guidance, best_of=args.decoder_best_of,
                              text_guidance_scale=args.decoder_text_guidance)
    rows: list[dict[str, float]] = []
    reasons: collections.Counter = collections.Counter()
    by_color: collections.Counter = collections.Counter()  # (category, same, passed) -> images
    for seed in args.seeds:
        start = time.perf_counter()
        images = []
        for k, first in enumerate(range(0, len(prompts), args.batch)):
            chunk = prompts[first:first + args.batch]
            if args.embeddings == "true-renders":
                images.append(true_render_images(pipe, chunk, seed + k, decoder))
            else:
                images.append(pipe.text_to_image([q.text for q in chunk], prior_settings=prior,
                                                 decoder_settings=decoder, seed=seed + k).images)
        result = score(torch.cat(images).float().cpu(), prompts)
        rows.append({**result.per_category, "mean": result.mean})
        reasons.update((v.category, failure_kind(v.reason)) for v in result.verdicts
                       if not v.passed)
        by_color.update((q.category, same_color(q), v.passed)
                        for q, v in zip(prompts, result.verdicts, strict=True))
        cells = "  ".join(f"{100 * v:5.1f}" for v in rows[-1].values())
        print(f"seed {seed:3d}  {cells}   ({time.perf_counter() - start:.0f} s)", flush=True)
    names = list(rows[0])
    print("columns: " + ", ".join(names))
    for label, fn in (("mean", statistics.fmean), ("min", min), ("max", max)):
        cells = "  ".join(f"{100 * fn([r[n] for r in rows]):5.1f}" for n in names)
        print(f"{label:8s}  {cells}")
    for category in ("two_objects", "relation"):
        if category not in args.categories:
            continue
        cells = []
        for same, label in ((True, "one colour"), (False, "two colours")):
            passed, failed = by_color[category, same, True], by_color[category, same, False]
            if passed + failed:
                cells.append(f"{label} {100 * passed / (passed + failed):5.1f}% of "
                             f"{passed + failed}")
        print(f"{category:12s} " + ", ".join(cells))
    print(f"most frequent failures over {len(args.seeds)} seed(s):")
    for (category, kind), count in reasons.most_common(args.reasons):
        print(f"  {count:4d}  {category}: {kind}")


if __name__ == "__main__":
    main()
