"""What ``evaluate.py`` does: generate for a prompt set, score, sweep, and write the report.

Sections (each switchable in ``configs/evaluate.yaml``):

- ``benchmark``: the shapes compositional benchmark (GenEval-style, 2310.11513) with its ceiling
  (the reader on true renders) and floor (the same samples judged against shuffled prompts);
- ``distribution``: FD_CLIP, KID and CMMD (2401.09603) between generated images and real images
  of a webdataset split, and the CLIP score of each generated image with its caption;
- ``prior``: the prior's own metrics on held-out embedding shards (``unclip.lit.prior_metrics``);
- ``sweeps``: quality against network evaluations per sampler and against guidance scale,
  for the prior and the decoder separately (JSON, PNG plots, a W&B table).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from unclip.clip import TextEncoding
from unclip.diffusion import nfe
from unclip.eval.compositional import BenchmarkResult, ceiling, floor, score
from unclip.eval.metrics import clip_distribution_metrics, flatten_results, inception_fid
from unclip.eval.prompts import BenchmarkPrompt
from unclip.eval.reader import ReaderConfig
from unclip.eval.report import (
    plot_quality_vs_guidance,
    plot_quality_vs_nfe,
    verdict_grid,
    write_json,
)
from unclip.pipeline import DecoderSettings, PriorSettings, UnCLIPPipeline, UpsamplerSettings
from unclip.pipeline.stages import run_prior

log = logging.getLogger(__name__)


def stage_settings(cfg: DictConfig) -> tuple[PriorSettings, DecoderSettings, UpsamplerSettings]:
    """The per-stage sampling settings under ``cfg.sampling`` (validated on construction)."""
    s = OmegaConf.to_container(cfg.sampling, resolve=True)
    return (PriorSettings.from_dict(s.get("prior")), DecoderSettings.from_dict(s.get("decoder")),
            UpsamplerSettings.from_dict(s.get("upsampler")))


def generate(
    pipe: UnCLIPPipeline,
    prompts: Sequence[str],
    settings: tuple[PriorSettings, DecoderSettings, UpsamplerSettings],
    *,
    per_prompt: int,
    batch_size: int,
    seed: int,
) -> torch.Tensor:
    """``per_prompt`` images for each prompt, prompt-major, in batches; batch k uses seed + k."""
    prior, decoder, upsampler = settings
    chunk = max(1, batch_size // per_prompt)
    out = []
    for k, start in enumerate(range(0, len(prompts), chunk)):
        result = pipe.text_to_image(
            list(prompts[start:start + chunk]), num_images_per_prompt=per_prompt,
            prior_settings=prior, decoder_settings=decoder,
            upsampler_settings=upsampler if pipe.upsamplers else None, seed=seed + k)
        out.append(result.images.float().cpu())
    return torch.cat(out)


def run_benchmark(
    pipe: UnCLIPPipeline,
    prompts: list[BenchmarkPrompt],
    settings: tuple[PriorSettings, DecoderSettings, UpsamplerSettings],
    cfg: DictConfig,
    out_dir: Path,
) -> dict[str, Any]:
    """Compositional score with its ceiling and floor; writes the verdict grid."""
    n = int(cfg.eval.benchmark.images_per_prompt)
    rows = [p for p in prompts for _ in range(n)]
    reader: ReaderConfig = _instantiate(cfg.eval.benchmark.reader)
    images = generate(pipe, [p.text for p in prompts], settings, per_prompt=n,
                      batch_size=int(cfg.batch_size), seed=int(cfg.seed))
    result = score(images, rows, reader)
    top = ceiling(prompts, int(cfg.eval.benchmark.render_seed), reader)
    bottom = floor(images, rows, int(cfg.eval.benchmark.floor_seed),
                   bool(cfg.eval.benchmark.floor_within_category), reader)
    shown = int(cfg.eval.report.grid_images)
    verdict_grid(list(images[:shown]), result.verdicts[:shown], out_dir / "benchmark_grid.png",
                 columns=int(cfg.eval.report.grid_columns))
    return {"score": result.to_json(with_verdicts=False), "ceiling": top.to_json(False),
            "floor": bottom.to_json(False), "images_per_prompt": n, "prompts": len(prompts)}


def real_images(shards: str, count: int, resolution: int) -> tuple[torch.Tensor, list[str]]:
    """Up to ``count`` real images (in [-1, 1]) and captions from image-caption shards."""
    from unclip.data.image_caption import ImageCaptionDataModule

    dm = ImageCaptionDataModule(train_shards=shards, val_shards=shards, resolution=resolution,
                                batch_size=min(64, count), num_workers=0)
    dm.setup("validate")
    images, captions = [], []
    for batch in dm.val_dataloader():
        images.append(batch["image"])
        captions += list(batch["caption"])
        if len(captions) >= count:
            break
    if not captions:
        raise ValueError(f"eval.distribution.real_shards={shards!r} yielded no samples")
    return torch.cat(images)[:count], captions[:count]


def run_distribution(
    pipe: UnCLIPPipeline,
    settings: tuple[PriorSettings, DecoderSettings, UpsamplerSettings],
    cfg: DictConfig,
) -> dict[str, Any]:
    """FD_CLIP / KID / CMMD against real images, and the CLIP score, on real captions."""
    dist = cfg.eval.distribution
    real, captions = real_images(dist.real_shards, int(dist.num_samples), pipe.resolution)
    fake = generate(pipe, captions, settings, per_prompt=1, batch_size=int(cfg.batch_size),
                    seed=int(cfg.seed))
    subset = min(int(cfg.eval.metrics.kid_subset_size), len(captions))
    # the metrics' states (feature sums, KID's feature buffers) live where the images are
    metrics = clip_distribution_metrics(pipe.clip, kid_subsets=int(cfg.eval.metrics.kid_subsets),
                                        kid_subset_size=subset).to(pipe.device)
    bs = int(cfg.batch_size)
    with torch.no_grad():
        for start in range(0, len(captions), bs):
            metrics.update(real[start:start + bs].to(pipe.device), real=True)
            metrics.update(fake[start:start + bs].to(pipe.device), real=False)
        results = flatten_results(metrics.compute())
        img = torch.cat([pipe.encode_images(fake[s:s + bs].to(pipe.device)).float().cpu()
                         for s in range(0, len(captions), bs)])
        real_emb = torch.cat([pipe.encode_images(real[s:s + bs].to(pipe.device)).float().cpu()
                              for s in range(0, len(captions), bs)])
        txt = torch.cat([pipe.encode_text(captions[s:s + bs]).pooled.float().cpu()
                         for s in range(0, len(captions), bs)])
    cos = torch.nn.functional.cosine_similarity(img, txt, dim=-1)
    cos_real = torch.nn.functional.cosine_similarity(real_emb, txt, dim=-1)
    results.update(clip_cosine=float(cos.mean()), clip_score=float((100 * cos).clamp(min=0).mean()),
                   clip_cosine_real=float(cos_real.mean()), samples=len(captions))
    fid, note = inception_fid(cfg.eval.metrics.get("inception_weights"))
    if fid is None:
        results["inception_fid"] = None
        results["inception_fid_note"] = note
    else:
        for start in range(0, len(captions), bs):
            fid.update(real[start:start + bs], real=True)
            fid.update(fake[start:start + bs], real=False)
        results["inception_fid"] = float(fid.compute())
    return results


def sweep_decoder(
    pipe: UnCLIPPipeline,
    prompts: list[BenchmarkPrompt],
    settings: tuple[PriorSettings, DecoderSettings, UpsamplerSettings],
    cfg: DictConfig,
) -> list[dict[str, Any]]:
    """Compositional score per decoder sampler x steps, and per decoder guidance scale (with
    ``text_guidance_scale`` set, the image embedding's scale; the caption's stays)."""
    sw = cfg.sweeps
    prior, decoder, upsampler = settings
    subset = prompts[: int(sw.prompts)]
    reader: ReaderConfig = _instantiate(cfg.eval.benchmark.reader)
    records = []

    def measure(kind: str, dec: DecoderSettings) -> None:
        start = time.perf_counter()
        images = generate(pipe, [p.text for p in subset], (prior, dec, upsampler), per_prompt=1,
                          batch_size=int(cfg.batch_size), seed=int(cfg.seed))
        seconds = time.perf_counter() - start
        result: BenchmarkResult = score(images, subset, reader)
        records.append({"stage": "decoder", "sweep": kind, "sampler": dec.sampler,
                        "steps": dec.steps, "nfe": nfe(dec.sampler, dec.steps),
                        "guidance_scale": dec.guidance_scale,
                        "text_guidance_scale": dec.text_guidance_scale, "score": result.mean,
                        "images_per_second": len(subset) / seconds})

    for sampler in sw.samplers:
        for steps in sw.steps:
            measure("nfe", replace(decoder, sampler=str(sampler), steps=int(steps), eta=0.0))
    for scale in sw.guidance:
        measure("guidance", replace(decoder, guidance_scale=float(scale)))
    return records


def sweep_prior(
    pipe: UnCLIPPipeline,
    settings: tuple[PriorSettings, DecoderSettings, UpsamplerSettings],
    cfg: DictConfig,
) -> list[dict[str, Any]]:
    """Prior cosine(predicted, true image embedding) per sampler x steps and per guidance."""
    sw = cfg.sweeps
    batch = _held_out_embeddings(cfg.eval.prior.embedding_shards, int(sw.prior_samples),
                                 pipe.device)
    prior = settings[0]
    records = []

    def measure(kind: str, s: PriorSettings) -> None:
        pred = sample_prior(pipe, batch, s, int(cfg.seed))
        cos = torch.nn.functional.cosine_similarity(pred.float(), batch["image_emb"], -1)
        records.append({"stage": "prior", "sweep": kind, "sampler": s.sampler, "steps": s.steps,
                        "nfe": nfe(s.sampler, s.steps) * (2 if s.guidance_scale != 1 else 1),
                        "guidance_scale": s.guidance_scale, "score": float(cos.mean())})

    for sampler in sw.samplers:
        for steps in sw.steps:
            measure("nfe", replace(prior, sampler=str(sampler), steps=int(steps), eta=0.0))
    for scale in sw.prior_guidance:
        measure("guidance", replace(prior, guidance_scale=float(scale)))
    return records


def run_prior_metrics(pipe: UnCLIPPipeline, cfg: DictConfig) -> dict[str, float]:
    """The prior's validation metrics (prior issue) on held-out embedding shards."""
    from unclip.lit.prior_metrics import prior_metrics

    batch = _held_out_embeddings(cfg.eval.prior.embedding_shards, int(cfg.eval.prior.samples),
                                 pipe.device)
    prior_settings = stage_settings(cfg)[0]
    pred = sample_prior(pipe, batch, prior_settings, int(cfg.seed))
    values = prior_metrics(pred.float(), batch["image_emb"], batch["text_emb"], batch["caption"])
    return {k: float(torch.nanmean(v.float())) for k, v in values.items()}


def sample_prior(pipe: UnCLIPPipeline, batch: dict[str, Any], settings: PriorSettings,
                 seed: int) -> torch.Tensor:
    """The prior's image embeddings for a batch of held-out text encodings, sampled as
    ``text_to_image`` samples them (``run_prior``: the pipeline's bf16 autocast when it has it
    on)."""
    text = TextEncoding(batch["text_emb"], batch["text_tokens"], batch["text_mask"])
    return run_prior(pipe.prior, text, [False] * len(text.pooled), settings,
                     torch.Generator(device=pipe.device).manual_seed(seed),
                     use_autocast=pipe.autocast)


def _held_out_embeddings(shards: str, count: int, device: torch.device) -> dict[str, Any]:
    """The first ``count`` held-out pairs of embedding shards, tensors on ``device``."""
    from unclip.data.embeddings import EmbeddingDataModule

    dm = EmbeddingDataModule(train_shards=shards, val_shards=shards, batch_size=count,
                             num_workers=0)
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    out = {k: batch[k].to(device) for k in ("image_emb", "text_emb", "text_tokens", "text_mask")}
    out["caption"] = list(batch["caption"])
    return out


def _instantiate(node: Any) -> Any:
    import hydra

    return hydra.utils.instantiate(node)


def write_sweeps(records: list[dict[str, Any]], out_dir: Path) -> dict[str, str]:
    """JSON, PNG plots and a W&B table (offline run) of the sweep records."""
    files = {"json": str(write_json(records, out_dir / "sweeps.json"))}
    for stage in ("prior", "decoder"):
        nfe_rows = [r for r in records if r["stage"] == stage and r["sweep"] == "nfe"]
        guide_rows = [r for r in records if r["stage"] == stage and r["sweep"] == "guidance"]
        if nfe_rows:
            files[f"{stage}_nfe"] = str(plot_quality_vs_nfe(
                nfe_rows, ["score"], out_dir / f"{stage}_quality_vs_nfe.png"))
        if guide_rows:
            files[f"{stage}_guidance"] = str(plot_quality_vs_guidance(
                guide_rows, ["score"], out_dir / f"{stage}_quality_vs_guidance.png"))
    return files


def log_to_wandb(results: dict[str, Any], records: list[dict[str, Any]], cfg: DictConfig,
                 out_dir: Path) -> None:
    """One W&B run (offline unless ``wandb.offline=false``) with the summary and sweep table."""
    if not cfg.wandb.enabled:
        return
    import wandb

    run = wandb.init(project=cfg.wandb.project, name=f"evaluate-{cfg.run_name}",
                     dir=str(out_dir), mode="offline" if cfg.wandb.offline else "online",
                     job_type="evaluate", config=OmegaConf.to_container(cfg, resolve=True))
    flat = {f"{section}/{k}": v for section, values in results.items() if isinstance(values, dict)
            for k, v in values.items() if isinstance(v, (int, float))}
    run.summary.update(flat)
    if records:
        columns = sorted({k for r in records for k in r})
        run.log({"sweeps": wandb.Table(columns=columns,
                                       data=[[r.get(c) for c in columns] for r in records])})
    run.finish()


def summary_table(results: dict[str, Any]) -> str:
    """The printed summary: compositional score by category (with ceiling and floor), FD_CLIP,
    CLIP score and the prior's cosines."""
    lines = []
    bench = results.get("benchmark")
    if bench:
        lines.append(f"{'category':<20}{'score':>8}{'ceiling':>9}{'floor':>8}")
        for cat, value in bench["score"]["per_category"].items():
            top = bench["ceiling"]["per_category"].get(cat, float("nan"))
            low = bench["floor"]["per_category"].get(cat, float("nan"))
            lines.append(f"{cat:<20}{value:8.3f}{top:9.3f}{low:8.3f}")
        lines.append(f"{'mean':<20}{bench['score']['mean']:8.3f}"
                     f"{bench['ceiling']['mean']:9.3f}{bench['floor']['mean']:8.3f}")
    dist = results.get("distribution")
    if dist:
        lines.append(f"FD_CLIP {dist['fd_clip']:.4f}   KID {dist['kid_clip_mean']:.5f}   "
                     f"CMMD {dist['cmmd']:.4f}   CLIP score {dist['clip_score']:.2f} "
                     f"(cos {dist['clip_cosine']:.3f}; real images {dist['clip_cosine_real']:.3f})")
    prior = results.get("prior")
    if prior:
        lines.append("prior: " + "  ".join(f"{k} {v:.3f}" for k, v in prior.items()))
    return "\n".join(lines)


def evaluate(cfg: DictConfig, pipe: UnCLIPPipeline, out_dir: Path) -> dict[str, Any]:
    """Run every enabled section, write ``results.json`` (with the printed table) and plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = stage_settings(cfg)
    prompts: list[BenchmarkPrompt] = _instantiate(cfg.eval.benchmark.prompts)
    results: dict[str, Any] = {"settings": {k: v.to_dict() for k, v in
                                            zip(("prior", "decoder", "upsampler"), settings,
                                                strict=True)},
                               "pipeline": pipe.describe()}
    timings = {}
    sections = cfg.sections
    for name, enabled in sections.items():
        if not enabled:
            continue
        start = time.perf_counter()
        log.info("evaluating: %s", name)
        if name == "benchmark":
            results["benchmark"] = run_benchmark(pipe, prompts, settings, cfg, out_dir)
        elif name == "distribution":
            results["distribution"] = run_distribution(pipe, settings, cfg)
        elif name == "prior":
            results["prior"] = run_prior_metrics(pipe, cfg)
        elif name == "sweeps":
            records = sweep_prior(pipe, settings, cfg) + sweep_decoder(pipe, prompts, settings,
                                                                        cfg)
            results["sweeps"] = {"records": records, "files": write_sweeps(records, out_dir)}
        else:
            raise ValueError(f"sections.{name}: unknown section; "
                             "choose from benchmark, distribution, prior, sweeps")
        timings[name] = time.perf_counter() - start
    results["seconds"] = timings
    results["table"] = summary_table(results)
    write_json(results, out_dir / "results.json")
    log_to_wandb(results, results.get("sweeps", {}).get("records", []), cfg, out_dir)
    return results
