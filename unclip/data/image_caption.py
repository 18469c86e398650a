"""``ImageCaptionDataModule``: batches of images and captions from img2dataset-style shards.

Each sample: ``<key>.jpg|jpeg|png|webp``, ``<key>.txt`` (caption) and optionally ``<key>.json``
(metadata, e.g. the shapes ground truth). Batch (docs/interfaces.md): ``image`` (B, 3, H, W) in
[-1, 1], ``caption`` list[str], ``key`` list[str], ``meta`` list[dict].
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .datamodule import Pattern, ShardDataModule
from .robust import SkipSample
from .transforms import IMAGE_KEYS, images_to_tensor, load_image


def read_caption(sample: dict, key: str = "txt") -> str:
    """The caption text; ``SkipSample`` when missing, blank or not UTF-8."""
    if key not in sample:
        raise SkipSample("missing_caption", f"no .{key} file")
    try:
        caption = sample[key].decode("utf-8").strip()
    except UnicodeDecodeError as err:
        raise SkipSample("undecodable_caption", repr(err)) from err
    if not caption:
        raise SkipSample("missing_caption", f"blank .{key} file")
    return caption


def read_meta(sample: dict, key: str = "json") -> dict:
    """The sample's JSON metadata ({} when absent); ``SkipSample`` when present but invalid."""
    if key not in sample:
        return {}
    try:
        meta = json.loads(sample[key])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SkipSample("invalid_json", repr(err)) from err
    if not isinstance(meta, dict):
        raise SkipSample("invalid_json", f"expected an object, got {type(meta).__name__}")
    return meta


@dataclass(frozen=True)
class ImageCaptionDecoder:
    """Raw sample -> ``{"image", "caption", "key", "meta"}`` at ``resolution``."""

    resolution: int
    caption_key: str = "txt"

    def __call__(self, sample: dict) -> dict:
        if not any(key in sample for key in IMAGE_KEYS):
            raise SkipSample("missing_image", f"no {'/'.join(IMAGE_KEYS)} file")
        caption = read_caption(sample, self.caption_key)
        meta = read_meta(sample)
        image = load_image(sample, self.resolution)
        return {"image": image, "caption": caption, "key": sample["__key__"], "meta": meta}


def collate_image_caption(samples: list[dict]) -> dict:
    """Stack images; keep captions, keys and metadata as lists."""
    return {
        "image": images_to_tensor([s["image"] for s in samples]),
        "caption": [s["caption"] for s in samples],
        "key": [s["key"] for s in samples],
        "meta": [s["meta"] for s in samples],
    }


class ImageCaptionDataModule(ShardDataModule):
    """Image-caption batches at ``resolution`` (short side resized, centre crop) from shards.

    See :class:`~unclip.data.datamodule.ShardDataModule` for the shard, worker and epoch
    arguments. ``caption_key`` picks the caption file extension (``txt``).
    """

    def __init__(
        self,
        train_shards: Pattern | None = None,
        val_shards: Pattern | None = None,
        test_shards: Pattern | None = None,
        resolution: int = 64,
        batch_size: int = 64,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        shuffle_buffer: int = 1000,
        resampled: bool = False,
        epoch_length: int | None = None,
        persistent_workers: bool = False,
        pin_memory: bool = False,
        prefetch_factor: int | None = None,
        seed: int = 0,
        caption_key: str = "txt",
    ) -> None:
        super().__init__(
            train_shards, val_shards, test_shards, batch_size, val_batch_size, num_workers,
            shuffle_buffer, resampled, epoch_length, persistent_workers, pin_memory,
            prefetch_factor, seed,
        )
        if resolution < 1:
            raise ValueError(f"resolution must be >= 1, got {resolution}")
        self.resolution = resolution
        self.caption_key = caption_key
        self.save_hyperparameters()

    def make_decoder(self, stage: str) -> ImageCaptionDecoder:
        return ImageCaptionDecoder(self.resolution, self.caption_key)

    def make_collate(self, stage: str):
        return collate_image_caption
