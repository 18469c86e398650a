"""Train the unCLIP diffusion prior.

    python train_prior.py                                  # prior/small on the shapes embeddings
    python train_prior.py experiment=shapes_full/prior     # the 10-minute CPU quality run
    python train_prior.py prior=dalle2 trainer=fsdp        # the paper's 1B prior
    python train_prior.py prior.lr=3e-4 prior.norm.kind=meanstd run_name=mine

The LightningModule config lives at the root key ``prior`` (``unclip.lit.prior.PriorModule``);
everything else (data, trainer, callbacks incl. EMA, loggers, resume) is the shared runner's.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from unclip.training import train


@hydra.main(version_base="1.3", config_path="configs", config_name="train_prior")
def main(cfg: DictConfig) -> dict[str, float]:
    """Compose the config and fit the prior."""
    return train(cfg, module_key="prior")


if __name__ == "__main__":
    main()
