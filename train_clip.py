"""Train a domain CLIP with open_clip's contrastive loss.

    python train_clip.py                                   # the shapes CLIP (~10 CPU minutes)
    python train_clip.py clip.model_name=ViT-B-32 clip.pretrained=laion2b_s34b_b79k \\
        data=webdataset trainer=gpu clip.export_path=null   # fine-tune a real CLIP
    python train_clip.py clip.model_config=/path/my-clip.json run_name=mine

The LightningModule config lives at the root key ``clip`` (``unclip.lit.clip.CLIPModule``);
data, trainer, callbacks, loggers and resume are the shared runner's. At the end the weights are
released as a plain open_clip state dict at ``clip.export_path``
(``${paths.data_dir}/clip/shapes_clip.pt``), which ``configs/clip/shapes.yaml`` loads.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from unclip.training import train


@hydra.main(version_base="1.3", config_path="configs", config_name="train_clip")
def main(cfg: DictConfig) -> dict[str, float]:
    """Compose the config and fit the CLIP."""
    return train(cfg, module_key="clip")


if __name__ == "__main__":
    main()
