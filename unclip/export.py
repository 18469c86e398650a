"""Export trained stages as one pipeline directory (safetensors + ``pipeline.json``).

    python -m unclip.export --prior prior.ckpt --decoder decoder.ckpt \\
        [--upsampler up64.ckpt ...] --out exports/shapes

Load it back with :func:`load_exported_pipeline` (an ``UnCLIPPipeline``); see
:mod:`unclip.pipeline.export` for the layout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from unclip.checkpoint import CheckpointError
from unclip.pipeline.export import (
    export_pipeline,
    load_exported_pipeline,
    read_manifest,
)
from unclip.pipeline.loading import CheckpointLoadError, StageMismatchError

__all__ = ["export_pipeline", "load_exported_pipeline", "main", "read_manifest"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m unclip.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", required=True, help="prior checkpoint (.ckpt or .safetensors)")
    parser.add_argument("--decoder", required=True, help="base decoder checkpoint")
    parser.add_argument("--upsampler", action="append", default=[],
                        help="upsampler checkpoint; repeat in chain order (lowest first)")
    parser.add_argument("--out", required=True, help="directory to write (must be empty)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty directory, replacing files of the same name")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the export; print what was written. Returns the exit status (1: refused)."""
    args = parse_args(argv)
    try:
        manifest_path = export_pipeline(args.out, args.prior, args.decoder, args.upsampler,
                                        overwrite=args.overwrite)
    except (CheckpointLoadError, CheckpointError, StageMismatchError, OSError) as err:
        print(f"export failed: {err}", file=sys.stderr)
        return 1
    manifest = read_manifest(manifest_path.parent)
    for entry in manifest["stages"]:
        size = (manifest_path.parent / entry["file"]).stat().st_size
        print(f"{entry['stage']:>11}: {manifest_path.parent / entry['file']} "
              f"({size / 2**20:.2f} MiB, sha256 {entry['sha256'][:12]})")
    print(f"{'config':>11}: {manifest_path} (CLIP {manifest['clip_identity'].get('model_name')!r},"
          f" resolutions {manifest['resolutions']})")
    print(f"load with: unclip.export.load_exported_pipeline({str(manifest_path.parent)!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
