"""Benchmark 1: decoder training throughput (img/s) and peak memory, side by side with peers.

This project's base decoder (``configs/decoder/base32.yaml``, 8.43M parameters) trained by its
real ``DecoderModule.training_step`` under a ``pytorch_lightning.Trainer`` with the shipped
trainer settings (gradient clipping 1.0, AdamW, warm-up scheduler), against

- dalle2-pytorch's ``Decoder`` with ``Unet(dim=64, dim_mults=(1, 2, 2))`` (8.88M), and
- diffusers' ``UNet2DConditionModel`` (64-128-128 channels, 8.45M),

same batch (32) and resolution (32 px), each in fp32 and under bf16 autocast (the peers also
in channels_last), interleaved over ``--repeats`` rounds in separate worker processes::

    python benchmarks/decoder_training.py                 # CPU or CUDA (auto)
    python benchmarks/decoder_training.py --compile       # + torch.compile of our U-Net
    python benchmarks/decoder_training.py --quick         # smoke test

Peers need ``make bench-env``. Figures: median img/s over rounds (min-max), median step time,
peak memory (CUDA: allocator peak; CPU: peak RSS of the worker over its pre-model RSS).
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

PEER_MODES = {"fp32": ("fp32", False), "fp32-cl": ("fp32", True), "bf16": ("bf16", False),
              "bf16-cl": ("bf16", True)}


def ours_worker(args: argparse.Namespace) -> None:
    """Serve training measurements of our decoder (``--serve``)."""
    import statistics

    import _ours
    import patches

    apply_threads(args.threads)
    device = setup_device(args.device)
    baseline = rss_mb()
    for name in args.patch:
        patches.apply(name)
    module = _ours.build_decoder(args.config)
    if args.compile:
        module.net.compile()
    batch = _ours.decoder_batch(args.batch, args.resolution)
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
        callbacks = _ours.default_callbacks() if cmd.get("callbacks") else None
        times = _ours.fit_steps(module, batch, device, cmd["precision"], cmd["steps"],
                                cmd["warmup"], memory, callbacks, cmd.get("datamodule"))
        return {"items_per_s": args.batch * len(times) / sum(times),
                "step_ms": 1000 * statistics.median(times), "peak_mb": memory.peak_mb()}

    suffix = "".join(f" +{n}" for n in args.patch) + (" +compile" if args.compile else "")
    serve(handle, {"name": "unclip DecoderModule" + suffix,
                   "params": param_count(module.net)})


def parse() -> argparse.Namespace:
    p = common_args(argparse.ArgumentParser(description=__doc__,
                                            formatter_class=argparse.RawTextHelpFormatter))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--steps", type=int, default=5, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before each round")
    p.add_argument("--precisions", default="fp32,bf16", help="ours: fp32 and/or bf16")
    p.add_argument("--peer-modes", default="fp32,bf16,bf16-cl",
                   help=f"peers: any of {','.join(PEER_MODES)} (cl = channels_last)")
    p.add_argument("--compile", action="store_true", help="also ours with torch.compile (bf16)")
    p.add_argument("--callbacks", action="store_true",
                   help="also ours with the default per-step callbacks (EMA, NonFiniteGuard)")
    p.add_argument("--patch", action="append", default=[],
                   help="also ours with a proposed change from benchmarks/patches.py (bf16)")
    p.add_argument("--config", default="base32", help="configs/decoder/<name>.yaml")
    # worker mode
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.batch, args.steps, args.warmup, args.repeats = 4, 1, 1, 1
        args.peer_modes = "bf16"
    return args


def main() -> None:
    args = parse()
    if args.serve:
        ours_worker(args)
        return
    apply_threads(args.threads)
    device = setup_device(args.device)
    header("decoder training throughput (benchmark 1)", device)
    common = ["--device", str(device), "--threads", str(args.threads), "--batch",
              str(args.batch), "--resolution", str(args.resolution)]
    env = worker_env(args.threads)
    script = Path(__file__).resolve()
    workers: list[Worker] = []
    jobs: list[tuple[Worker, dict[str, Any]]] = []
    step = {"steps": args.steps, "warmup": args.warmup}
    try:
        ours = Worker("ours", sys.executable, script,
                      [*common, "--config", args.config], env)
        workers.append(ours)
        for precision in args.precisions.split(","):
            jobs.append((ours, {"precision": precision, **step}))
        if args.callbacks:
            jobs.append((ours, {"precision": "bf16", "callbacks": True, "label": "+callbacks",
                                **step}))
        if args.compile:
            compiled = Worker("ours+compile", sys.executable, script,
                              [*common, "--config", args.config, "--compile"], env)
            workers.append(compiled)
            jobs.append((compiled, {"precision": "bf16", **step}))
        for name in args.patch:
            patched = Worker(f"ours+{name}", sys.executable, script,
                             [*common, "--config", args.config, "--patch", name], env)
            workers.append(patched)
            jobs.append((patched, {"precision": "bf16", **step}))
        python = None if args.no_peers else bench_python()
        if python is not None:
            for peer in ("dalle2_decoder", "diffusers_unet"):
                w = Worker(peer, python, ROOT / "benchmarks" / "peers" / f"{peer}.py", common,
                           env)
                workers.append(w)
                for mode in args.peer_modes.split(","):
                    precision, cl = PEER_MODES[mode]
                    jobs.append((w, {"op": "train", "precision": precision,
                                     "channels_last": cl, "label": mode, **step}))
        results = interleave(jobs, args.repeats)
    finally:
        for w in workers:
            w.close()
    report(args, jobs, results)


def report(args: argparse.Namespace, jobs: list, results: list) -> None:
    ours_params = jobs[0][0].info["params"]
    rows, records = [], []
    best: dict[str, float] = {}
    for (worker, cmd), runs in zip(jobs, results, strict=True):
        s = summarize(runs)
        label = cmd.get("label", cmd["precision"])
        family = worker.info["name"]
        best[family] = max(best.get(family, 0.0), s["median"])
        params = worker.info["params"]
        rows.append([family, f"{params / 1e6:.2f}M ({params / ours_params - 1:+.0%})", label,
                     s["median"], f"{s['min']:.3g}-{s['max']:.3g}",
                     sum(r["step_ms"] for r in runs) / len(runs), s["peak_mb"], s["load1"]])
        records.append({"model": family, "params": params, "mode": label, **s})
    print_table(f"decoder training, batch {args.batch} at {args.resolution} px, "
                f"{args.steps} steps x {args.repeats} rounds, threads={args.threads or 'default'}",
                ["model", "params", "mode", "img/s", "min-max", "step ms", "peak MB", "load"],
                rows)
    peer = best.get("dalle2-pytorch Decoder")
    for what, keys in goal_rows(best, "unclip DecoderModule"):
        ours = max(best[k] for k in keys)
        if peer:
            ratio = ours / peer
            print(f"{what}: best {ours:.3g} img/s vs best dalle2-pytorch {peer:.3g} img/s: "
                  f"{ratio:.2f}x (goal >= 3x: {'MET' if ratio >= 3 else 'MISSED'})")
    ours = max(v for k, v in best.items() if k.startswith("unclip"))
    if "diffusers UNet2DConditionModel" in best:
        print(f"vs best diffusers UNet2DConditionModel: "
              f"{ours / best['diffusers UNet2DConditionModel']:.2f}x")
    write_json(args.json, {"benchmark": "decoder_training", "args": vars(args) | {"json": None},
                           "results": records})


if __name__ == "__main__":
    main()
