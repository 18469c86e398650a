"""Quality of a trained diffusion prior on held-out pairs, per sampler, step count and best-of-n.

    .venv/bin/python benchmarks/prior_quality.py \
        --ckpt logs/train_prior/<run>/checkpoints/last.ckpt \
        --embeddings data/embeddings/shapes --split val --limit 2048

Prints one row per (sampler, steps, best_of) with the mean over the held-out samples of:
cos(pred, true), the baseline cos(text, true), cos(pred, unrelated caption's image), top-1
retrieval of the true image among each batch, and the same-caption ceiling (cosine between the
true embedding and the mean training embedding of its caption), with pred/ceiling on the
samples whose caption occurs in training. Also the wall time per sample, and for reference what a
perfect sampler scores: cos(true, a random training embedding of the same caption). Seeded.

With ``--diversity`` each row also gets ``seed_cos``, the mean cosine between two draws for the
same caption under different seeds (1 = every draw the same, the conditional mode or mean;
a perfect sampler scores the cosine of two random training embeddings of the caption): the
price of mode-seeking settings (few deterministic steps, best-of-n, guidance) in diversity.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import torch

from unclip.data.embeddings import EmbeddingDataModule
from unclip.lit.prior import load_prior
from unclip.lit.prior_metrics import CaptionMeans, ceiling_cosine, cosine, prior_metrics

# (sampler, steps): the paper's DDPM-64, and fast deterministic samplers at 10 and 20 steps
DEFAULT_RUNS = ["ddpm:64", "ddim:10", "ddim:20", "dpmpp_2m:10", "dpmpp_2m:20"]


def held_out_batches(data: EmbeddingDataModule, split: str, limit: int) -> list[dict]:
    """The first ``limit`` samples of ``split`` (deterministic order), as batches."""
    loader = data.val_dataloader() if split == "val" else data.test_dataloader()
    batches, n = [], 0
    for batch in loader:
        batches.append(batch)
        n += len(batch["caption"])
        if n >= limit:
            break
    return batches


def draw(prior, batch: dict, seed: int, **options) -> torch.Tensor:
    """Prior samples (B, D) for one held-out batch under one seed (bf16 autocast)."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return prior.sample(batch["text_emb"], batch["text_tokens"], batch["text_mask"],
                            generator=torch.Generator().manual_seed(seed), **options)


# a second draw's seed offset for ``seed_cos``: disjoint from the ``seed + i`` of the batches
SECOND_DRAW_OFFSET = 1_000_003


def evaluate(prior, batches, sampler: str, steps: int, best_of: int, means, seed: int = 0,
             guidance_scale: float = 1.0, spacing: str | None = None,
             diversity: bool = False) -> dict[str, float]:
    """Mean of every metric over ``batches`` (NaN entries skipped), seconds per sample, and the
    paired gain over the text baseline, cos(pred, true) - cos(text, true), with its standard
    error (``gain_over_text``, ``gain_se``): 'clearly above the baseline' means many SEs.
    With ``diversity``, ``seed_cos``: mean cos(draw, second draw under another seed)."""
    options = {"sampler": sampler, "steps": steps, "best_of": best_of,
               "guidance_scale": guidance_scale, **({"spacing": spacing} if spacing else {})}
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    gains: list[torch.Tensor] = []
    spreads: list[torch.Tensor] = []
    start, n = time.perf_counter(), 0
    for i, batch in enumerate(batches):
        pred = draw(prior, batch, seed + i, **options)
        n += len(pred)
        if diversity:
            other = draw(prior, batch, seed + i + SECOND_DRAW_OFFSET, **options)
            spreads.append(cosine(pred, other))
        metrics = prior_metrics(pred, batch["image_emb"], batch["text_emb"], batch["caption"],
                                means)
        gains.append(metrics["cos_pred_true"] - metrics["cos_text_true"])
        for name, values in metrics.items():
            valid = ~values.isnan()
            sums[name] += float(values[valid].sum())
            counts[name] += int(valid.sum())
    out = {k: sums[k] / counts[k] for k in sums if counts[k]}
    out["s_per_sample"] = (time.perf_counter() - start) / max(n, 1)
    gain = torch.cat(gains).double()
    out["gain_over_text"] = float(gain.mean())
    out["gain_se"] = float(gain.std() / len(gain) ** 0.5) if len(gain) > 1 else float("nan")
    if spreads:
        out["seed_cos"] = float(torch.cat(spreads).double().mean())
    return out


def evaluate_ceiling(batches: list[dict], means: dict[str, torch.Tensor]) -> float:
    """Mean same-caption ceiling over the held-out samples whose caption occurs in training."""
    values = [ceiling_cosine(b["image_emb"], b["caption"], means)[0] for b in batches]
    v = torch.cat(values)
    return float(v[~v.isnan()].mean())


def oracle_cosine(batches: list[dict], bank: dict[str, list[torch.Tensor]],
                  seed: int = 0) -> float:
    """Mean cos(true, a random training embedding of the same caption): what a perfect sampler
    of p(z_i | caption) scores (samples spread around the ceiling's mean embedding)."""
    g = torch.Generator().manual_seed(seed)
    values = []
    for batch in batches:
        for emb, caption in zip(batch["image_emb"], batch["caption"], strict=True):
            rows = bank.get(caption)
            if rows:
                j = int(torch.randint(len(rows), (1,), generator=g))
                values.append(float(torch.nn.functional.cosine_similarity(emb, rows[j], dim=0)))
    return sum(values) / len(values)


def oracle_seed_cosine(batches: list[dict], bank: dict[str, list[torch.Tensor]],
                       seed: int = 0) -> float:
    """Mean cosine between two distinct random training embeddings of each held-out caption:
    ``seed_cos`` of a perfect sampler."""
    g = torch.Generator().manual_seed(seed)
    values = []
    for batch in batches:
        for caption in batch["caption"]:
            rows = bank.get(caption, [])
            if len(rows) >= 2:
                a, b = torch.randperm(len(rows), generator=g)[:2].tolist()
                values.append(float(torch.nn.functional.cosine_similarity(rows[a], rows[b],
                                                                          dim=0)))
    return sum(values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, type=Path)
    parser.add_argument("--embeddings", required=True, type=Path,
                        help="directory holding train/ val/ test/ embedding shards")
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument("--limit", type=int, default=2048, help="held-out samples")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--runs", nargs="*", default=DEFAULT_RUNS, help="sampler:steps")
    parser.add_argument("--best-of", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--guidance-scales", nargs="*", type=float, default=[1.0])
    parser.add_argument("--spacing", default=None, choices=["uniform", "trailing", "logsnr"],
                        help="timestep spacing (default: the checkpoint's sampling.spacing)")
    parser.add_argument("--diversity", action="store_true",
                        help="also draw every row a second time: seed_cos (twice the time)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = EmbeddingDataModule(
        val_shards=str(args.embeddings / args.split / "*.tar"),
        test_shards=str(args.embeddings / args.split / "*.tar"),
        val_batch_size=args.batch_size, num_workers=0,
    )
    prior = load_prior(args.ckpt)
    t0 = time.perf_counter()
    # one deterministic pass over the training shards (read as a 'val' split: no shuffling)
    train_loader = EmbeddingDataModule(
        val_shards=str(args.embeddings / "train" / "*.tar"), val_batch_size=1024, num_workers=0
    ).val_dataloader()
    acc, bank = CaptionMeans(), defaultdict(list)
    for batch in train_loader:
        acc.update(batch["image_emb"], batch["caption"])
        for emb, caption in zip(batch["image_emb"], batch["caption"], strict=True):
            bank[caption].append(emb)
    means = acc.means()
    batches = held_out_batches(data, args.split, args.limit)
    n = sum(len(b["caption"]) for b in batches)
    print(f"# prior {args.ckpt}, spacing {args.spacing or prior.hparams.sampling['spacing']}")
    print(f"# {n} {args.split} samples, {len(means)} training captions "
          f"({time.perf_counter() - t0:.1f} s to read)")
    oracle = oracle_cosine(batches, bank)
    ceiling = evaluate_ceiling(batches, means)
    print(f"# same-caption ceiling {ceiling:.4f}; a perfect sampler (random training embedding "
          f"of the caption) scores {oracle:.4f} = {oracle / ceiling:.3f} of it")
    if args.diversity:
        print(f"# seed_cos of a perfect sampler (two training embeddings of the caption): "
              f"{oracle_seed_cosine(batches, bank):.4f}")
    cols = ["cos_pred_true", "cos_text_true", "cos_pred_unrelated", "top1_pred", "top1_text",
            "cos_pred_true_known", "cos_ceiling"]
    head = ["sampler", "steps", "best_of", "guidance", *cols, "pred/ceiling", "pred-text (SE)",
            "ms/sample", *(["seed_cos"] if args.diversity else [])]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for run in args.runs:
        sampler, steps = run.split(":")
        for best_of in args.best_of:
            for scale in args.guidance_scales:
                m = evaluate(prior, batches, sampler, int(steps), best_of, means,
                             guidance_scale=scale, spacing=args.spacing,
                             diversity=args.diversity)
                ratio = m["cos_pred_true_known"] / m["cos_ceiling"]
                row = [sampler, steps, str(best_of), f"{scale:g}",
                       *(f"{m[c]:.4f}" for c in cols), f"{ratio:.3f}",
                       f"{m['gain_over_text']:+.4f} ({m['gain_se']:.4f})",
                       f"{1000 * m['s_per_sample']:.2f}",
                       *([f"{m['seed_cos']:.4f}"] if args.diversity else [])]
                print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
