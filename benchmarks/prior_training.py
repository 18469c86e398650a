"""Benchmark 2: prior training throughput (embeddings/s) and peak memory, beside dalle2-pytorch.

This project's prior (``configs/prior/small.yaml``: width 256, 4 blocks, 8 heads, 3.55M
parameters) trained by its real ``PriorModule.training_step`` under a ``pytorch_lightning.Trainer``
with the shipped trainer settings, against dalle2-pytorch's ``DiffusionPrior`` over a
``DiffusionPriorNetwork(dim=256, depth=4, heads=8, dim_head=32, ff_mult=3)`` (3.55M), same
batch (256, the shipped data config) of CLIP text/image embeddings and 32 caption-token
encodings (4-11 real tokens), each in fp32 and under bf16 autocast, interleaved::

    python benchmarks/prior_training.py [--quick] [--device cuda] [--compile]

Peers need ``make bench-env``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import (  # noqa: E402
    ROOT,
    PeakMemory,
    Worker,
    apply_threads,
    bench_python,
    common_args,
    goal_rows,
    header,
    interleave,
    param_count,
    print_table,
    rss_mb,
    serve,
    setup_device,
    summarize,
    train_op,
    worker_env,
    write_json,
)


def ours_worker(args: argparse.Namespace) -> None:
    import statistics

    import _ours
    import patches

    apply_threads(args.threads)
    device = setup_device(args.device)
    baseline = rss_mb()
    for name in args.patch:
        patches.apply(name)
    module = _ours.build_prior(args.config)
    if args.compile:
        module.net.compile()
    batch = _ours.decoder_batch(args.batch, 1)
    batch.pop("image")
    memory = PeakMemory(device, baseline)

    manual: dict[str, Any] = {}

    def handle(cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd.get("op", "train")
        if op in ("flops", "profile", "step"):  # without a Trainer; "step" times such steps
            if cmd["precision"] not in manual:
                manual[cmd["precision"]] = _ours.manual_step_fn(module, batch, device,
                                                                cmd["precision"])
            return train_op({**cmd, "op": "train" if op == "step" else op},
                            manual[cmd["precision"]], device, memory, args.batch)
        times = _ours.fit_steps(module, batch, device, cmd["precision"], cmd["steps"],
                                cmd["warmup"], memory, datamodule=cmd.get("datamodule"))
        return {"items_per_s": args.batch * len(times) / sum(times),
                "step_ms": 1000 * statistics.median(times), "peak_mb": memory.peak_mb()}

    suffix = "".join(f" +{n}" for n in args.patch) + (" +compile" if args.compile else "")
    serve(handle, {"name": "unclip PriorModule" + suffix,
                   "params": param_count(module.net)})


def parse() -> argparse.Namespace:
    p = common_args(argparse.ArgumentParser(description=__doc__,
                                            formatter_class=argparse.RawTextHelpFormatter))
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before each round")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--compile", action="store_true", help="also ours with torch.compile (bf16)")
    p.add_argument("--patch", action="append", default=[],
                   help="also ours with a proposed change from benchmarks/patches.py (bf16)")
    p.add_argument("--config", default="small", help="configs/prior/<name>.yaml")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.batch, args.steps, args.warmup, args.repeats = 16, 1, 1, 1
        args.precisions = "bf16"
    return args


def main() -> None:
    args = parse()
    if args.serve:
        ours_worker(args)
        return
    apply_threads(args.threads)
    device = setup_device(args.device)
    header("prior training throughput (benchmark 2)", device)
    common = ["--device", str(device), "--threads", str(args.threads), "--batch",
              str(args.batch)]
    env = worker_env(args.threads)
    script = Path(__file__).resolve()
    step = {"steps": args.steps, "warmup": args.warmup}
    workers: list[Worker] = []
    jobs: list[tuple[Worker, dict[str, Any]]] = []
    try:
        ours = Worker("ours", sys.executable, script, [*common, "--config", args.config], env)
        workers.append(ours)
        jobs += [(ours, {"precision": p, **step}) for p in args.precisions.split(",")]
        extra = [("ours+compile", ["--compile"])] if args.compile else []
        extra += [(f"ours+{n}", ["--patch", n]) for n in args.patch]
        for name, flags in extra:
            w = Worker(name, sys.executable, script, [*common, "--config", args.config, *flags],
                       env)
            workers.append(w)
            jobs.append((w, {"precision": "bf16", "label": name, **step}))
        python = None if args.no_peers else bench_python()
        if python is not None:
            peer = Worker("dalle2_prior", python, ROOT / "benchmarks/peers/dalle2_prior.py",
                          common, env)
            workers.append(peer)
            jobs += [(peer, {"op": "train", "precision": p, **step})
                     for p in args.precisions.split(",")]
        results = interleave(jobs, args.repeats)
    finally:
        for w in workers:
            w.close()

    ours_params = jobs[0][0].info["params"]
    rows, records, best = [], [], {}
    for (worker, cmd), runs in zip(jobs, results, strict=True):
        s = summarize(runs)
        family, params = worker.info["name"], worker.info["params"]
        label = cmd.get("label", cmd["precision"])
        best[family] = max(best.get(family, 0.0), s["median"])
        rows.append([family, f"{params / 1e6:.2f}M ({params / ours_params - 1:+.0%})", label,
                     s["median"], f"{s['min']:.3g}-{s['max']:.3g}",
                     sum(r["step_ms"] for r in runs) / len(runs), s["peak_mb"], s["load1"]])
        records.append({"model": family, "params": params, "mode": label, **s})
    print_table(f"prior training, batch {args.batch}, {args.steps} steps x {args.repeats} rounds, "
                f"threads={args.threads or 'default'}",
                ["model", "params", "mode", "emb/s", "min-max", "step ms", "peak MB", "load"],
                rows)
    peer = best.get("dalle2-pytorch DiffusionPrior")
    for what, keys in goal_rows(best, "unclip PriorModule"):
        ours_best = max(best[k] for k in keys)
        if peer:
            ratio = ours_best / peer
            print(f"{what}: best {ours_best:.4g}/s vs best dalle2-pytorch {peer:.4g}/s: "
                  f"{ratio:.2f}x (goal >= 3x: {'MET' if ratio >= 3 else 'MISSED'})")
    write_json(args.json, {"benchmark": "prior_training", "args": vars(args) | {"json": None},
                           "results": records})


if __name__ == "__main__":
    main()
