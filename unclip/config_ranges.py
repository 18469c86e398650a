"""The allowed ranges of numeric config values, checked at start-up by
:func:`unclip.config_check.check_config`.

Patterns match a key's name (``lr``, ``*_prob``) or, with dots, the end of its path
(``trainer.max_steps``); list items are checked under their list's name. The first match wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """Allowed numbers: ``low``/``high`` bounds (``None``: unbounded), open or closed; ``also``
    lists special values allowed outside them (Lightning's -1 = unlimited)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    also: tuple[int, ...] = ()

    def __contains__(self, value: float) -> bool:
        if value in self.also:
            return True
        if self.integer and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            text = f"{kind} in {left}{self.low:g}, {self.high:g}{right}"
        elif self.low is not None:
            text = f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        elif self.high is not None:
            text = f"{kind} {'<' if self.high_open else '<='} {self.high:g}"
        else:
            text = f"a finite {kind.split()[-1]}"
        return text + "".join(f" or {v}" for v in self.also)


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
PROBABILITY = Range(0, 1)
COUNT = Range(1, integer=True)  # sizes, widths, steps: at least one
NON_NEGATIVE_INT = Range(0, integer=True)

RANGES: tuple[tuple[str, Range], ...] = (
    # Lightning's Trainer and callbacks
    ("trainer.max_steps", Range(1, integer=True, also=(-1,))),
    ("trainer.max_epochs", Range(1, integer=True, also=(-1,))),
    ("trainer.min_steps", NON_NEGATIVE_INT),
    ("trainer.num_nodes", COUNT),
    ("trainer.accumulate_grad_batches", COUNT),
    ("trainer.log_every_n_steps", COUNT),
    ("trainer.val_check_interval", POSITIVE),
    ("trainer.limit_*_batches", NON_NEGATIVE),
    ("trainer.num_sanity_val_steps", Range(0, integer=True, also=(-1,))),
    ("trainer.gradient_clip_val", NON_NEGATIVE),
    ("save_top_k", Range(-1, integer=True)),
    ("every_n_train_steps", NON_NEGATIVE_INT),
    ("decay", PROBABILITY),  # EMA
    ("update_every_n_steps", COUNT),
    ("max_consecutive", COUNT),
    ("refresh_rate", NON_NEGATIVE_INT),
    ("time_budget.probe_steps", COUNT),
    ("time_budget.recheck_every", NON_NEGATIVE_INT),
    ("time_budget.margin", Range(0, 1, high_open=True)),
    ("time_budget.tolerance", PROBABILITY),
    # optimisation
    ("lr", POSITIVE),
    ("eps", POSITIVE),
    ("weight_decay", NON_NEGATIVE),
    ("betas", Range(0, 1, high_open=True)),
    ("warmup_steps", NON_NEGATIVE_INT),
    ("total_iters", NON_NEGATIVE_INT),
    ("start_factor", Range(0, 1, low_open=True)),
    ("end_factor", PROBABILITY),
    ("min_ratio", PROBABILITY),
    ("pct_start", PROBABILITY),
    ("*div_factor", POSITIVE),
    ("min_snr_gamma", POSITIVE),
    # probabilities, fractions, noise levels
    ("dropout", Range(0, 1, high_open=True)),
    ("*_prob", PROBABILITY),
    ("*_fraction", PROBABILITY),
    ("hard_negatives", NON_NEGATIVE_INT),  # CLIP: spatial hard-negative captions
    ("hard_negative_weight", NON_NEGATIVE),
    ("position_init_std", POSITIVE),
    ("low_res.*_level", PROBABILITY),  # upsampler noise augmentation levels
    ("aug_level", PROBABILITY),
    # data
    ("*batch_size", COUNT),
    ("num_workers", NON_NEGATIVE_INT),
    ("shuffle_buffer", NON_NEGATIVE_INT),
    ("epoch_length", COUNT),
    ("resolution", COUNT),
    # networks
    ("width", COUNT), ("depth", COUNT), ("heads", COUNT), ("text_context", COUNT),
    ("model_channels", COUNT), ("head_channels", COUNT), ("num_blocks", COUNT),
    ("channel_mult", COUNT), ("attn_resolutions", COUNT), ("groups", COUNT),
    ("num_image_tokens", NON_NEGATIVE_INT),
    ("mlp_ratio", POSITIVE),
    ("blur_kernel", COUNT),
    ("blur_sigma", POSITIVE),
    # diffusion and sampling
    ("timesteps", COUNT),
    ("steps", COUNT),
    ("best_of", COUNT),
    ("guidance_scale", NON_NEGATIVE), ("guidance", NON_NEGATIVE), ("prior_guidance", NON_NEGATIVE),
    ("text_guidance_scale", NON_NEGATIVE),
    ("eta", NON_NEGATIVE),
    ("num_val_samples", NON_NEGATIVE_INT),
    ("loss_buckets", COUNT),
    ("same_color_pair_weight", POSITIVE),
    ("ceiling_batches", NON_NEGATIVE_INT),
    ("interpolate.frames", Range(2, integer=True)),
    ("n", COUNT),
    # evaluation
    ("num_samples", COUNT), ("images_per_prompt", COUNT),
    ("kid_subset_size", COUNT), ("kid_subsets", COUNT),
)
