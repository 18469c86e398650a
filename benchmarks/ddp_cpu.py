"""Training throughput on this CPU: one process vs two gloo DDP processes (trainer=ddp_cpu).

The real ``PriorModule`` (``configs/prior/small.yaml``) and ``DecoderModule``
(``configs/decoder/base32.yaml``) train under a ``pytorch_lightning.Trainer`` with the settings
of ``configs/trainer/ddp_cpu.yaml`` (bf16-mixed, gradient clipping) and the per-step callbacks of
the default run (EMA, non-finite guard), on a fixed in-memory batch of the same size per device
in every configuration. Configurations: 1 process x 1 thread and 2 DDP processes x 1 thread
(each process its own rank, gradients all-reduced over gloo); ``--with-threads`` adds 1 process
x 2 threads (the same two cores used by intra-op threads instead of ranks)::

    OMP_NUM_THREADS=1 python benchmarks/ddp_cpu.py [--stages prior decoder] [--steps 12] [--quick]

Samples/s = per-device batch x processes / median step time of rank 0 (steps after warm-up).
Each configuration runs in a fresh process (the DDP one re-launches itself per rank).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
CONFIGS = [(1, 1), (2, 1)]  # (processes, threads per process)
BATCH = {"prior": 256, "decoder": 16}  # per device: the shipped prior batch; a CPU decoder batch
QUICK_BATCH = {"prior": 16, "decoder": 2}


def _worker(args: argparse.Namespace) -> None:
    """One configuration: train ``warmup + steps`` steps, rank 0 writes the step times."""
    import torch

    torch.set_num_threads(args.threads)
    import _ours
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    class Timer(pl.Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.ends.append(time.perf_counter())

    if args.stage == "prior":
        module = _ours.build_prior()  # schedule of a 10k-step run: warm-up LR
        batch = _ours.decoder_batch(args.batch, 1)
        batch.pop("image")
    else:
        module = _ours.build_decoder()
        batch = _ours.decoder_batch(args.batch, module.hparams["resolution"])
    timer = Timer()
    trainer = pl.Trainer(
        accelerator="cpu", devices=args.devices, strategy="ddp" if args.devices > 1 else "auto",
        precision=args.precision, max_steps=args.warmup + args.steps,
        gradient_clip_val=_ours.trainer_config()["gradient_clip_val"], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=0, use_distributed_sampler=False,
        callbacks=[timer, *_ours.default_callbacks()],
    )
    loader = DataLoader(_ours.FixedBatches(batch), batch_size=None)
    trainer.fit(module, train_dataloaders=loader)
    if trainer.global_rank == 0:
        ends = timer.ends[args.warmup - 1:]
        times = [b - a for a, b in zip(ends[:-1], ends[1:], strict=False)]
        Path(args.out).write_text(json.dumps({"times": times, "world": trainer.world_size}))


def _measure(stage: str, processes: int, threads: int, args: argparse.Namespace) -> dict:
    """Run one configuration in a fresh process; its throughput figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, __file__, "--worker", "--stage", stage,
               "--devices", str(processes), "--threads", str(threads),
               "--batch", str(args.batch[stage]), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--precision", args.precision, "--out", str(out)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}"
                               f"{proc.stderr[-3000:]}")
        result = json.loads(out.read_text())
    step = statistics.median(result["times"])
    per_device = args.batch[stage]
    return {"stage": stage, "processes": processes, "threads": threads,
            "per_device_batch": per_device, "global_batch": per_device * result["world"],
            "step_ms": 1000 * step, "samples_per_s": per_device * result["world"] / step}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", nargs="+", default=["prior", "decoder"],
                        choices=["prior", "decoder"])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--precision", default="bf16-mixed", help="as configs/trainer/ddp_cpu")
    parser.add_argument("--quick", action="store_true", help="tiny batches, 2 steps (a smoke run)")
    parser.add_argument("--with-threads", action="store_true", help="also 1 process x 2 threads")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args)
        return
    args.batch = dict(QUICK_BATCH if args.quick else BATCH)
    if args.quick:
        args.steps, args.warmup = 2, 1
    load = os.getloadavg()
    print(f"# {os.cpu_count()} CPUs, load {load[0]:.2f}; {args.precision}; "
          f"{args.steps} timed steps after {args.warmup} warm-up; median step time")
    print(f"{'stage':8} {'procs x threads':>15} {'batch/dev':>9} {'global':>6} "
          f"{'step ms':>8} {'samples/s':>10} {'vs 1x1':>7}")
    rows: list[dict[str, Any]] = []
    for stage in args.stages:
        base = None
        for processes, threads in CONFIGS + ([(1, 2)] if args.with_threads else []):
            row = _measure(stage, processes, threads, args)
            base = base or row["samples_per_s"]
            rows.append(row)
            print(f"{stage:8} {f'{processes} x {threads}':>15} {row['per_device_batch']:>9} "
                  f"{row['global_batch']:>6} {row['step_ms']:>8.1f} "
                  f"{row['samples_per_s']:>10.1f} {row['samples_per_s'] / base:>6.2f}x",
                  flush=True)
    print(f"# load at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
