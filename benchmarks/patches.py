"""Proposed changes to other parts of the package, applied as monkeypatches for measurement.

Each entry is a change we propose for a file owned elsewhere; ``--patch NAME`` on a benchmark
applies it in a separate worker so its gain is measured side by side with the unpatched code.
Once a change is applied for real, its entry goes.

Applied (issue #10), so no longer here: CPU attention as matmuls + fp32 softmax
(``unclip.models.layers.attention``, used by the U-Net and the prior), no context mask without
caption tokens (``DecoderConditioner``), and the sync-free training steps
(``decoder_logging.bucket_means``, ``LowResAugment.train`` without range checks, the prior's
padding cut once per batch by ``PriorModule.on_before_batch_transfer``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Setter = Callable[[Any, str, Any], None]
PATCHES: dict[str, Callable[[Setter], None]] = {}


def patch(fn: Callable[[Setter], None]) -> Callable[[Setter], None]:
    PATCHES[fn.__name__] = fn
    return fn


def apply(name: str, set_attr: Setter = setattr) -> None:
    """Apply the patch called ``name`` (a ValueError lists the choices).

    ``set_attr`` does the assignments (``setattr``; tests pass ``monkeypatch.setattr``, which
    undoes them).
    """
    if name not in PATCHES:
        raise ValueError(f"unknown patch {name!r}; choose one of {', '.join(PATCHES)}")
    PATCHES[name](set_attr)


@patch
def foreach_adamw(set_attr: Setter = setattr) -> None:
    """configs/{decoder,prior}/*.yaml optimizer: ``foreach: true`` (CPU's default is the
    per-parameter loop; ``fused`` is refused by Lightning together with gradient clipping).

    Not applied: it is a config change (``configs/`` is outside issue #10's files), and on CUDA
    PyTorch already picks ``foreach``; measure it with ``ab_patch.py --patch foreach_adamw``.
    """
    import functools

    import torch

    set_attr(torch.optim.AdamW, "__init__",
             functools.partialmethod(torch.optim.AdamW.__init__, foreach=True))
