"""Zero-shot attribute accuracy of a released CLIP on shapes shards (the CLIP quality figure).

    python -m unclip.clip.zero_shot_eval --pretrained data/clip/shapes_full_clip.pt \\
        --shards 'data/shapes/val/shapes-*.tar'

Prints colour+shape, position and relation accuracy (:mod:`unclip.clip.zero_shot`) with the
number of questions of each task, as the training run's validation computes them, but through
:class:`~unclip.clip.FrozenCLIP` from the released weights file.
"""

from __future__ import annotations

import argparse
import json

import torch

from unclip.clip.frozen import FrozenCLIP
from unclip.clip.zero_shot import TASKS, zero_shot_correct
from unclip.data.image_caption import ImageCaptionDataModule


def evaluate(clip: FrozenCLIP, shards: str, batch_size: int = 256,
             resolution: int = 64) -> dict[str, dict[str, float]]:
    """Per task: accuracy and question count over every sample of ``shards``, the images
    resized to ``resolution`` px first (e.g. 32: can the CLIP read a 32 px decoder's output)."""
    data = ImageCaptionDataModule(val_shards=shards, batch_size=batch_size, num_workers=1,
                                  resolution=resolution)
    right = {task: [] for task in TASKS}
    with torch.inference_mode(), torch.autocast(clip.device.type, dtype=torch.bfloat16):
        for batch in data.val_dataloader():
            image_emb = clip.encode_image(batch["image"].to(clip.device))
            correct = zero_shot_correct(image_emb, batch["meta"],
                                        lambda prompts: clip.encode_text(prompts).pooled)
            for task, values in correct.items():
                right[task].append(values)
    result = {}
    for task, parts in right.items():
        values = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool)
        n = int(values.numel())
        result[task] = {"accuracy": float(values.float().mean()) if n else float("nan"), "n": n}
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="shapes-clip", help="open_clip model name")
    parser.add_argument("--pretrained", required=True, help="weights file or open_clip tag")
    parser.add_argument("--shards", required=True, help="shapes shards (brace or glob pattern)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--resolution", type=int, default=64,
                        help="resize the images to this side first (the CLIP then resizes them "
                             "to its input size)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    clip = FrozenCLIP(args.model, pretrained=args.pretrained)
    result = evaluate(clip, args.shards, args.batch_size, args.resolution)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{'task':<14}{'accuracy':>10}{'n':>8}")
    for task, row in result.items():
        print(f"{task:<14}{100 * row['accuracy']:>9.1f}%{row['n']:>8}")


if __name__ == "__main__":
    main()
