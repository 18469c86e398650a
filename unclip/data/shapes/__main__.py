"""Write the shapes dataset::

    python -m unclip.data.shapes --out data/shapes --train 50000 --val 2000 --test 2000 \\
        --seed 0 --workers 2

Writes ``<out>/{train,val,test}/shapes-%06d.tar`` and ``info.json`` per split. Reruns skip
complete splits; a different configuration in the same ``--out`` needs ``--overwrite``.
``--preset NAME`` picks split sizes from PRESETS; explicit ``--train/--val/--test`` win.
"""

from __future__ import annotations

import argparse
import os
import sys

from .writer import write_dataset

# split sizes (train, val, test); "shapes_quick" is the demo's experiment (unclip.demo)
PRESETS: dict[str, tuple[int, int, int]] = {
    "default": (50_000, 2_000, 2_000),
    "shapes_quick": (50_000, 2_000, 2_000),
    "small": (10_000, 1_000, 1_000),
    "tiny": (512, 128, 128),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m unclip.data.shapes", description="Write the shapes dataset as shards."
    )
    parser.add_argument("--out", default="data/shapes", help="output directory (data/shapes)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default",
                        help="split sizes: " + ", ".join(f"{k}={'/'.join(map(str, v))}"
                                                         for k, v in PRESETS.items()))
    parser.add_argument("--train", type=int, help="train samples (preset: 50000)")
    parser.add_argument("--val", type=int, help="validation samples (preset: 2000)")
    parser.add_argument("--test", type=int, help="test samples (preset: 2000)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (0); splits never share")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="processes (default: CPU count, at most 8)")
    parser.add_argument("--shard-size", type=int, default=1000, help="samples per shard (1000)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace shards written with another configuration")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    sizes = dict(zip(("train", "val", "test"), PRESETS[args.preset], strict=True))
    sizes.update({k: getattr(args, k) for k in sizes if getattr(args, k) is not None})
    try:
        reports = write_dataset(
            args.out,
            sizes,
            seed=args.seed,
            workers=args.workers,
            shard_size=args.shard_size,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    except (FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for r in reports:
        if r.skipped:
            print(f"{r.split}: {r.count} samples already complete in {args.out}/{r.split}")
        else:
            rate = r.written / r.seconds if r.seconds > 0 else float("inf")
            print(f"{r.split}: wrote {r.written} of {r.count} samples in {r.seconds:.1f} s "
                  f"({rate:.0f} samples/s, {args.workers} workers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
