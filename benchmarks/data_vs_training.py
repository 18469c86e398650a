"""Benchmark 5: the data modules deliver at least 3x what training consumes.

For each training path, with the shipped data configs (``configs/data/*.yaml``: workers,
shuffle buffer) and trainer settings:

- prior   <- ``EmbeddingDataModule`` (embedding shards, batch 256),
- decoder <- ``EmbeddingDataModule(with_images=True)`` (embedding shards + png at 64 px,
  resized to 32 by the module),
- decoder <- ``ImageCaptionDataModule`` on the generated shapes shards (the loader of on-the-fly
  CLIP training; the CLIP forward itself is not part of this measurement),

this prints (a) what the loader delivers alone (samples/s, iterating ``train_dataloader()``),
(b) what training consumes (samples/s of the real Trainer step on a fixed in-memory batch, bf16)
and their ratio (goal >= 3x), and (c) the training rate when the Trainer pulls from the real
data module, i.e. what loading costs the step when both share this machine's cores.

Embedding shards: ``--embeddings`` (a shard pattern written by the precompute step) or, by
default, shards written here in the documented layout from the first ``--samples`` shapes
samples (images, captions, metadata) with random arrays of the ``shapes-clip`` sizes (256-d
embeddings, 32 x 192 float16 tokens), which load exactly as real ones::

    python benchmarks/data_vs_training.py [--quick] [--embeddings 'data/emb/train/*.tar']
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import (  # noqa: E402
    ROOT,
    Worker,
    apply_threads,
    common_args,
    header,
    load1,
    print_table,
    setup_device,
    worker_env,
    write_json,
)

SHAPES = ROOT / "data" / "shapes" / "train" / "shapes-*.tar"


def write_embedding_shards(out: Path, samples: int, per_shard: int = 512) -> str:
    """Embedding shards in the documented layout from the first ``samples`` shapes samples."""
    import glob

    import numpy as np
    import webdataset as wds

    def npy(array: np.ndarray) -> bytes:
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        return buf.getvalue()

    rng = np.random.default_rng(0)
    out.mkdir(parents=True, exist_ok=True)
    urls = sorted(glob.glob(str(SHAPES)))
    if not urls:
        raise FileNotFoundError(f"no shapes shards at {SHAPES}: run "
                                "`python -m unclip.data.shapes --out data/shapes` first")
    pattern = str(out / "emb-%06d.tar")
    n = 0
    with wds.ShardWriter(pattern, maxcount=per_shard, verbose=0, encoder=False) as sink:
        for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
            length = int(rng.integers(4, 12))
            mask = np.arange(32) < length
            sink.write({
                "__key__": sample["__key__"], "png": sample["png"], "txt": sample["txt"],
                "json": sample["json"],
                "img_emb.npy": npy(rng.standard_normal(256, dtype=np.float32)),
                "txt_emb.npy": npy(rng.standard_normal(256, dtype=np.float32)),
                "txt_tokens.npy": npy(rng.standard_normal((32, 192)).astype(np.float16)),
                "txt_mask.npy": npy(mask),
            })
            n += 1
            if n >= samples:
                break
    return str(out / "emb-*.tar")


def data_config(name: str, **overrides: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "data" / f"{name}.yaml"))
    cfg = {k: v for k, v in cfg.items() if not (isinstance(v, str) and "${" in v)}
    cfg.update(overrides)
    return cfg


def delivery_rate(cfg: dict[str, Any], batches: int) -> float:
    """Samples/s that ``train_dataloader()`` delivers, after its first batch (worker start)."""
    import hydra.utils

    sys.path.insert(0, str(ROOT))
    dm = hydra.utils.instantiate(cfg, _convert_="all")
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    first = next(it)
    size = len(first["key"])
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += len(next(it)["key"])
    rate = n / (time.perf_counter() - t0)
    del it
    assert size > 0
    return rate


def parse() -> argparse.Namespace:
    p = common_args(argparse.ArgumentParser(description=__doc__,
                                            formatter_class=argparse.RawTextHelpFormatter))
    p.add_argument("--embeddings", default=None, help="embedding shard pattern (default: write)")
    p.add_argument("--samples", type=int, default=4096, help="samples in the written shards")
    p.add_argument("--decoder-batch", type=int, default=32)
    p.add_argument("--prior-batch", type=int, default=256)
    p.add_argument("--batches", type=int, default=12, help="loader batches timed per round")
    p.add_argument("--steps", type=int, default=4, help="training steps timed per round")
    p.add_argument("--no-e2e", action="store_true", help="skip (c), training from the loader")
    p.add_argument("--patch", action="append", default=[],
                   help="train with a proposed change from benchmarks/patches.py")
    p.add_argument("--paths", default="prior,decoder,shapes",
                   help="which of prior, decoder, shapes to measure")
    args = p.parse_args()
    if args.quick:
        args.samples, args.decoder_batch, args.prior_batch = 256, 4, 16
        args.batches, args.steps, args.repeats = 2, 1, 1
    return args


def main() -> None:
    args = parse()
    apply_threads(args.threads)
    device = setup_device(args.device)
    header("data delivery vs training consumption (benchmark 5)", device)
    tmp = tempfile.TemporaryDirectory(prefix="unclip-bench-")
    emb = args.embeddings or write_embedding_shards(Path(tmp.name) / "emb", args.samples)
    n = args.samples
    paths = {
        "prior <- embeddings": ("prior_training.py", args.prior_batch, data_config(
            "embeddings", train_shards=emb, val_shards=None, test_shards=None,
            batch_size=args.prior_batch, epoch_length=n, persistent_workers=False)),
        "decoder <- embeddings+png": ("decoder_training.py", args.decoder_batch, data_config(
            "embeddings", train_shards=emb, val_shards=None, test_shards=None,
            batch_size=args.decoder_batch, with_images=True, resolution=64, epoch_length=n,
            persistent_workers=False)),
        "decoder <- shapes image-caption": ("decoder_training.py", args.decoder_batch,
                                            data_config(
            "shapes", train_shards=str(SHAPES), val_shards=None, test_shards=None,
            batch_size=args.decoder_batch, persistent_workers=False)),
    }
    keep = {"prior": "prior <- embeddings", "decoder": "decoder <- embeddings+png",
            "shapes": "decoder <- shapes image-caption"}
    paths = {keep[k]: paths[keep[k]] for k in args.paths.split(",")}
    env = worker_env(args.threads)
    workers: dict[str, Worker] = {}
    rates: dict[str, dict[str, list[float]]] = {k: {"data": [], "train": [], "e2e": [],
                                                    "load": []} for k in paths}
    try:
        for script, batch, _ in paths.values():
            if script not in workers:
                flags = ["--device", str(device), "--threads", str(args.threads), "--batch",
                         str(batch)]
                if script == "decoder_training.py":
                    flags += ["--resolution", "32"]
                for name in args.patch:
                    flags += ["--patch", name]
                workers[script] = Worker(script.removesuffix(".py"), sys.executable,
                                         ROOT / "benchmarks" / script, flags, env)
        trained: dict[str, list[float]] = {}
        for r in range(args.repeats):
            for name, (script, batch, cfg) in paths.items():
                batches = max(1, args.batches * 32 // batch) if batch < 256 else args.batches
                rates[name]["data"].append(delivery_rate(cfg, batches))
                if (script, r) not in trained:  # one training measurement per model per round
                    out = workers[script].run(op="train", precision="bf16", steps=args.steps,
                                              warmup=2)
                    trained[(script, r)] = out["items_per_s"]
                rates[name]["train"].append(trained[(script, r)])
                # (c) only from embedding shards: image-caption batches need CLIP in the step
                if not args.no_e2e and cfg["_target_"].endswith("EmbeddingDataModule"):
                    out = workers[script].run(op="train", precision="bf16", steps=args.steps,
                                              warmup=2, datamodule=cfg)
                    rates[name]["e2e"].append(out["items_per_s"])
                rates[name]["load"].append(load1())
                print(f"  round {r + 1}/{args.repeats} {name}: data "
                      f"{rates[name]['data'][-1]:.0f}/s, train {rates[name]['train'][-1]:.1f}/s",
                      file=sys.stderr, flush=True)
    finally:
        for w in workers.values():
            w.close()
        tmp.cleanup()
    report(args, rates)


def report(args: argparse.Namespace, rates: dict[str, dict[str, list[float]]]) -> None:
    import statistics

    rows, records, ok = [], [], True
    for name, r in rates.items():
        data, train = statistics.median(r["data"]), statistics.median(r["train"])
        e2e = statistics.median(r["e2e"]) if r["e2e"] else float("nan")
        ratio = data / train
        ok &= ratio >= 3
        rows.append([name, data, train, f"{ratio:.1f}x", e2e,
                     f"{e2e / train - 1:+.0%}" if r["e2e"] else "-",
                     statistics.mean(r["load"])])
        records.append({"path": name, "data_per_s": data, "train_per_s": train, "ratio": ratio,
                        "train_from_loader_per_s": e2e})
    patched = f", training with {'+'.join(args.patch)}" if args.patch else ""
    print_table(f"data delivery vs training (bf16{patched}), {args.repeats} rounds, "
                f"threads={args.threads or 'default'}",
                ["path", "loader samples/s", "train samples/s", "ratio", "train from loader/s",
                 "loader cost", "load"], rows)
    print(f"goal: every data module delivers >= 3x what training consumes: "
          f"{'MET' if ok else 'MISSED'}")
    write_json(args.json, {"benchmark": "data_vs_training", "args": vars(args) | {"json": None},
                           "results": records})


if __name__ == "__main__":
    main()
