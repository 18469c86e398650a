"""Entry point for the toy run used by the crash/resume tests (mirrors train_*.py)."""

import hydra
from omegaconf import DictConfig

from unclip.training import train


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg: DictConfig) -> None:
    train(cfg, "toy")


if __name__ == "__main__":
    main()
