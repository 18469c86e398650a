"""Peer worker: lucidrains/DALLE2-pytorch's ``DiffusionPrior`` (from PyPI), training and sampling.

Run by ``benchmarks/prior_training.py`` under the peers' venv (``make bench-env``); standalone it
prints one JSON line::

    .venv-bench/bin/python benchmarks/peers/dalle2_prior.py --precision bf16

One step: the peer's own loss (``DiffusionPrior.forward`` on precomputed CLIP text/image
embeddings and text encodings, x0 prediction, cosine schedule) + backward + gradient-norm
clipping at 1.0 + AdamW, as this project's step. The network width is the CLIP embedding
width (the peer's design); text encodings are ``--text-len`` tokens of that width, padded by the
peer to ``max_text_len`` (set to ``--text-len``: the CLIP context, as this project's prior).
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


def main() -> None:
    p = worker_parser(__doc__)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--dim", type=int, default=256, help="CLIP embedding width = network width")
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--dim-head", type=int, default=32)
    p.add_argument("--ff-mult", type=float, default=3,
                   help="3: SwiGLU width matching this project's prior (3.55M vs 3.55M params)")
    p.add_argument("--text-len", type=int, default=32)
    args = p.parse_args()
    apply_threads(args.threads)
    device = setup_device(args.device)
    baseline = rss_mb()

    from dalle2_pytorch import DiffusionPrior, DiffusionPriorNetwork

    torch.manual_seed(0)
    net = DiffusionPriorNetwork(dim=args.dim, depth=args.depth, heads=args.heads,
                                dim_head=args.dim_head, ff_mult=args.ff_mult,
                                max_text_len=args.text_len)
    prior = DiffusionPrior(net, image_embed_dim=args.dim, timesteps=1000, cond_drop_prob=0.1,
                           condition_on_text_encodings=True).to(device)
    memory = PeakMemory(device, baseline)
    opt = torch.optim.AdamW(prior.parameters(), lr=3e-4)

    def inputs(batch: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        lengths = torch.randint(4, 12, (batch, 1), generator=g)
        mask = (torch.arange(args.text_len)[None] < lengths).float()[..., None]
        return {
            "text_embed": torch.randn(batch, args.dim, generator=g).to(device),
            "image_embed": torch.randn(batch, args.dim, generator=g).to(device),
            # padding positions are exactly zero: the peer derives its mask from that
            "text_encodings": (torch.randn(batch, args.text_len, args.dim, generator=g)
                               * mask).to(device),
        }

    def handle(cmd: dict) -> dict:
        precision, op = cmd.get("precision", "bf16"), cmd.get("op", "train")
        batch = int(cmd.get("batch", args.batch))
        x = inputs(batch)
        if op in ("train", "flops", "profile"):
            prior.train()

            def step() -> None:
                with autocast(device, precision):
                    loss = prior(text_embed=x["text_embed"], image_embed=x["image_embed"].clone(),
                                 text_encodings=x["text_encodings"])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)

            return train_op(cmd, step, device, memory, batch)
        if op == "sample":
            nfe = int(cmd["nfe"])
            cond = {"text_embed": x["text_embed"], "text_encodings": x["text_encodings"]}

            def sample() -> None:
                with autocast(device, precision):
                    prior.p_sample_loop((batch, args.dim), text_cond=cond, timesteps=nfe)

            return measure(sample, device, memory, cmd["steps"], cmd.get("warmup", 1), batch)
        raise ValueError(f"unknown op {op!r}")

    run_worker(args, handle, {"name": "dalle2-pytorch DiffusionPrior",
                              "params": param_count(prior.net)})


if __name__ == "__main__":
    main()
