"""A tiny, real, randomly initialised unCLIP stack saved to real Lightning checkpoints.

Built once per session: a tiny open_clip CLIP (``tiny-clip``) saved as a weights file, a prior, a
16 px base decoder (image and caption conditioned) and a 16 -> 32 px upsampler, each saved with
``Trainer.save_checkpoint``; plus stages made for the refusals (another CLIP, a mismatched
upsampler). Zero-initialised output layers get random weights so that outputs depend on the
conditioning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from unclip.clip import FrozenCLIP
from unclip.lit.decoder import DecoderModule
from unclip.lit.prior import PriorModule
from unclip.pipeline import UnCLIPPipeline

DIFFUSION = {"schedule": {"name": "cosine", "timesteps": 1000}, "prediction": "eps"}
UNET = dict(model_channels=16, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[8],
            head_channels=16, groups=8)


@dataclass(frozen=True)
class Stack:
    """Paths of the session's checkpoints and CLIP weight files."""

    root: Path
    clip: Path
    prior: Path
    decoder: Path
    upsampler: Path
    other_clip: Path
    decoder_other_clip: Path
    upsampler_8px: Path

    def clip_spec(self, path: Path | None = None) -> dict[str, str]:
        return {"model_name": "tiny-clip", "pretrained": str(path or self.clip)}


def _randomize_zero_layers(module: nn.Module, seed: int) -> None:
    """Give all-zero weight tensors (zero-initialised outputs) small random values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.ndim >= 2 and not p.any():
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def _save(module: pl.LightningModule, path: Path) -> Path:
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", max_steps=0)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path


def _clip_file(path: Path, seed: int) -> FrozenCLIP:
    torch.manual_seed(seed)
    torch.save(FrozenCLIP("tiny-clip").model.state_dict(), path)
    return FrozenCLIP("tiny-clip", pretrained=str(path))


def make_prior(identity: dict) -> PriorModule:
    torch.manual_seed(1)
    return PriorModule(
        network=dict(dim=None, token_dim=None, width=32, depth=2, heads=4, text_context=16),
        diffusion={**DIFFUSION, "prediction": "x0"}, norm={"kind": "l2", "stats": None},
        clip_identity=identity, sampling={"sampler": "ddim", "steps": 4, "best_of": 2},
    )


def make_decoder(identity: dict, resolution: int = 16, low_res: int | None = None,
                 seed: int = 2) -> DecoderModule:
    torch.manual_seed(seed)
    if low_res is None:
        module = DecoderModule(network=UNET, diffusion=DIFFUSION, resolution=resolution,
                               clip_identity=identity, image_condition=True, text_condition=True)
    else:
        module = DecoderModule(network=dict(UNET, attn_resolutions=[]), diffusion=DIFFUSION,
                               resolution=resolution, clip_identity=identity,
                               image_condition=False, low_res={"resolution": low_res})
    _randomize_zero_layers(module, seed)
    return module


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: the tiny networks gain nothing from more, and on a shared CPU the
    extra threads' spinning made these tests several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build_stack(root: Path, with_8px_upsampler: bool = True) -> Stack:
    """Tiny trained-shape checkpoints of every stage under ``root`` (see :class:`Stack`)."""
    clip = _clip_file(root / "clip.pt", seed=0)
    other = _clip_file(root / "other_clip.pt", seed=1)
    upsampler_8px = root / "upsampler_8px.ckpt"
    if with_8px_upsampler:
        _save(make_decoder(clip.identity, 16, low_res=8, seed=4), upsampler_8px)
    return Stack(
        root=root,
        clip=root / "clip.pt",
        prior=_save(make_prior(clip.identity), root / "prior.ckpt"),
        decoder=_save(make_decoder(clip.identity), root / "decoder.ckpt"),
        upsampler=_save(make_decoder(clip.identity, 32, low_res=16, seed=3),
                        root / "upsampler.ckpt"),
        other_clip=root / "other_clip.pt",
        decoder_other_clip=_save(make_decoder(other.identity), root / "decoder_other.ckpt"),
        upsampler_8px=upsampler_8px,
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    return build_stack(tmp_path_factory.mktemp("unclip_stack"))


@pytest.fixture(scope="session")
def pipe(stack: Stack) -> UnCLIPPipeline:
    """The full stack (prior, 16 px decoder, 32 px upsampler) loaded from its checkpoints."""
    return UnCLIPPipeline.from_checkpoints(prior=stack.prior, decoder=stack.decoder,
                                           upsamplers=[stack.upsampler], clip=stack.clip_spec())


@pytest.fixture(scope="session")
def images() -> torch.Tensor:
    """Two 32 px test images in [-1, 1]: a red disc and a blue square on dark grey."""
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    img = torch.full((2, 3, 32, 32), -0.75)
    disc = (yy - 10) ** 2 + (xx - 10) ** 2 < 36
    img[0, 0][disc], img[0, 1][disc], img[0, 2][disc] = 0.7, -0.7, -0.7
    square = (yy > 14) & (yy < 28) & (xx > 14) & (xx < 28)
    img[1, 0][square], img[1, 1][square], img[1, 2][square] = -0.6, -0.3, 0.8
    return img
