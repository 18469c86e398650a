"""What the upsampler's low-pass consistency (unclip.diffusion.consistency) does, per sigma.

    .venv/bin/python benchmarks/upsampler_consistency.py \
        --upsampler logs/train_decoder/<run>_upsampler/checkpoints/final.ckpt \
        --clip-weights data/clip/<run>_clip.pt --shards 'data/embeddings/<run>/test/*.tar' --n 256

Isolates the upsampler: its input is each held-out real image shrunk to the input resolution,
its target the real image. One row per sigma (0: off) with the domain CLIP's zero-shot
colour+shape accuracy on the single-object samples, the analytic reader's, the MSE to the real
image, the mean absolute error of the image mean colour (a tint shows here), and seconds per
image; the first rows are the real images and the input merely resized (bilinear), the ceiling
and the floor of what the reader can find. Seeded: every sigma starts from the same noise.
"""

from __future__ import annotations

import argparse
import time

import torch
from _bench import print_table

from unclip.clip import FrozenCLIP
from unclip.lit.decoder import load_decoder, resize
from unclip.lit.decoder_quality import (
    ColorShapeReader,
    analytic_correct,
    answers,
    load_test_batch,
    sample_in_chunks,
)


def row(name: str, images: torch.Tensor, real: torch.Tensor, reader: ColorShapeReader,
        single: list[int], truth: torch.Tensor, seconds: float = float("nan")) -> list[str]:
    clip_acc = (reader.read(reader.embed(images[single])) == truth).float().mean().item()
    analytic = analytic_correct(images[single], truth).float().mean().item()
    mse = ((images - real) ** 2).mean().item()
    tint = (images.mean((2, 3)) - real.mean((2, 3))).abs().mean().item()
    return [name, f"{100 * clip_acc:.1f}", f"{100 * analytic:.1f}", f"{mse:.4f}", f"{tint:.4f}",
            f"{seconds:.3f}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upsampler", required=True)
    p.add_argument("--clip-model", default="shapes-clip")
    p.add_argument("--clip-weights", required=True)
    p.add_argument("--shards", required=True)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0, 8.0])
    p.add_argument("--chunk", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None,
                   help="sampling steps (default: the checkpoint's sampling.steps)")
    p.add_argument("--aug-level", type=float, default=None,
                   help="low-res noise level (default: the checkpoint's low_res.sample_level)")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    up = load_decoder(args.upsampler)
    reader = ColorShapeReader(FrozenCLIP(args.clip_model, pretrained=args.clip_weights))
    batch = load_test_batch(args.shards, args.n)
    real = resize(batch["image"].float(), up.hparams["resolution"])
    low = resize(real, up.hparams["low_res"]["resolution"])
    single = [i for i, m in enumerate(batch["meta"]) if len(m["objects"]) == 1]
    truth = answers([batch["meta"][i] for i in single])
    options = {k: v for k, v in (("steps", args.steps), ("aug_level", args.aug_level))
               if v is not None}
    rows = [row("real", real, real, reader, single, truth),
            row("input, bilinear", resize(low, real.shape[-1]), real, reader, single, truth)]
    for sigma in args.sigmas:
        gen = torch.Generator().manual_seed(args.seed)
        start = time.perf_counter()
        out = sample_in_chunks(up, {"low_res": low}, gen, args.chunk, low_pass_sigma=sigma,
                               **options)
        per_image = (time.perf_counter() - start) / len(low)
        rows.append(row(f"upsampled, sigma {sigma:g}", out, real, reader, single, truth, per_image))
    print_table(f"{len(real)} held-out images ({len(single)} single-object), "
                f"{up.hparams['low_res']['resolution']} -> {up.hparams['resolution']} px, "
                f"sampling {up.hparams['sampling'] | options}",
                ["images", "CLIP acc %", "analytic %", "MSE", "tint", "s/img"], rows)


if __name__ == "__main__":
    main()
