"""FrozenCLIP: a frozen open_clip model with the encodings the prior and decoder condition on."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import open_clip
import torch
from torch import nn

from unclip.clip.identity import file_sha256, state_dict_sha256
from unclip.clip.model_configs import (
    config_sha256,
    model_config,
    register_config_file,
    register_project_configs,
)
from unclip.clip.preprocess import preprocess_images
from unclip.clip.tokenize import tokenize


class TextEncoding(NamedTuple):
    """``pooled`` (B, D) projected text embedding; ``tokens`` (B, L, W) last-layer token
    encodings after ``ln_final``; ``mask`` (B, L) bool, True on real tokens."""

    pooled: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor


def _token_norm(model: nn.Module) -> nn.Module:
    """The final LayerNorm of the text tower, applied to every token before pooling."""
    text = getattr(model, "text", model)
    ln = getattr(text, "ln_final", None)
    if ln is None or getattr(text, "cls_emb", None) is not None:
        raise NotImplementedError(
            f"{type(model).__name__} with text tower {type(text).__name__} has no per-token "
            "final LayerNorm; FrozenCLIP supports open_clip CLIP and CustomTextCLIP text towers"
        )
    return ln


class FrozenCLIP(nn.Module):
    """A frozen open_clip CLIP: always in eval mode, no parameter requires grad.

    Build it in one of three ways:

    - ``FrozenCLIP("ViT-B-32", pretrained="laion2b_s34b_b79k")``: open_clip name and tag
      (downloads through open_clip's cache);
    - ``FrozenCLIP("shapes-clip", pretrained="/path/shapes_clip.pt")``: name and local file
      (a plain state dict, as ``open_clip.create_model(..., pretrained=path)`` takes);
    - ``FrozenCLIP(model_config="/path/my-clip.json", pretrained=...)``: an architecture of your
      own, registered with open_clip under the file's stem.

    The project's configs in ``unclip/clip_configs`` are registered on import.
    Gradients still flow to *inputs* (images) if the caller asks for them.
    """

    def __init__(
        self,
        model_name: str | None = None,
        pretrained: str | None = None,
        model_config: str | os.PathLike | None = None,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        register_project_configs()
        if model_config is not None:
            stem = register_config_file(model_config)
            if model_name is not None and model_name != stem:
                raise ValueError(
                    f"model_name={model_name!r} disagrees with model_config {model_config} "
                    f"(open_clip registers it as {stem!r}); give one or make them match"
                )
            model_name = stem
        if model_name is None:
            raise ValueError("FrozenCLIP needs model_name or model_config")
        cfg = _model_config(model_name)
        pretrained = str(pretrained) if pretrained else None
        if pretrained and not Path(pretrained).is_file() and not _is_tag(model_name, pretrained):
            raise FileNotFoundError(
                f"pretrained={pretrained!r} for CLIP {model_name!r} is neither a file nor an "
                f"open_clip tag (tags: {open_clip.list_pretrained_tags_by_model(model_name)})"
            )
        _check_quick_gelu(model_name, pretrained, cfg)
        self.model = open_clip.create_model(model_name, pretrained=pretrained, cache_dir=cache_dir)
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.model.requires_grad_(False)
        self.model.eval()
        self._ln_final = _token_norm(self.model)
        self.preprocess_cfg = dict(open_clip.get_model_preprocess_cfg(self.model))
        self.model_name = model_name
        self.embed_dim = int(cfg["embed_dim"])
        self.token_dim = int(self._ln_final.normalized_shape[0])
        self.context_length = int(self.model.context_length)
        self.identity = self._identity(cfg, pretrained)

    def _identity(self, cfg: dict[str, Any], pretrained: str | None) -> dict[str, Any]:
        if pretrained is None:
            tag, weights = None, state_dict_sha256(self.model)
        elif Path(pretrained).is_file():
            tag, weights = "file", file_sha256(pretrained)
        else:
            tag, weights = pretrained, None
        size = self.preprocess_cfg["size"]
        size = [size, size] if isinstance(size, int) else [int(s) for s in size]
        return {
            "model_name": self.model_name,
            "config_sha256": config_sha256(cfg),
            "pretrained": tag,
            "weights_sha256": weights,
            "embed_dim": self.embed_dim,
            "token_dim": self.token_dim,
            "context_length": self.context_length,
            "image_size": size,
        }

    def train(self, mode: bool = True) -> FrozenCLIP:
        """Stays in eval mode whatever the parent module does."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def tokenize(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and real-token mask ``(B, L)`` on the model's device."""
        tokens, mask = tokenize(self.tokenizer, captions, self.context_length)
        return tokens.to(self.device), mask.to(self.device)

    def encode_text(self, captions: Sequence[str]) -> TextEncoding:
        """Pooled projected embedding (as ``model.encode_text``), token encodings, mask."""
        tokens, mask = self.tokenize(captions)
        captured: list[torch.Tensor] = []
        hook = self._ln_final.register_forward_hook(lambda m, i, out: captured.append(out))
        try:
            pooled = self.model.encode_text(tokens)
        finally:
            hook.remove()
        if len(captured) != 1 or captured[0].shape[:2] != tokens.shape:
            raise RuntimeError(f"could not capture token encodings of {self.model_name}")
        return TextEncoding(pooled, captured[0], mask)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Image embedding ``(B, D)`` of images ``(B, 3, H, W)`` in ``[-1, 1]``."""
        x = preprocess_images(images.to(self.device), self.preprocess_cfg)
        return self.model.encode_image(x)

    def extra_repr(self) -> str:
        return f"model_name={self.model_name!r}, pretrained={self.identity['pretrained']!r}"


def _model_config(model_name: str) -> dict[str, Any]:
    return model_config(model_name.replace("/", "-"))


def _check_quick_gelu(model_name: str, pretrained: str | None, cfg: dict[str, Any]) -> None:
    """open_clip only warns when a tag was trained with another GELU than the config uses."""
    if not pretrained or Path(pretrained).is_file():
        return
    tag_cfg = open_clip.get_pretrained_cfg(model_name.replace("/", "-"), pretrained) or {}
    if bool(tag_cfg.get("quick_gelu", False)) != bool(cfg.get("quick_gelu", False)):
        base = model_name.removesuffix("-quickgelu")
        hint = f"{base}-quickgelu" if tag_cfg.get("quick_gelu") else base
        raise ValueError(
            f"open_clip weights {pretrained!r} were trained with quick_gelu="
            f"{bool(tag_cfg.get('quick_gelu'))} but model {model_name!r} has quick_gelu="
            f"{bool(cfg.get('quick_gelu'))}; use model_name={hint!r}"
        )


def _is_tag(model_name: str, tag: str) -> bool:
    return tag in open_clip.list_pretrained_tags_by_model(model_name.replace("/", "-"))
