"""Benchmark 3: sampling speed (images/s), text -> 32 px and text -> 64 px, beside dalle2-pytorch.

This project's ``UnCLIPPipeline`` at its default settings (``unclip.pipeline.settings``: prior
DPM-Solver++(2M) 20 steps best-of-2; decoder DPM-Solver++(2M) 20 steps, classifier-free
guidance 3 in one batched forward; upsampler 10 steps; bf16 autocast) over the shipped stage
configs (``shapes-clip`` CLIP, ``prior/small``, ``decoder/base32``, ``decoder/upsampler64``) with
random weights (speed does not depend on them), and dalle2-pytorch's ``Decoder`` at the same
number of network evaluations per stage and the same guidance scale (its DDIM, with guidance as
a second, unbatched U-Net call), a base U-Net matched to ours (8.88M vs 8.43M) and, for 64 px, a
second U-Net matched to our upsampler (2.80M vs 2.84M)::

    python benchmarks/sampling.py [--batch 16] [--guidance 3] [--quick] [--device cuda]

Rows: full text-to-image (CLIP text encoder + prior + decoder [+ upsampler]); decoder stages
alone from given image embeddings, which is what the dalle2-pytorch rows measure.
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
    header,
    interleave,
    measure,
    param_count,
    print_table,
    rss_mb,
    serve,
    setup_device,
    summarize,
    worker_env,
    write_json,
)

PROMPTS = ["a large red circle in the top left", "a blue square to the left of a yellow triangle",
           "a small green triangle at the bottom", "a purple circle and a white square"]
OPS = {  # op: (what, stages)
    "text2img32": "text -> 32 px (CLIP text, prior, decoder)",
    "text2img64": "text -> 64 px (CLIP text, prior, decoder, upsampler)",
    "decoder32": "decoder: image embedding -> 32 px",
    "cascade64": "decoder + upsampler: image embedding -> 64 px",
}


def ours_worker(args: argparse.Namespace) -> None:
    import _ours
    import torch

    from unclip.clip import FrozenCLIP
    from unclip.pipeline import DecoderSettings, PriorSettings, UnCLIPPipeline, UpsamplerSettings

    apply_threads(args.threads)
    device = setup_device(args.device)
    baseline = rss_mb()
    torch.manual_seed(0)
    clip = FrozenCLIP("shapes-clip").to(device)
    stages = [_ours.build_prior("small", clip.identity), _ours.build_decoder("base32",
              clip.identity), _ours.build_decoder("upsampler64", clip.identity)]
    prior, decoder, upsampler = (m.to(device).eval() for m in stages)
    memory = PeakMemory(device, baseline)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.batch)]
    z = torch.randn(args.batch, clip.embed_dim, generator=torch.Generator().manual_seed(0))
    z = torch.nn.functional.normalize(z, dim=-1).to(device)
    pipes = {p: UnCLIPPipeline(clip, prior, decoder, [upsampler], autocast=p == "bf16")
             for p in ("fp32", "bf16")}

    def settings(cmd: dict[str, Any]) -> dict[str, Any]:
        dec = {"guidance_scale": cmd["guidance"]} if cmd.get("guidance") is not None else {}
        if cmd.get("decoder_steps"):
            dec["steps"] = cmd["decoder_steps"]
        up = {"steps": cmd["upsampler_steps"]} if cmd.get("upsampler_steps") else {}
        pr = {"steps": cmd["prior_steps"]} if cmd.get("prior_steps") else {}
        return {"prior": PriorSettings(**pr), "decoder": DecoderSettings(**dec),
                "upsampler": UpsamplerSettings(**up)}

    def handle(cmd: dict[str, Any]) -> dict[str, Any]:
        pipe, s, op = pipes[cmd["precision"]], settings(cmd), cmd["op"]
        nfe = {"prior": s["prior"].steps, "decoder": s["decoder"].steps,
               "upsampler": s["upsampler"].steps, "decoder_guidance": s["decoder"].guidance_scale}
        if op == "nfe":  # the settings' network evaluations, nothing run
            return {"nfe": nfe}

        def run() -> None:
            if op.startswith("text2img"):
                emb, text = pipe.image_embeddings(prompts, s["prior"], seed=0)
            else:
                emb, text = z, None
            pipe.decode(emb, text=text, decoder_settings=s["decoder"],
                        upsampler_settings=s["upsampler"], upsample=op.endswith("64"), seed=0)

        with torch.inference_mode():
            out = measure(run, device, memory, cmd["steps"], cmd["warmup"], args.batch)
        return {**out, "nfe": nfe}

    serve(handle, {"name": "unclip UnCLIPPipeline", "params": param_count(decoder.net),
                   "params_upsampler": param_count(upsampler.net),
                   "params_prior": param_count(prior.net)})


def parse() -> argparse.Namespace:
    p = common_args(argparse.ArgumentParser(description=__doc__,
                                            formatter_class=argparse.RawTextHelpFormatter))
    p.add_argument("--batch", type=int, default=16, help="images per call (sample.yaml: 16)")
    p.add_argument("--guidance", type=float, default=None,
                   help="decoder guidance scale (default: the pipeline default, 3)")
    p.add_argument("--decoder-steps", type=int, default=0, help="0: the pipeline default (20)")
    p.add_argument("--upsampler-steps", type=int, default=0, help="0: the default (10)")
    p.add_argument("--prior-steps", type=int, default=0, help="0: the default (20)")
    p.add_argument("--ops", default=",".join(OPS), help=f"any of {','.join(OPS)}")
    p.add_argument("--precisions", default="bf16", help="ours: bf16 (default) and/or fp32")
    p.add_argument("--peer-precisions", default="fp32,bf16")
    p.add_argument("--peer-upsampler-dim", type=int, default=32,
                   help="dalle2-pytorch's second U-Net: dim and mults (2.80M; ours 2.84M)")
    p.add_argument("--peer-upsampler-mults", default="1,2,2")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.batch, args.repeats = 2, 1
        args.decoder_steps = args.upsampler_steps = args.prior_steps = 2
        args.peer_precisions = "bf16"
    return args


def main() -> None:
    args = parse()
    if args.serve:
        ours_worker(args)
        return
    apply_threads(args.threads)
    device = setup_device(args.device)
    header("sampling speed (benchmark 3)", device)
    common = ["--device", str(device), "--threads", str(args.threads), "--batch",
              str(args.batch)]
    env = worker_env(args.threads)
    workers: list[Worker] = []
    jobs: list[tuple[Worker, dict[str, Any]]] = []
    cmd = {"steps": 1, "warmup": 1, "guidance": args.guidance,
           "decoder_steps": args.decoder_steps, "upsampler_steps": args.upsampler_steps,
           "prior_steps": args.prior_steps}
    try:
        ours = Worker("ours", sys.executable, Path(__file__).resolve(), common, env)
        workers.append(ours)
        ops = args.ops.split(",")
        for op in ops:
            for precision in args.precisions.split(","):
                jobs.append((ours, {**cmd, "op": op, "precision": precision, "label": op}))
        # the defaults the ours worker resolves: read them back for the peers' NFE
        probe = ours.run(**{**cmd, "op": "nfe", "precision": "bf16"})["nfe"]
        python = None if args.no_peers else bench_python()
        if python is not None:
            script = ROOT / "benchmarks" / "peers" / "dalle2_decoder.py"
            peer_ops = {"decoder32": ([], probe["decoder"], probe["decoder_guidance"]),
                        "cascade64": (["--upsampler-dim", str(args.peer_upsampler_dim),
                               "--upsampler-mults", args.peer_upsampler_mults],
                                      [probe["decoder"], probe["upsampler"]],
                                      [probe["decoder_guidance"], 1.0])}
            for op, (flags, nfe, scale) in peer_ops.items():
                if op not in ops:
                    continue
                w = Worker(f"dalle2 {op}", python, script, [*common, *flags], env)
                workers.append(w)
                for precision in args.peer_precisions.split(","):
                    jobs.append((w, {"op": "sample", "nfe": nfe, "cond_scale": scale,
                                     "precision": precision, "label": op, "steps": 1,
                                     "warmup": 1}))
        results = interleave(jobs, args.repeats)
    finally:
        for w in workers:
            w.close()
    report(args, jobs, results, probe)


def report(args: argparse.Namespace, jobs: list, results: list, nfe: dict[str, Any]) -> None:
    rows, records = [], []
    best: dict[tuple[str, str], float] = {}
    for (worker, cmd), runs in zip(jobs, results, strict=True):
        s = summarize(runs)
        family = worker.info["name"]
        key = ("unclip" if family.startswith("unclip") else "dalle2", cmd["label"])
        best[key] = max(best.get(key, 0.0), s["median"])
        if cmd["label"].startswith("text2img"):
            evals = f"prior {nfe['prior']}x2rows + dec {nfe['decoder']}"
        else:
            evals = f"dec {nfe['decoder']}"
        if cmd["label"].endswith("64"):
            evals += f" + up {nfe['upsampler']}"
        params = worker.info["params"] + worker.info.get("params_upsampler", 0) * (
            cmd["label"].endswith("64"))
        rows.append([family.split()[0], OPS[cmd["label"]], cmd["precision"], evals,
                     f"{params / 1e6:.2f}M", s["median"], f"{s['min']:.3g}-{s['max']:.3g}",
                     s["peak_mb"], s["load1"]])
        records.append({"model": family, "op": cmd["label"], "precision": cmd["precision"],
                        "params": params, **s})
    g = nfe["decoder_guidance"]
    print_table(f"sampling, batch {args.batch}, decoder guidance {g} (ours: one batched forward "
                f"of 2B rows; dalle2-pytorch: two forwards of B rows), {args.repeats} rounds, "
                f"threads={args.threads or 'default'}",
                ["model", "what", "precision", "network evaluations", "params", "img/s",
                 "min-max", "peak MB", "load"], rows)
    for op in ("decoder32", "cascade64"):
        ours, peer = best.get(("unclip", op)), best.get(("dalle2", op))
        if ours and peer:
            ratio = ours / peer
            print(f"{op}: ours {ours:.3g} img/s vs dalle2-pytorch {peer:.3g} img/s at equal "
                  f"network evaluations: {ratio:.2f}x (goal >= 3x: "
                  f"{'MET' if ratio >= 3 else 'MISSED'})")
    write_json(args.json, {"benchmark": "sampling", "args": vars(args) | {"json": None},
                           "nfe": nfe, "results": records})


if __name__ == "__main__":
    main()
