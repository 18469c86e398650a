"""Evaluate a trained unCLIP stack (configs/evaluate.yaml says how)."""

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from unclip.config_check import check_config
from unclip.eval.run import evaluate
from unclip.pipeline.run import load_pipeline, resolve_device

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="configs", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    check_config(cfg)
    pipe = load_pipeline(cfg, resolve_device(cfg.device))
    results = evaluate(cfg, pipe, Path(cfg.out_dir))
    print(results["table"])
    log.info("results: %s", Path(cfg.out_dir) / "results.json")


if __name__ == "__main__":
    main()
