"""``EmbeddingDataModule``: precomputed CLIP embeddings for the prior (and the decoder).

Shard layout (docs/interfaces.md, written by ``unclip.data.precompute``): per sample
``img_emb.npy`` float32 (D,), ``txt_emb.npy`` float32 (D,), ``txt_tokens.npy`` float16 (L, W),
``txt_mask.npy`` bool (L,), ``txt``, ``json``, optionally ``png``; beside the shards
``stats.json`` and ``clip_identity.json``.

Batch: ``image_emb`` (B, D), ``text_emb`` (B, D), ``text_tokens`` (B, L, W) float32,
``text_mask`` (B, L) bool, ``caption`` list[str], ``key`` list[str], ``meta`` list[dict], and
``image`` (B, 3, H, W) in [-1, 1] when ``with_images``.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .datamodule import Pattern, ShardDataModule
from .image_caption import read_caption, read_meta
from .rebalance import KeepByObjectCount
from .robust import SkipSample
from .shards import read_sidecar, shard_directory
from .transforms import images_to_tensor, load_image

ARRAYS: dict[str, str] = {  # batch key -> file extension
    "image_emb": "img_emb.npy",
    "text_emb": "txt_emb.npy",
    "text_tokens": "txt_tokens.npy",
    "text_mask": "txt_mask.npy",
}


NPY_MAGIC = b"\x93NUMPY"


def read_array(sample: dict, extension: str) -> np.ndarray:
    """A ``.npy`` member; ``SkipSample`` when missing or not a plain array file."""
    if extension not in sample:
        raise SkipSample("missing_embedding", f"no .{extension} file")
    try:
        return read_npy(sample[extension])
    except (ValueError, OSError, EOFError) as err:
        raise SkipSample("invalid_array", f".{extension}: {err!r}") from err


def read_npy(data: bytes) -> np.ndarray:
    """The array of a ``.npy`` file's bytes, as ``np.load(allow_pickle=False)`` reads it.

    Much faster for many small files of few layouts (20x for a shard's arrays): each distinct
    header is parsed once, and the array is a read-only view of ``data``, not a copy. Raises
    ``ValueError`` for anything that is not a complete, pickle-free ``.npy`` file.
    """
    if data[:6] != NPY_MAGIC or len(data) < 10:
        raise ValueError("not a .npy file (bad magic string)")
    major = data[6]
    if major not in (1, 2):  # 3.0: utf-8 field names, rare; numpy reads it
        return np.load(io.BytesIO(data), allow_pickle=False)
    start = 10 if major == 1 else 12
    offset = start + int.from_bytes(data[8:start], "little")
    if len(data) < offset:
        raise ValueError(f".npy header truncated ({len(data)} of {offset} bytes)")
    dtype, shape, fortran = _npy_header(bytes(data[:offset]))
    count = math.prod(shape)
    if len(data) - offset < count * dtype.itemsize:
        raise ValueError(f".npy data truncated: {len(data) - offset} bytes for "
                         f"{count} x {dtype}")
    array = np.frombuffer(data, dtype, count, offset)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


@functools.lru_cache(maxsize=256)
def _npy_header(header: bytes) -> tuple[np.dtype, tuple[int, ...], bool]:
    """``(dtype, shape, fortran_order)`` of a ``.npy`` header (magic string included)."""
    stream = io.BytesIO(header)
    version = np.lib.format.read_magic(stream)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = read(stream)
    if dtype.hasobject:
        raise ValueError(f"object arrays need pickle ({dtype})")
    return dtype, shape, fortran


class EmbeddingDecoder:
    """Raw sample -> tensors, checking every sample's shapes against the first one's (per
    worker) or against ``embed_dim``, so a batch always stacks. With a ``keep`` rule, a sample
    it leaves out raises ``LeftOut`` before its arrays and image are decoded."""

    def __init__(self, with_images: bool = False, resolution: int = 64,
                 embed_dim: int | None = None, keep: KeepByObjectCount | None = None) -> None:
        self.with_images = with_images
        self.resolution = resolution
        self.embed_dim = embed_dim
        self.keep = keep
        self.shapes: dict[str, tuple[int, ...]] | None = None

    def __call__(self, sample: dict) -> dict:
        meta = read_meta(sample)
        if self.keep is not None:
            self.keep(sample["__key__"], meta, sample.get("__url__", ""))
        arrays = {key: read_array(sample, ext) for key, ext in ARRAYS.items()}
        self._check(arrays)
        out = {
            **arrays,  # numpy until collation: one batched conversion is much cheaper
            "caption": read_caption(sample),
            "key": sample["__key__"],
            "meta": meta,
        }
        if self.with_images:
            out["image"] = load_image(sample, self.resolution)
        return out

    def _check(self, arrays: dict[str, np.ndarray]) -> None:
        for key, array in arrays.items():
            if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
                raise SkipSample("invalid_array", f"{key} has dtype {array.dtype}")
        shapes = {key: tuple(a.shape) for key, a in arrays.items()}
        ranks = {"image_emb": 1, "text_emb": 1, "text_tokens": 2, "text_mask": 1}
        wrong = [f"{k} has shape {shapes[k]}" for k, r in ranks.items() if len(shapes[k]) != r]
        if wrong:
            raise SkipSample("invalid_array", "; ".join(wrong))
        dim = self.embed_dim or shapes["image_emb"][0]
        if shapes["image_emb"] != (dim,) or shapes["text_emb"] != (dim,):
            raise SkipSample("invalid_array", f"embeddings {shapes['image_emb']} and "
                             f"{shapes['text_emb']}, expected ({dim},)")
        if shapes["text_mask"][0] != shapes["text_tokens"][0]:
            raise SkipSample("invalid_array", f"mask {shapes['text_mask']} does not match "
                             f"tokens {shapes['text_tokens']}")
        if self.shapes is not None and shapes != self.shapes:
            raise SkipSample("invalid_array", f"shapes {shapes} differ from earlier samples' "
                             f"{self.shapes}")
        self.shapes = shapes


_DTYPES = {"image_emb": np.float32, "text_emb": np.float32, "text_tokens": np.float32,
           "text_mask": np.bool_}


def collate_embeddings(samples: list[dict]) -> dict:
    """Stack arrays into tensors (float32 embeddings and tokens, bool mask, images in [-1, 1]);
    keep captions, keys and metadata as lists."""
    batch = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key in _DTYPES:
            batch[key] = torch.from_numpy(np.stack(values).astype(_DTYPES[key], copy=False))
        elif key == "image":
            batch[key] = images_to_tensor(values)
        else:
            batch[key] = values
    return batch


class EmbeddingDataModule(ShardDataModule):
    """Batches of precomputed CLIP embeddings from shards (see the module docstring).

    ``with_images`` also decodes the ``png`` (for the decoder) at ``resolution``; ``embed_dim``
    pins the embedding width (default: the first sample's). ``keep_by_object_count`` rebalances
    the training stream by scene size (``{1: 0.5}``: half the single-object samples; see
    ``unclip.data.rebalance``), and ``keep_same_color_pairs`` keeps pairs of one colour with
    their own fraction (default: ``keep_by_object_count[2]``); validation and test keep every
    sample. ``stats`` and ``clip_identity`` read the precompute step's ``stats.json`` and
    ``clip_identity.json`` beside the train shards.
    See :class:`~unclip.data.datamodule.ShardDataModule` for the other arguments.
    """

    def __init__(
        self,
        train_shards: Pattern | None = None,
        val_shards: Pattern | None = None,
        test_shards: Pattern | None = None,
        batch_size: int = 256,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        shuffle_buffer: int = 5000,
        resampled: bool = False,
        epoch_length: int | None = None,
        persistent_workers: bool = False,
        pin_memory: bool = False,
        prefetch_factor: int | None = None,
        seed: int = 0,
        with_images: bool = False,
        resolution: int = 64,
        embed_dim: int | None = None,
        keep_by_object_count: Mapping[Any, float] | None = None,
        keep_same_color_pairs: float | None = None,
    ) -> None:
        super().__init__(
            train_shards, val_shards, test_shards, batch_size, val_batch_size, num_workers,
            shuffle_buffer, resampled, epoch_length, persistent_workers, pin_memory,
            prefetch_factor, seed,
        )
        self.with_images = with_images
        self.resolution = resolution
        self.embed_dim = embed_dim
        self.keep = (KeepByObjectCount(keep_by_object_count or {}, seed, keep_same_color_pairs)
                     if keep_by_object_count or keep_same_color_pairs is not None else None)
        # saved as plain ints and floats (a Hydra DictConfig would make the checkpoint unsafe
        # to load with weights_only); save_hyperparameters reads this local
        keep_by_object_count = dict(self.keep.keep) if self.keep is not None else None
        keep_same_color_pairs = self.keep.same_color_pairs if self.keep is not None else None
        self.save_hyperparameters()

    def make_decoder(self, stage: str) -> EmbeddingDecoder:
        keep = self.keep if stage == "train" else None
        return EmbeddingDecoder(self.with_images, self.resolution, self.expected_embed_dim(stage),
                                keep)

    def expected_embed_dim(self, stage: str) -> int | None:
        """``embed_dim``, else the width in the shards' ``clip_identity.json`` (so one bad first
        sample cannot set the width every later sample is checked against), else None."""
        if self.embed_dim is not None:
            return self.embed_dim
        identity = self.sidecar("clip_identity.json", stage) or {}
        width = identity.get("embed_dim")
        return int(width) if isinstance(width, int) and width > 0 else None

    def make_collate(self, stage: str):
        return collate_embeddings

    def sidecar(self, name: str, stage: str = "train") -> dict | None:
        """A JSON file written beside the ``stage`` shards (local shards in one directory)."""
        directory = shard_directory(self.shard_urls(stage))
        return read_sidecar(directory, name) if directory is not None else None

    @property
    def stats(self) -> dict | None:
        """The precompute step's embedding statistics (``stats.json``), if found."""
        return self.sidecar("stats.json")

    @property
    def clip_identity(self) -> dict | None:
        """The CLIP identity the embeddings were computed with (``clip_identity.json``)."""
        return self.sidecar("clip_identity.json")
