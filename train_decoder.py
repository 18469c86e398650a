"""Train an unCLIP diffusion decoder or upsampler.

    python train_decoder.py                                # decoder/base32 on the shapes embeddings
    python train_decoder.py decoder=upsampler64            # shapes upsampler 32 -> 64 px
    python train_decoder.py decoder=glide64 trainer=gpu    # the paper's 64 px base decoder
    python train_decoder.py decoder.lr=1e-4 trainer.val_check_interval=200 run_name=mine

The LightningModule config lives at the root key ``decoder`` (``unclip.lit.decoder.DecoderModule``;
a base decoder, or an upsampler when ``decoder.low_res`` is set); everything else (data, trainer,
callbacks incl. EMA, loggers, resume) is the shared runner's.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from unclip.training import train


@hydra.main(version_base="1.3", config_path="configs", config_name="train_decoder")
def main(cfg: DictConfig) -> dict[str, float]:
    """Compose the config and fit the decoder or upsampler."""
    return train(cfg, module_key="decoder")


if __name__ == "__main__":
    main()
