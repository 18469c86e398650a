"""Diffusion math shared by the prior, the decoder and the upsamplers (parameter-free).

```python
from unclip.diffusion import make_schedule, GaussianDiffusion, sample

schedule = make_schedule("cosine", timesteps=1000)
diffusion = GaussianDiffusion(schedule, prediction="v", loss_weighting="min_snr")
loss, t = diffusion.training_loss(model, x0, cond)
x0 = sample(diffusion, model, torch.randn(shape), sampler="dpmpp_2m", steps=20, spacing="logsnr")
```
"""

from .denoiser import ModelDenoiser
from .gaussian import GaussianDiffusion
from .guidance import (
    THRESHOLDS,
    ClassifierFreeGuidance,
    TwoConditionGuidance,
    apply_threshold,
    dynamic_threshold,
    static_threshold,
)
from .parameterization import (
    LOSS_WEIGHTINGS,
    PREDICTIONS,
    convert,
    eps_from,
    loss_weight,
    target_from,
    v_from,
    x0_from,
)
from .samplers import (
    SAMPLERS,
    get_sampler,
    nfe,
    sample_ddim,
    sample_ddpm,
    sample_dpmpp_2m,
    sample_heun,
)
from .sampling import sample
from .schedules import SCHEDULES, DiscreteSchedule, NoiseSchedule, make_schedule
from .spacing import SPACINGS, make_timesteps

__all__ = [
    "LOSS_WEIGHTINGS",
    "PREDICTIONS",
    "SAMPLERS",
    "SCHEDULES",
    "SPACINGS",
    "THRESHOLDS",
    "ClassifierFreeGuidance",
    "TwoConditionGuidance",
    "DiscreteSchedule",
    "GaussianDiffusion",
    "ModelDenoiser",
    "NoiseSchedule",
    "apply_threshold",
    "convert",
    "dynamic_threshold",
    "eps_from",
    "get_sampler",
    "loss_weight",
    "make_schedule",
    "make_timesteps",
    "nfe",
    "sample",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpmpp_2m",
    "sample_heun",
    "static_threshold",
    "target_from",
    "v_from",
    "x0_from",
]
