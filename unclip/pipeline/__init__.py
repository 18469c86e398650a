"""The unCLIP pipeline (2204.06125): text -> CLIP -> prior -> decoder -> upsamplers, and the
paper's image manipulations (variations, interpolations, text diffs) with DDIM inversion.

```python
from unclip.pipeline import UnCLIPPipeline, PriorSettings, DecoderSettings

pipe = UnCLIPPipeline.from_checkpoints(prior="prior.ckpt", decoder="decoder.ckpt",
                                       upsamplers=["up64.ckpt"], device="cuda")
out = pipe.text_to_image(["a large red circle in the top left"], num_images_per_prompt=4,
                         decoder_settings=DecoderSettings(guidance_scale=3.0), seed=0)
out.images  # (4, 3, 64, 64) in [-1, 1]
```
"""

from .core import VARIATION_ETA, Inversion, PipelineOutput, UnCLIPPipeline, variation_settings
from .geometry import slerp, text_diff_direction, text_diff_path
from .images import ImageInputError, load_image, load_images, make_grid, to_pil
from .inversion import ddim_invert
from .loading import CheckpointLoadError, CheckpointRecord, StageMismatchError, load_stages
from .outputs import write_run
from .settings import (
    DecoderSettings,
    InversionSettings,
    PriorSettings,
    StageSettings,
    UpsamplerSettings,
)
from .stages import stage_generator

__all__ = [
    "VARIATION_ETA",
    "CheckpointLoadError",
    "CheckpointRecord",
    "DecoderSettings",
    "ImageInputError",
    "Inversion",
    "InversionSettings",
    "PipelineOutput",
    "PriorSettings",
    "StageMismatchError",
    "StageSettings",
    "UnCLIPPipeline",
    "UpsamplerSettings",
    "ddim_invert",
    "load_image",
    "load_images",
    "load_stages",
    "make_grid",
    "slerp",
    "stage_generator",
    "text_diff_direction",
    "text_diff_path",
    "to_pil",
    "variation_settings",
    "write_run",
]
