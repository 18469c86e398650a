"""Loading the unCLIP stages from checkpoint paths, and checking that they fit together.

Every prior/decoder/upsampler checkpoint records the CLIP it was trained against (the identity of
``unclip.clip``), its resolution(s), diffusion and network. Loading refuses stages trained against
different CLIP models, and an upsampler whose input resolution is not the output resolution of
the stage below it, naming both checkpoints. The CLIP itself is rebuilt from the recorded
identity (an open_clip pretrained tag) or given explicitly (local weights, a random init).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from unclip.clip import IDENTITY_KEYS, FrozenCLIP, same_clip
from unclip.clip.identity import file_sha256
from unclip.lit.decoder import DecoderModule, load_decoder
from unclip.lit.prior import PriorModule, load_prior

ClipSpec = FrozenCLIP | Mapping[str, Any] | None


class StageMismatchError(ValueError):
    """Stages that cannot be chained (different CLIP models, mismatched resolutions)."""


class CheckpointLoadError(ValueError):
    """A stage checkpoint that is missing, unreadable or of the wrong kind, with its path."""


@dataclass(frozen=True)
class CheckpointRecord:
    """Where a stage came from: the file and its SHA-256 (for ``run.json``)."""

    stage: str
    path: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"stage": self.stage, "path": self.path, "sha256": self.sha256}


def _check_files(paths: Mapping[str, Path]) -> None:
    """Fail before loading anything when any checkpoint file is missing."""
    missing = [f"{stage}: {path}" for stage, path in paths.items() if not path.is_file()]
    if missing:
        raise CheckpointLoadError("checkpoint not found — " + "; ".join(missing))


def load_stage(stage: str, path: Path, device: str | torch.device) -> PriorModule | DecoderModule:
    """Load one stage ('prior', 'decoder' or 'upsampler<k>') and check that it is of that kind."""
    try:
        module = load_prior(path, device) if stage == "prior" else load_decoder(path, device)
    except Exception as err:  # noqa: BLE001 - re-raised with the stage and file named
        raise CheckpointLoadError(f"cannot load the {stage} checkpoint {path}: {err}") from err
    if stage == "decoder" and module.is_upsampler:
        raise CheckpointLoadError(f"{path} is an upsampler checkpoint (it takes a "
                                  f"{module.hparams['low_res']['resolution']} px image), "
                                  "given as the decoder")
    if stage.startswith("upsampler") and not module.is_upsampler:
        raise CheckpointLoadError(f"{path} is a base decoder checkpoint, given as {stage}")
    return module.to(device).eval()


def clip_identity_to_check(module: PriorModule | DecoderModule) -> Mapping[str, Any] | None:
    """The CLIP identity a stage must share with the others: ``None`` for a stage that takes
    no CLIP input (an upsampler conditioned on its low-res image alone, as in the paper), which
    works under any CLIP and so can serve decoders trained against another one."""
    if isinstance(module, DecoderModule) and not module.uses_clip:
        return None
    return module.hparams["clip_identity"]


def check_same_clip_models(identities: Sequence[tuple[str, Mapping[str, Any] | None]]) -> None:
    """All stages that record a CLIP identity must record the same one.

    ``identities`` holds ``(description, identity)`` pairs, description naming the checkpoint.
    """
    known = [(what, ident) for what, ident in identities if ident]
    for what, ident in known[1:]:
        ref_what, ref = known[0]
        if not same_clip(ref, ident):
            diffs = "; ".join(f"{k}: {ref.get(k)!r} vs {ident.get(k)!r}"
                              for k in IDENTITY_KEYS if ref.get(k) != ident.get(k))
            raise StageMismatchError(
                f"{what} was trained against CLIP {ident.get('model_name')!r} but {ref_what} "
                f"against CLIP {ref.get('model_name')!r}; they differ in {diffs}"
            )


def check_resolutions(stages: Sequence[tuple[str, DecoderModule]]) -> None:
    """Each upsampler's input resolution equals the output resolution of the stage below it."""
    for (below_what, below), (what, up) in zip(stages, stages[1:], strict=False):
        have, want = below.hparams["resolution"], up.hparams["low_res"]["resolution"]
        if have != want:
            raise StageMismatchError(
                f"{what} takes {want} px images but {below_what} produces {have} px images"
            )


def clip_from_identity(identity: Mapping[str, Any], clip: ClipSpec = None) -> FrozenCLIP:
    """The CLIP the stages were trained against: ``clip`` if given, else rebuilt from ``identity``.

    ``clip`` is a ``FrozenCLIP`` or ``FrozenCLIP`` keyword arguments (``model_name``,
    ``pretrained``, ``model_config``). Without it, only CLIPs named by an open_clip pretrained tag
    can be rebuilt; local weight files and random inits must be given. Either way the CLIP must
    match ``identity``.
    """
    if clip is None:
        tag = identity.get("pretrained")
        if tag in (None, "file"):
            source = "a local weights file" if tag == "file" else "a random initialisation"
            raise CheckpointLoadError(
                f"the checkpoints were trained against CLIP {identity.get('model_name')!r} from "
                f"{source} (weights sha256 {identity.get('weights_sha256')}), which cannot be "
                "rebuilt from the checkpoints alone; pass clip={model_name: ..., pretrained: "
                "<path to the CLIP weights>} (sample.py: checkpoints.clip.pretrained=<path>)"
            )
        clip = FrozenCLIP(identity["model_name"], pretrained=tag)
    elif isinstance(clip, Mapping):
        unknown = set(clip) - {"model_name", "pretrained", "model_config"}
        if unknown:
            raise ValueError(f"unknown CLIP keys {sorted(unknown)}; "
                             "allowed: model_name, pretrained, model_config")
        clip = FrozenCLIP(**{k: v for k, v in clip.items() if v is not None})
    if not same_clip(identity, clip.identity):
        diffs = "; ".join(f"{k}: {identity.get(k)!r} vs {clip.identity.get(k)!r}"
                          for k in IDENTITY_KEYS if identity.get(k) != clip.identity.get(k))
        raise StageMismatchError(
            f"the given CLIP {clip.identity.get('model_name')!r} is not the CLIP the checkpoints "
            f"were trained against ({identity.get('model_name')!r}); they differ in {diffs}"
        )
    return clip


def stage_paths(
    prior: str | Path, decoder: str | Path, upsamplers: Sequence[str | Path] = ()
) -> dict[str, Path]:
    """``{"prior": ..., "decoder": ..., "upsampler<k>": ...}`` in chain order."""
    paths = {"prior": Path(prior), "decoder": Path(decoder)}
    paths.update({f"upsampler{k}": Path(p) for k, p in enumerate(upsamplers)})
    return paths


def load_stage_modules(
    paths: Mapping[str, Path], device: str | torch.device = "cpu"
) -> dict[str, PriorModule | DecoderModule]:
    """Load every stage of :func:`stage_paths` and check that they fit together (no CLIP)."""
    _check_files(paths)
    modules = {stage: load_stage(stage, path, device) for stage, path in paths.items()}
    described = [(f"the {stage} checkpoint {paths[stage]}", clip_identity_to_check(m))
                 for stage, m in modules.items()]
    check_same_clip_models(described)
    chain = [(f"the {s} checkpoint {paths[s]}", m) for s, m in modules.items() if s != "prior"]
    check_resolutions(chain)
    if not modules["prior"].hparams["clip_identity"]:
        raise CheckpointLoadError(f"the prior checkpoint {paths['prior']} records no CLIP identity")
    return modules


def load_stages(
    prior: str | Path,
    decoder: str | Path,
    upsamplers: Sequence[str | Path] = (),
    clip: ClipSpec = None,
    device: str | torch.device = "cpu",
) -> tuple[FrozenCLIP, PriorModule, DecoderModule, list[DecoderModule], list[CheckpointRecord]]:
    """Load, check and return ``(clip, prior, decoder, upsamplers, records)``."""
    paths = stage_paths(prior, decoder, upsamplers)
    modules = load_stage_modules(paths, device)
    clip_model = clip_from_identity(modules["prior"].hparams["clip_identity"], clip).to(device)
    records = [CheckpointRecord(s, str(p.resolve()), file_sha256(p)) for s, p in paths.items()]
    ups = [modules[f"upsampler{k}"] for k in range(len(upsamplers))]
    return clip_model, modules["prior"], modules["decoder"], ups, records
