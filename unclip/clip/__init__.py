"""Frozen open_clip CLIP for conditioning, its identity record, and the project's CLIP configs."""

from unclip.clip.frozen import FrozenCLIP, TextEncoding
from unclip.clip.identity import (
    IDENTITY_KEYS,
    check_same_clip,
    load_identity,
    same_clip,
    save_identity,
)
from unclip.clip.model_configs import PROJECT_CONFIG_DIR, register_project_configs
from unclip.clip.preprocess import preprocess_images

register_project_configs()

__all__ = [
    "FrozenCLIP",
    "IDENTITY_KEYS",
    "PROJECT_CONFIG_DIR",
    "TextEncoding",
    "check_same_clip",
    "load_identity",
    "preprocess_images",
    "register_project_configs",
    "same_clip",
    "save_identity",
]
