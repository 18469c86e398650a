"""Peer worker: lucidrains/DALLE2-pytorch's ``Decoder`` (from PyPI), training and sampling.

Run by ``benchmarks/decoder_training.py`` and ``benchmarks/sampling.py`` under the peers' venv
(``make bench-env``); standalone it prints one JSON line::

    .venv-bench/bin/python benchmarks/peers/dalle2_decoder.py --precision bf16 --channels-last

``train``: one step is the peer's own loss (``Decoder.forward``: its q_sample, U-Net, learned-
variance VB term) + backward + gradient-norm clipping at 1.0 + AdamW, as this project's step.
``sample``: ``Decoder.sample`` with ``sample_timesteps = nfe`` (its DDIM sampler, one U-Net call
per step; with ``cond_scale != 1`` it makes a second, unbatched call per step).
With ``--upsampler-dim`` the Decoder is a 2-stage cascade (``--resolution`` then twice that).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _bench import (  # noqa: E402
    PeakMemory,
    apply_threads,
    autocast,
    measure,
    param_count,
    rss_mb,
    run_worker,
    setup_device,
    train_op,
    worker_parser,
)


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v)


def per_unet(value, n: int, kind: type) -> tuple:
    """A scalar or one value per U-Net, as a tuple of ``n``."""
    values = list(value) if isinstance(value, list | tuple) else [value] * n
    if len(values) != n:
        raise ValueError(f"{values} does not give one value per U-Net ({n})")
    return tuple(kind(v) for v in values)


def main() -> None:
    p = worker_parser(__doc__)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--dim-mults", type=ints, default=(1, 2, 2))
    p.add_argument("--image-embed-dim", type=int, default=256)
    p.add_argument("--upsampler-dim", type=int, default=0, help="0: no second (upsampler) U-Net")
    p.add_argument("--upsampler-mults", type=ints, default=(1, 2, 3))
    args = p.parse_args()
    apply_threads(args.threads)
    device = setup_device(args.device)
    baseline = rss_mb()

    from dalle2_pytorch import Decoder, Unet

    torch.manual_seed(0)
    unets = [Unet(dim=args.dim, image_embed_dim=args.image_embed_dim, channels=3,
                  dim_mults=args.dim_mults, cond_on_image_embeds=True)]
    sizes = (args.resolution,)
    if args.upsampler_dim:
        unets.append(Unet(dim=args.upsampler_dim, image_embed_dim=args.image_embed_dim,
                          channels=3, dim_mults=args.upsampler_mults, lowres_cond=True))
        sizes = (args.resolution, 2 * args.resolution)
    decoder = Decoder(unet=tuple(unets), image_sizes=sizes, timesteps=1000).to(device)
    memory = PeakMemory(device, baseline)
    params = [p for p in decoder.unets[0].parameters()]
    opt = torch.optim.AdamW(params, lr=3e-4)
    state = {"channels_last": None}

    def set_format(channels_last: bool) -> torch.memory_format:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        if state["channels_last"] != channels_last:
            decoder.to(memory_format=fmt)
            state["channels_last"] = channels_last
        return fmt

    def handle(cmd: dict) -> dict:
        precision, op = cmd.get("precision", "bf16"), cmd.get("op", "train")
        fmt = set_format(bool(cmd.get("channels_last", False)))
        batch = int(cmd.get("batch", args.batch))
        g = torch.Generator().manual_seed(0)
        emb = torch.randn(batch, args.image_embed_dim, generator=g).to(device)
        if op in ("train", "flops", "profile"):
            decoder.train()
            images = torch.rand(batch, 3, args.resolution, args.resolution, generator=g)
            images = images.to(device).contiguous(memory_format=fmt)  # [0, 1]: auto-normalised

            def step() -> None:
                with autocast(device, precision):
                    loss = decoder(images, image_embed=emb, unet_number=1)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)

            return train_op(cmd, step, device, memory, batch)
        if op == "sample":
            # per stage: network evaluations (its DDIM steps) and guidance scale
            nfe = per_unet(cmd["nfe"], decoder.num_unets, int)
            scale = per_unet(cmd.get("cond_scale", 1.0), decoder.num_unets, float)

            def sample(steps: tuple[int, ...]) -> None:
                decoder.sample_timesteps = steps
                with autocast(device, precision):
                    decoder.sample(image_embed=emb, cond_scale=scale)

            if cmd.get("warmup", 1):
                sample((2,) * decoder.num_unets)  # builds the kernels of every stage
            return measure(lambda: sample(nfe), device, memory, cmd["steps"], 0, batch)
        raise ValueError(f"unknown op {op!r}")

    info = {"name": "dalle2-pytorch Decoder", "params": param_count(decoder.unets[0]),
            "params_upsampler": param_count(decoder.unets[1]) if args.upsampler_dim else 0}
    run_worker(args, handle, info)


if __name__ == "__main__":
    main()
