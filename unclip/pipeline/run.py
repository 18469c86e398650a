"""What ``sample.py`` does: check the request, load the stages, sample, write the run.

Every check that needs no network runs before the checkpoints are loaded (mode, settings,
prompts, input images), and the outputs are staged and moved into place only once everything
succeeded (``outputs.write_run``), so an unusable request leaves no images, grid or record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image

import unclip
from unclip.clip.identity import file_sha256
from unclip.pipeline.core import UnCLIPPipeline, variation_settings
from unclip.pipeline.images import load_images, read_rgb, to_pil
from unclip.pipeline.outputs import write_run
from unclip.pipeline.settings import (
    DecoderSettings,
    InversionSettings,
    PriorSettings,
    UpsamplerSettings,
)

log = logging.getLogger(__name__)
MODES = ("text2img", "variations", "interpolate", "textdiff", "invert")


class SampleRequestError(ValueError):
    """A sample.py request that cannot be served (bad mode, missing inputs or checkpoints)."""


@dataclass
class Request:
    """A checked request: mode, inputs and per-stage settings."""

    mode: str
    prompts: list[str]
    images: list[Path]
    prior: PriorSettings
    decoder: DecoderSettings
    upsampler: UpsamplerSettings
    inversion: InversionSettings
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    """Images with their file names and descriptions, the settings used, extra tensors."""

    entries: list[tuple[str, Image.Image, dict[str, Any]]]
    settings: dict[str, Any]
    grid_columns: int
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)


def _settings(cls: type, node: Any, where: str) -> Any:
    try:
        return cls.from_dict(OmegaConf.to_container(node, resolve=True) if node else {})
    except (TypeError, ValueError) as err:
        raise SampleRequestError(f"{where}: {err}") from err


def _as_list(value: Any) -> list[Any]:
    """A config list as a list; a single value (``images=a.png``) as a one-element list."""
    if value is None:
        return []
    return list(value) if OmegaConf.is_list(value) or isinstance(value, list | tuple) else [value]


def collect_prompts(cfg: DictConfig) -> list[str]:
    """``prompt``, then ``prompts``, then the lines of ``prompts_file`` (blank lines skipped).

    An empty ``prompt=""`` is kept: it asks for unconditional samples.
    """
    prompts: list[str] = []
    if cfg.get("prompt") is not None:
        prompts.append(str(cfg.prompt))
    prompts += [str(p) for p in _as_list(cfg.get("prompts"))]
    if cfg.get("prompts_file"):
        path = Path(cfg.prompts_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise SampleRequestError(f"cannot read prompts_file {path}: {err}") from err
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines:
            raise SampleRequestError(f"prompts_file {path} holds no prompts")
        prompts += lines
    return prompts


def check_request(cfg: DictConfig) -> Request:
    """Validate mode, settings and inputs without loading any network."""
    mode = cfg.get("mode")
    if mode not in MODES:
        raise SampleRequestError(f"mode={mode!r} is not a mode; choose one of {', '.join(MODES)}")
    sampling = cfg.get("sampling") or {}
    decoder = _settings(DecoderSettings, sampling.get("decoder"), "sampling.decoder")
    if mode == "variations":  # 2204.06125 sec. 3.1: DDIM with eta > 0 unless overridden
        overrides = cfg.get("variations")
        decoder = (_settings(DecoderSettings, OmegaConf.merge(decoder.to_dict(), overrides),
                             "variations") if overrides else variation_settings(decoder))
    n = cfg.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SampleRequestError(f"n must be a positive integer, got {n!r}")
    if cfg.get("autocast") not in (None, True, False):
        raise SampleRequestError(f"autocast must be true, false or null, got {cfg.autocast!r}")
    request = Request(
        mode=mode,
        prompts=collect_prompts(cfg),
        images=[Path(str(p)) for p in _as_list(cfg.get("images"))],
        prior=_settings(PriorSettings, sampling.get("prior"), "sampling.prior"),
        decoder=decoder,
        upsampler=_settings(UpsamplerSettings, sampling.get("upsampler"), "sampling.upsampler"),
        inversion=_settings(InversionSettings, cfg.get("inversion"), "inversion"),
    )
    _check_inputs(cfg, request)
    for path in request.images:
        read_rgb(path)  # unreadable images fail now, not after loading the stages
    return request


def _check_inputs(cfg: DictConfig, r: Request) -> None:
    n_img, n_txt = len(r.images), len(r.prompts)
    if r.mode == "text2img":
        if not n_txt:
            raise SampleRequestError('mode=text2img needs prompt="...", prompts=[...] or '
                                     "prompts_file=<file> (prompt=\"\" samples unconditionally)")
        if n_img:
            raise SampleRequestError("mode=text2img takes no images (did you mean "
                                     "mode=variations?)")
    elif r.mode in ("variations", "invert") and not n_img:
        raise SampleRequestError(f"mode={r.mode} needs images=[<file>, ...]")
    elif r.mode == "interpolate":
        if not ((n_img == 2 and not n_txt) or (n_txt == 2 and not n_img)):
            raise SampleRequestError(
                f"mode=interpolate needs two images (images=[a.png,b.png]) or two prompts "
                f"(prompts=[...]), got {n_img} images and {n_txt} prompts")
        node = cfg.get("interpolate") or {}
        r.options = {"frames": int(node.get("frames", 8)), "noise": node.get("noise", "random")}
        if r.options["noise"] not in ("random", "inverted") or r.options["frames"] < 2:
            raise SampleRequestError("interpolate.noise must be random or inverted and "
                                     f"interpolate.frames >= 2, got {r.options}")
        if r.options["noise"] == "inverted" and n_txt:
            raise SampleRequestError("interpolate.noise=inverted needs two images, not prompts")
    elif r.mode == "textdiff":
        node = cfg.get("textdiff") or {}
        if n_img != 1 or n_txt:
            raise SampleRequestError(f"mode=textdiff needs exactly one image (images=[x.png]) "
                                     f"and no prompts, got {n_img} images and {n_txt} prompts")
        if node.get("source") is None or node.get("target") is None:
            raise SampleRequestError('mode=textdiff needs textdiff.source="..." and '
                                     'textdiff.target="..." (the caption change)')
        angles = [float(a) for a in node.get("angles") or []]
        if not angles or any(not 0 <= a <= 1 for a in angles):
            raise SampleRequestError(f"textdiff.angles must be values in [0, 1], got {angles}")
        if node.get("noise", "inverted") not in ("random", "inverted"):
            raise SampleRequestError(f"textdiff.noise must be random or inverted, "
                                     f"got {node.get('noise')!r}")
        r.options = {"source": str(node.source), "target": str(node.target), "angles": angles,
                     "noise": node.get("noise", "inverted")}
    if r.mode != "text2img" and r.mode != "interpolate" and n_txt:
        raise SampleRequestError(f"mode={r.mode} takes no prompts")


def config_record(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without Hydra's own node (as ``@hydra.main`` hands it over)."""
    out = {}
    for key in cfg:
        if key != "hydra":
            value = cfg[key]
            out[key] = (OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value)
                        else value)
    return out


def resolve_device(name: str | None) -> str:
    """``auto``: CUDA when available, else CPU; anything else as given."""
    if name in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(name)


def load_pipeline(cfg: DictConfig, device: str) -> UnCLIPPipeline:
    """The stages named by ``cfg.checkpoints`` on ``device``."""
    ck = cfg.get("checkpoints") or {}
    for key in ("prior", "decoder"):
        if not ck.get(key):
            raise SampleRequestError(f"checkpoints.{key} is not set: pass "
                                     f"checkpoints.{key}=<path to the {key} checkpoint>")
    clip = OmegaConf.to_container(ck.clip, resolve=True) if ck.get("clip") else None
    return UnCLIPPipeline.from_checkpoints(
        prior=ck.prior, decoder=ck.decoder, upsamplers=list(ck.get("upsamplers") or []),
        clip=clip, device=device, autocast=cfg.get("autocast"))


# ------------------------------------------------------------------------------------ modes
def _text2img(pipe: UnCLIPPipeline, r: Request, cfg: DictConfig) -> Result:
    n, seed = int(cfg.n), int(cfg.seed)
    per_call = max(1, int(cfg.get("batch_size", 16)) // n)
    entries, settings = [], {}
    for c, start in enumerate(range(0, len(r.prompts), per_call)):
        chunk = r.prompts[start:start + per_call]
        out = pipe.text_to_image(chunk, num_images_per_prompt=n, prior_settings=r.prior,
                                 decoder_settings=r.decoder, upsampler_settings=r.upsampler,
                                 seed=seed + c, progress=bool(cfg.progress))
        settings = out.settings
        for row, image in enumerate(to_pil(out.images)):
            p, k = start + row // n, row % n
            entries.append((f"p{p:04d}_{k:02d}.png", image,
                            {"prompt": r.prompts[p], "prompt_index": p, "sample": k,
                             "seed": seed + c}))
    return Result(entries, settings, grid_columns=n)


def _variations(pipe: UnCLIPPipeline, r: Request, cfg: DictConfig) -> Result:
    n, seed = int(cfg.n), int(cfg.seed)
    images = load_images(r.images, _input_size(pipe))
    out = pipe.variations(images, num_variations=n, decoder_settings=r.decoder,
                          upsampler_settings=r.upsampler, seed=seed, progress=bool(cfg.progress))
    entries = [(f"i{row // n:04d}_{row % n:02d}.png", image,
                {"image": str(r.images[row // n]), "sample": row % n})
               for row, image in enumerate(to_pil(out.images))]
    return Result(entries, out.settings, grid_columns=n)


def _interpolate(pipe: UnCLIPPipeline, r: Request, cfg: DictConfig) -> Result:
    if r.images:
        a, b = load_images(r.images, _input_size(pipe))
    else:
        a, b = r.prompts
    frames = r.options["frames"]
    out = pipe.interpolate(a, b, frames=frames, noise=r.options["noise"], prior_settings=r.prior,
                           decoder_settings=r.decoder, inversion_settings=r.inversion,
                           upsampler_settings=r.upsampler, seed=int(cfg.seed),
                           progress=bool(cfg.progress))
    ts = torch.linspace(0, 1, frames).tolist()
    entries = [(f"frame{k:03d}.png", image, {"t": ts[k]})
               for k, image in enumerate(to_pil(out.images))]
    return Result(entries, out.settings, grid_columns=frames)


def _textdiff(pipe: UnCLIPPipeline, r: Request, cfg: DictConfig) -> Result:
    (image,) = load_images(r.images, _input_size(pipe))
    o = r.options
    out = pipe.text_diff(image, o["source"], o["target"], o["angles"], noise=o["noise"],
                         decoder_settings=r.decoder, inversion_settings=r.inversion,
                         upsampler_settings=r.upsampler, seed=int(cfg.seed),
                         progress=bool(cfg.progress))
    entries = [(f"angle{k:03d}.png", im, {"angle": o["angles"][k]})
               for k, im in enumerate(to_pil(out.images))]
    return Result(entries, out.settings, grid_columns=len(entries))


def _invert(pipe: UnCLIPPipeline, r: Request, cfg: DictConfig) -> Result:
    images = load_images(r.images, _input_size(pipe))
    inv = pipe.invert(images, settings=r.inversion, progress=bool(cfg.progress))
    rec = pipe.reconstruct(inv, upsample=True, upsampler_settings=r.upsampler,
                           seed=int(cfg.seed), progress=bool(cfg.progress))
    size = pipe.resolution
    inputs = torch.nn.functional.interpolate(images, size=(size, size), mode="bicubic",
                                             antialias=True).clamp(-1, 1)
    entries = []
    for j, (src, out) in enumerate(zip(to_pil(inputs), to_pil(rec), strict=True)):
        meta = {"image": str(r.images[j])}
        entries += [(f"i{j:04d}_input.png", src, {**meta, "kind": "input"}),
                    (f"i{j:04d}_reconstruction.png", out, {**meta, "kind": "reconstruction"})]
    settings = pipe.settings_record(upsamplers=r.upsampler, inversion=r.inversion,
                                    decoder=r.inversion.decoder_settings())
    return Result(entries, settings, grid_columns=2,
                  tensors={"x_T": inv.x_T, "image_embeds": inv.image_embeds})


MODE_RUNNERS: dict[str, Callable[[UnCLIPPipeline, Request, DictConfig], Result]] = {
    "text2img": _text2img, "variations": _variations, "interpolate": _interpolate,
    "textdiff": _textdiff, "invert": _invert,
}


def _input_size(pipe: UnCLIPPipeline) -> int:
    """Input images are loaded at the larger of CLIP's input and the final resolution."""
    return max(max(pipe.clip.identity["image_size"]), pipe.resolution)


# ------------------------------------------------------------------------------------ entry
def run_sample(cfg: DictConfig) -> dict[str, Path]:
    """Serve a sample.py request; returns the written paths (images dir, grid, run.json)."""
    start = time.perf_counter()
    request = check_request(cfg)
    device = resolve_device(cfg.get("device"))
    pipe = load_pipeline(cfg, device)
    log.info("sampling mode=%s on %s, outputs at %s px", request.mode, device, pipe.resolution)
    result = MODE_RUNNERS[request.mode](pipe, request, cfg)
    record = {
        "mode": request.mode,
        "seed": int(cfg.seed),
        "n": int(cfg.n),
        "inputs": {
            "prompts": request.prompts,
            "images": [{"path": str(p.resolve()), "sha256": file_sha256(p)}
                       for p in request.images],
            **request.options,
        },
        "settings": result.settings,
        **pipe.describe(),
        "outputs": [{"file": f"images/{name}", **meta} for name, _, meta in result.entries],
        "versions": {"unclip": unclip.__version__, "torch": torch.__version__},
        "elapsed_s": round(time.perf_counter() - start, 3),
        "config": config_record(cfg),
    }
    paths = write_run(cfg.out_dir, [(name, image) for name, image, _ in result.entries], record,
                      grid_columns=result.grid_columns, tensors=result.tensors or None)
    log.info("wrote %d images, %s and %s", len(result.entries), paths["grid"], paths["record"])
    return paths
