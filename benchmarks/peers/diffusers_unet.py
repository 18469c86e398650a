"""Peer worker: diffusers' ``UNet2DConditionModel`` (from PyPI), trained as in diffusers' examples.

Run by ``benchmarks/decoder_training.py`` under the peers' venv (``make bench-env``); standalone
it prints one JSON line::

    .venv-bench/bin/python benchmarks/peers/diffusers_unet.py --precision bf16

One step: ``DDPMScheduler.add_noise``, the U-Net on ``(x_t, t, encoder_hidden_states)``, MSE to
the noise, backward, gradient-norm clipping at 1.0, AdamW (``train_text_to_image.py``'s loop).
The context is ``--tokens`` vectors of width ``--context-dim`` (the decoder's 4 CLIP image
tokens). The default size (64-128-128 channels, 2 layers per block, cross-attention at the
lowest resolution) has 8.45M parameters, this project's base decoder 8.43M.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _bench import (  # noqa: E402
    PeakMemory,
    apply_threads,
    autocast,
    param_count,
    rss_mb,
    run_worker,
    setup_device,
    train_op,
    worker_parser,
)


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v)


def main() -> None:
    p = worker_parser(__doc__)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--channels", type=ints, default=(64, 128, 128))
    p.add_argument("--layers-per-block", type=int, default=2)
    p.add_argument("--context-dim", type=int, default=256)
    p.add_argument("--tokens", type=int, default=4)
    p.add_argument("--head-dim", type=int, default=32)
    args = p.parse_args()
    apply_threads(args.threads)
    device = setup_device(args.device)
    baseline = rss_mb()

    from diffusers import DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    levels = len(args.channels)
    down = ("DownBlock2D",) * (levels - 1) + ("CrossAttnDownBlock2D",)
    up = ("CrossAttnUpBlock2D",) + ("UpBlock2D",) * (levels - 1)
    unet = UNet2DConditionModel(
        sample_size=args.resolution, in_channels=3, out_channels=3,
        block_out_channels=args.channels, down_block_types=down, up_block_types=up,
        layers_per_block=args.layers_per_block, cross_attention_dim=args.context_dim,
        attention_head_dim=args.head_dim, norm_num_groups=32,
    ).to(device)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    memory = PeakMemory(device, baseline)
    opt = torch.optim.AdamW(unet.parameters(), lr=3e-4)
    state = {"channels_last": None}

    def handle(cmd: dict) -> dict:
        precision = cmd.get("precision", "bf16")
        channels_last = bool(cmd.get("channels_last", False))
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        if state["channels_last"] != channels_last:
            unet.to(memory_format=fmt)
            state["channels_last"] = channels_last
        batch = int(cmd.get("batch", args.batch))
        g = torch.Generator().manual_seed(0)
        x0 = (2 * torch.rand(batch, 3, args.resolution, args.resolution, generator=g) - 1)
        x0 = x0.to(device).contiguous(memory_format=fmt)
        ctx = torch.randn(batch, args.tokens, args.context_dim, generator=g).to(device)
        unet.train()

        def step() -> None:
            noise = torch.randn_like(x0)
            t = torch.randint(0, 1000, (batch,), device=device)
            x_t = scheduler.add_noise(x0, noise, t)
            with autocast(device, precision):
                pred = unet(x_t, t, encoder_hidden_states=ctx).sample
            loss = F.mse_loss(pred.float(), noise)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        return train_op(cmd, step, device, memory, batch)

    run_worker(args, handle, {"name": "diffusers UNet2DConditionModel",
                              "params": param_count(unet)})


if __name__ == "__main__":
    main()
