"""Small real prior modules and in-memory embedding batches for the prior tests."""

from __future__ import annotations

import io
import json
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, Dataset

from unclip.lit.prior import PriorModule
from unclip.lr_schedules import warmup_cosine

D, W, L = 16, 12, 6
IDENTITY = {"model_name": "toy", "embed_dim": D, "token_dim": W, "context_length": L}
CAPTIONS = ["a red circle", "a blue square", "a green triangle", "a yellow circle"]


class ToyEmbeddings(Dataset):
    """Caption-dependent Gaussian image embeddings: image = text direction + small noise."""

    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        base = torch.Generator().manual_seed(123)  # the same caption geometry in every split
        self.text = torch.randn(len(CAPTIONS), D, generator=base)
        self.tokens = torch.randn(len(CAPTIONS), L, W, generator=base)
        self.image_mean = torch.randn(len(CAPTIONS), D, generator=base)
        self.idx = torch.randint(0, len(CAPTIONS), (n,), generator=g)
        self.noise = 0.1 * torch.randn(n, D, generator=g)
        self.lengths = torch.tensor([3, 4, 5, 6])

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i: int) -> dict[str, Any]:
        c = int(self.idx[i])
        return {
            "image_emb": self.image_mean[c] + self.noise[i],
            "text_emb": self.text[c],
            "text_tokens": self.tokens[c].half(),
            "text_mask": torch.arange(L) < self.lengths[c],
            "caption": CAPTIONS[c],
            "key": f"{i:06d}",
        }


def loader(n: int = 64, batch_size: int = 16, seed: int = 0) -> DataLoader:
    return DataLoader(ToyEmbeddings(n, seed), batch_size=batch_size)


def make_module(**kw: Any) -> PriorModule:
    torch.manual_seed(0)
    args: dict[str, Any] = dict(
        network=dict(dim=None, token_dim=None, width=32, depth=2, heads=4, text_context=None),
        diffusion={"schedule": {"name": "cosine", "timesteps": 1000}, "prediction": "x0"},
        norm={"kind": "l2", "stats": None},
        clip_identity=IDENTITY,
        sampling={"sampler": "ddim", "steps": 4, "best_of": 2},
        lr=1e-3,
        optimizer=partial(torch.optim.AdamW, weight_decay=0.01),
        scheduler=partial(warmup_cosine, warmup_steps=2, total_steps=20),
    )
    args.update(kw)
    return PriorModule(**args)


def first_batch(n: int = 8) -> dict[str, Any]:
    return next(iter(loader(n, batch_size=n)))


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def write_embedding_shards(root: Path, splits: dict[str, int] | None = None) -> Path:
    """Embedding shards in the precompute layout (docs/interfaces.md) with their side files."""
    splits = splits or {"train": 64, "val": 16}
    for seed, (split, n) in enumerate(splits.items()):
        directory = root / split
        directory.mkdir(parents=True)
        data = ToyEmbeddings(n, seed)
        with wds.TarWriter(str(directory / "emb-000000.tar")) as sink:
            for i in range(n):
                s = data[i]
                sink.write({
                    "__key__": s["key"],
                    "img_emb.npy": _npy(s["image_emb"].numpy()),
                    "txt_emb.npy": _npy(s["text_emb"].numpy()),
                    "txt_tokens.npy": _npy(s["text_tokens"].numpy()),
                    "txt_mask.npy": _npy(s["text_mask"].numpy()),
                    "txt": s["caption"],
                    "json": json.dumps({"caption": s["caption"]}),
                })
        emb = torch.stack([data[i]["image_emb"] for i in range(n)])
        txt = torch.stack([data[i]["text_emb"] for i in range(n)])
        stats = {
            side: {"mean": x.mean(0).tolist(), "std": x.std(0).tolist(),
                   "mean_norm": float(x.norm(dim=-1).mean())}
            for side, x in (("image", emb), ("text", txt))
        }
        (directory / "stats.json").write_text(json.dumps(stats))
        (directory / "clip_identity.json").write_text(json.dumps(IDENTITY))
    return root
