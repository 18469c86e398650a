"""A/B of a proposed change (``benchmarks/patches.py``) against the code as it is.

Two worker processes, one with the patch, take turns: each round times ``--steps`` training
steps (the module's ``training_step`` + backward + clipping + optimizer, no Trainer) in A, then
in B, then in A... The speed-up is the median over rounds of B's rate over the mean of the A
rounds on either side of it, a paired figure that a shared machine's drifting load cancels out
of::

    python benchmarks/ab_patch.py --patch foreach_adamw [--stage prior] [--rounds 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import (  # noqa: E402
    ROOT,
    Worker,
    apply_threads,
    header,
    load1,
    setup_device,
    worker_env,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--patch", required=True, action="append", help="patches.py name(s), for B")
    p.add_argument("--stage", default="decoder", choices=("decoder", "prior"))
    p.add_argument("--batch", type=int, default=0, help="0: the stage benchmark's default")
    p.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    apply_threads(args.threads)
    device = setup_device(args.device)
    header(f"A/B of {'+'.join(args.patch)} on the {args.stage}", device)
    script = ROOT / "benchmarks" / f"{args.stage}_training.py"
    flags = ["--device", str(device), "--threads", str(args.threads)]
    if args.batch:
        flags += ["--batch", str(args.batch)]
    env = worker_env(args.threads)
    a = Worker("A", sys.executable, script, flags, env)
    b = Worker("B", sys.executable, script,
               [*flags, *[x for n in args.patch for x in ("--patch", n)]], env)
    cmd = {"op": "step", "precision": args.precision, "steps": args.steps, "warmup": 1}
    try:
        for w in (a, b):
            w.run(**cmd)  # warm-up: kernels, allocator, optimizer state
        cmd["warmup"] = 0
        ra, rb, loads = [a.run(**cmd)["items_per_s"]], [], []
        for _ in range(args.rounds):
            rb.append(b.run(**cmd)["items_per_s"])
            ra.append(a.run(**cmd)["items_per_s"])
            loads.append(load1())
    finally:
        a.close()
        b.close()
    ratios = [rb[i] / ((ra[i] + ra[i + 1]) / 2) for i in range(len(rb))]
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    ratio = statistics.median(ratios)
    print(f"A (as is): median {statistics.median(ra):.3g}/s; B ({'+'.join(args.patch)}): "
          f"median {statistics.median(rb):.3g}/s; paired B/A: median {ratio:.3f}"
          f" (quartiles {q[0]:.3f}-{q[2]:.3f}) over {len(ratios)} rounds of {args.steps} steps, "
          f"{args.precision}, load {statistics.mean(loads):.2f}")


if __name__ == "__main__":
    main()
