"""Resolution of a decoder/upsampler config into the plain dicts its checkpoint stores."""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from unclip.augment import LowResAugment
from unclip.models.unet import UNet

DEFAULT_SAMPLING: dict[str, Any] = {
    "sampler": "dpmpp_2m",  # DPM-Solver++(2M), 2211.01095
    "steps": 20,
    "spacing": "logsnr",
    "guidance_scale": 1.0,
    # a number: two-condition guidance, guidance_scale on the image embedding and this on the
    # caption on top of it (2211.09800 eq. 3); None: one scale guides both
    "text_guidance_scale": None,
    "threshold": "static",  # clip x0 to [-1, 1] (Imagen 2205.11487 sec. 2.3)
    "autocast": True,  # run the network under bf16 autocast
    # upsamplers: sigma (output px) of the low-pass consistency with the low-res input
    # (unclip.diffusion.consistency); None disables it
    "low_pass_sigma": None,
}
LOW_RES_KEYS = ("resolution", *inspect.signature(LowResAugment).parameters)


def plain(value: Any) -> Any:
    """OmegaConf containers -> plain dicts/lists (checkpoints load with ``weights_only``)."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value


def read_identity(value: Mapping[str, Any] | str | Path | None) -> dict[str, Any] | None:
    """A CLIP identity dict as is, or read from its ``clip_identity.json`` path."""
    if value is None or isinstance(value, Mapping | DictConfig):
        return plain(value)
    path = Path(value)
    if not path.is_file():
        raise FileNotFoundError(f"CLIP identity file not found: {path} (written beside the "
                                "embedding shards by the precompute step)")
    return json.loads(path.read_text())


def resolve_network(
    network: Mapping[str, Any],
    resolution: int,
    identity: Mapping[str, Any] | None,
    image_condition: bool,
    text_condition: bool,
    low_res: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Complete ``UNet`` keyword arguments: resolution, CLIP widths, upsampler channels.

    ``image_emb_dim``/``text_token_dim`` follow ``image_condition``/``text_condition``, with
    widths from the CLIP identity (``embed_dim``, ``token_dim``); a width given explicitly must
    agree with the identity.
    """
    net = dict(plain(network))
    allowed = set(inspect.signature(UNet).parameters)
    if unknown := set(net) - allowed:
        raise ValueError(f"unknown decoder network keys {sorted(unknown)}; allowed: "
                         f"{sorted(allowed)}")
    if net.setdefault("resolution", resolution) != resolution:
        raise ValueError(f"network.resolution={net['resolution']} but resolution={resolution}")
    for flag, key, id_key in ((image_condition, "image_emb_dim", "embed_dim"),
                              (text_condition, "text_token_dim", "token_dim")):
        known = identity.get(id_key) if identity else None
        if not flag:
            if net.get(key):
                raise ValueError(f"network.{key}={net[key]} set but the condition is disabled")
            net[key] = None
        elif net.get(key) is None:
            if known is None:
                raise ValueError(f"network.{key} is null and there is no CLIP identity with "
                                 f"{id_key!r} to read it from (set clip_identity or clip)")
            net[key] = int(known)
        elif known is not None and int(known) != int(net[key]):
            raise ValueError(f"network.{key}={net[key]} but the CLIP model has {id_key}={known}")
    net["low_res_channels"] = net.get("in_channels", 3) if low_res is not None else 0
    return net


def resolve_low_res(low_res: Mapping[str, Any] | None, resolution: int) -> dict[str, Any] | None:
    """Upsampler settings ``{resolution, blur_*, max_level, sample_level}`` or ``None``."""
    if low_res is None:
        return None
    cfg = dict(plain(low_res))
    if unknown := set(cfg) - set(LOW_RES_KEYS):
        raise ValueError(f"unknown low_res keys {sorted(unknown)}; allowed: {list(LOW_RES_KEYS)}")
    if "resolution" not in cfg:
        raise ValueError("low_res.resolution (the input size of the upsampler) is required")
    if not 0 < int(cfg["resolution"]) < resolution:
        raise ValueError(f"low_res.resolution={cfg['resolution']} must be below the output "
                         f"resolution {resolution}")
    augment = LowResAugment(**{k: v for k, v in cfg.items() if k != "resolution"})
    return {"resolution": int(cfg["resolution"]), **augment.config()}


def resolve_sampling(sampling: Mapping[str, Any] | None) -> dict[str, Any]:
    """Sampling defaults (:data:`DEFAULT_SAMPLING`) updated by ``sampling``."""
    cfg = {**DEFAULT_SAMPLING, **(plain(sampling) or {})}
    if unknown := set(cfg) - set(DEFAULT_SAMPLING):
        raise ValueError(f"unknown sampling options {sorted(unknown)}; allowed: "
                         f"{sorted(DEFAULT_SAMPLING)}")
    return cfg
