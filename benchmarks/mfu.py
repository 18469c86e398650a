"""Benchmark 4: model FLOPs utilisation of decoder training, and what bounds it.

MFU = FLOPs per training step (``torch.utils.flop_counter``: convolutions, matmuls, attention,
forward and backward) x training steps per second / the peak this script measures for a bf16
matmul on this machine (best of square 1024-4096 ``torch.mm``, measured before and after, with
the workers' thread count). The step rate is the real Trainer step of ``decoder_training.py``;
the peers (dalle2-pytorch ``Decoder``, diffusers ``UNet2DConditionModel``, matched sizes) are
measured alike, so the table also says how far any implementation can be ahead of another at
these FLOPs. ``--profile`` adds a kernel profile (op self time by group) of one step of ours
(and of dalle2-pytorch's with peers)::

    python benchmarks/mfu.py [--profile] [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from _bench import (  # noqa: E402
    ROOT,
    Worker,
    apply_threads,
    bench_python,
    common_args,
    header,
    interleave,
    matmul_peak,
    print_profile,
    print_table,
    setup_device,
    summarize,
    worker_env,
    write_json,
)


def parse() -> argparse.Namespace:
    p = common_args(argparse.ArgumentParser(description=__doc__,
                                            formatter_class=argparse.RawTextHelpFormatter))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    p.add_argument("--profile", action="store_true", help="print kernel profiles of one step")
    p.add_argument("--patch", action="append", default=[],
                   help="also ours with a proposed change from benchmarks/patches.py")
    args = p.parse_args()
    if args.quick:
        args.batch, args.steps, args.warmup, args.repeats = 4, 1, 1, 1
    return args


def main() -> None:
    args = parse()
    apply_threads(args.threads)
    device = setup_device(args.device)
    header("model FLOPs utilisation (benchmark 4)", device)
    sizes = (256, 512) if args.quick else (512, 1024, 2048, 4096)
    peak0 = matmul_peak(device, torch.bfloat16, sizes)
    fp32 = matmul_peak(device, torch.float32, sizes[:2])
    common = ["--device", str(device), "--threads", str(args.threads), "--batch",
              str(args.batch), "--resolution", str(args.resolution)]
    env = worker_env(args.threads)
    workers: list[Worker] = []
    step = {"steps": args.steps, "warmup": args.warmup, "precision": args.precision}
    profiles: dict[str, Any] = {}
    try:
        ours = Worker("ours", sys.executable, ROOT / "benchmarks" / "decoder_training.py",
                      common, env)
        workers.append(ours)
        for name in args.patch:
            workers.append(Worker(f"ours+{name}", sys.executable,
                                  ROOT / "benchmarks" / "decoder_training.py",
                                  [*common, "--patch", name], env))
        python = None if args.no_peers else bench_python()
        if python is not None:
            for peer in ("dalle2_decoder", "diffusers_unet"):
                workers.append(Worker(peer, python, ROOT / "benchmarks" / "peers" /
                                      f"{peer}.py", common, env))
        flops = {w.name: w.run(op="flops", **step)["flops"] for w in workers}
        jobs = [(w, {"op": "train", **step}) for w in workers]
        results = interleave(jobs, args.repeats)
        if args.profile:
            for w in workers:
                if w.name == "ours" or w.name.startswith("dalle2"):
                    profiles[w.name] = w.run(op="profile", **step)["profile"]
    finally:
        for w in workers:
            w.close()
    peak1 = matmul_peak(device, torch.bfloat16, sizes)
    peak = max(peak0["flops_per_s"], peak1["flops_per_s"])

    by_size = ", ".join(f"{n}: {max(r, peak1['by_size'][n]) / 1e12:.3f}"
                        for n, r in peak0["by_size"].items())
    print(f"\nmeasured peak: bf16 matmul {peak / 1e12:.3f} TFLOP/s, best of square n x n "
          f"torch.mm before and after the runs (TFLOP/s by n: {by_size}); fp32 matmul "
          f"{fp32['flops_per_s'] / 1e12:.3f} TFLOP/s")
    rows, records = [], []
    for (worker, _), runs in zip(jobs, results, strict=True):
        s = summarize(runs)
        per_step = flops[worker.name]
        achieved = per_step / args.batch * s["median"]
        mfu = achieved / peak
        rows.append([worker.info["name"], f"{worker.info['params'] / 1e6:.2f}M",
                     per_step / 1e9, per_step / args.batch / 1e9, s["median"],
                     achieved / 1e12, f"{mfu:.1%}", s["load1"]])
        records.append({"model": worker.info["name"], "flops_per_step": per_step,
                        "img_per_s": s["median"], "achieved_flops_per_s": achieved,
                        "mfu": mfu, **s})
    print_table(f"decoder training MFU, batch {args.batch} at {args.resolution} px, "
                f"{args.precision}, {args.repeats} rounds, threads={args.threads or 'default'}",
                ["model", "params", "GFLOP/step", "GFLOP/img", "img/s", "TFLOP/s", "MFU",
                 "load"], rows)
    ours_mfu = records[0]["mfu"]
    print(f"goal decoder training step >= 30% MFU: {'MET' if ours_mfu >= 0.3 else 'MISSED'} "
          f"({ours_mfu:.1%})")
    peers = [r for r in records if not r["model"].startswith("unclip")]
    if peers:
        peer = peers[0]
        need = 3 * peer["img_per_s"] * records[0]["flops_per_step"] / args.batch
        print(f"3x {peer['model']} ({3 * peer['img_per_s']:.3g} img/s) at our FLOPs/img would "
              f"need {need / 1e12:.3f} TFLOP/s = {need / peak:.0%} of the measured peak "
              f"(the peer runs at {peer['mfu']:.0%} MFU)")
    for name, prof in profiles.items():
        print_profile(f"kernel profile of one {args.precision} training step, {name}", prof)
    write_json(args.json, {"benchmark": "mfu", "args": vars(args) | {"json": None},
                           "peak_bf16_matmul": peak, "peak_fp32_matmul": fp32["flops_per_s"],
                           "results": records, "profiles": profiles})


if __name__ == "__main__":
    main()
