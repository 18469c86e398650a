"""Sample from a trained unCLIP stack (2204.06125): text to image, variations, interpolations,
text diffs and DDIM inversion.

    python sample.py checkpoints.prior=P.ckpt checkpoints.decoder=D.ckpt \\
        prompt="a large red circle in the top left" n=8 seed=0
    python sample.py ... mode=variations 'images=[a.png]'

Writes ``images/``, ``grid.png`` and ``run.json`` into the Hydra run directory (see
``configs/sample.yaml`` for every option).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from unclip.pipeline.run import run_sample


@hydra.main(version_base="1.3", config_path="configs", config_name="sample")
def main(cfg: DictConfig) -> None:
    """Compose the config and sample."""
    run_sample(cfg)


if __name__ == "__main__":
    main()
