"""Host-device synchronisations in a training step, found on any machine (no GPU needed).

A CUDA step that reads a tensor's value on the host (``.item()``, ``bool(t)``, ``float(t)``,
``if t.any():``) or asks for an output whose size depends on values (``nonzero``, boolean-mask
indexing, ``masked_select``, ``unique``, ``repeat_interleave`` without ``output_size``) waits
for the GPU, which stalls the launch queue. This records every such op a step runs (a
``TorchDispatchMode``; on CPU they are harmless, so the count is what a GPU run would suffer)
with the line of this project (or of Lightning) that asked for it::

    python benchmarks/syncs.py [--stage decoder|upsampler|prior] [--callbacks] [--trainer]

``--trainer`` runs the steps through a ``pytorch_lightning.Trainer`` (logging, clipping,
callbacks); otherwise the module's ``training_step`` + backward + optimizer step only.
"""

from __future__ import annotations

import argparse
import collections
import sys
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from _bench import print_table  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

SYNC_OPS = {"_local_scalar_dense", "nonzero", "nonzero_static", "is_nonzero", "masked_select",
            "_unique", "_unique2", "unique_dim", "unique_consecutive", "equal",
            "repeat_interleave"}
OWN = ("/unclip/", "/benchmarks/_ours.py", "/pytorch_lightning/", "/lightning/")


def _syncs(func: Any, args: tuple, kwargs: dict) -> bool:
    name = func.overloadpacket.__name__
    if name == "repeat_interleave":
        return kwargs.get("output_size") is None and not any(
            isinstance(a, int) for a in args[1:2])
    if name in SYNC_OPS:
        return True
    if name in ("index", "index_put", "index_put_"):  # boolean masks become nonzero()
        indices = args[1] if len(args) > 1 else []
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or [])
    return False


class SyncRecorder(TorchDispatchMode):
    """Counts ops that would synchronise a CUDA stream, keyed by (op, calling line)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _syncs(func, args, kwargs) and not host_side():
            self.counts[(func.overloadpacket.__name__, where())] += 1
        return func(*args, **kwargs)


def host_side() -> bool:
    """Reads that stay on the host on a GPU too: the optimizers' step counters (CPU tensors
    unless ``capturable``/``fused``) and the recorder's own frames."""
    for frame in reversed(traceback.extract_stack()):
        name = frame.filename
        if name.endswith("syncs.py") or ("/torch/" in name and "/torch/optim/" not in name
                                         and "swa_utils" not in name):
            continue  # this recorder, dispatch and dynamo wrappers, tensor methods
        # the innermost caller of the op; swa_utils' n_averaged is a device buffer
        return "/torch/optim/" in name and "swa_utils" not in name
    return False


def where() -> str:
    """The innermost stack frame in this project or in Lightning, as ``path:line function``."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if any(key in frame.filename for key in OWN) and "_python_dispatch" not in frame.filename:
            path = frame.filename
            for key in ("/unclip/", "/pytorch_lightning/", "/benchmarks/"):
                if key in path:
                    path = key.strip("/") + "/" + path.split(key, 1)[1]
                    break
            return f"{path}:{frame.lineno} {frame.name}"
    return "(torch internals)"


def record(stage: str, steps: int, trainer: bool, callbacks: bool) -> tuple[dict, int]:
    """Sync ops over ``steps`` bf16 training steps of a stage (after one untimed step)."""
    import _ours

    device = torch.device("cpu")
    if stage == "prior":
        module = _ours.build_prior("small")
        batch = _ours.decoder_batch(16, 1)
        batch.pop("image")
    else:
        module = _ours.build_decoder("base32" if stage == "decoder" else "upsampler64")
        batch = _ours.decoder_batch(4, 64 if stage == "upsampler" else 32)
    recorder = SyncRecorder()
    if trainer:
        from _bench import PeakMemory

        extra = _ours.default_callbacks() if callbacks else []
        mem = PeakMemory(device, 0.0)
        with recorder:
            _ours.fit_steps(module, batch, device, "bf16", steps - 1, 1, mem, extra)
    else:
        step = _ours.manual_step_fn(module, batch, device, "bf16")
        step()
        with recorder:
            for _ in range(steps):
                step()
    return dict(recorder.counts), steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--stage", default="decoder", choices=("decoder", "upsampler", "prior"))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--trainer", action="store_true", help="through a Lightning Trainer")
    p.add_argument("--callbacks", action="store_true", help="with EMA and NonFiniteGuard")
    args = p.parse_args()
    torch.set_num_threads(1)
    counts, steps = record(args.stage, args.steps, args.trainer, args.callbacks)
    rows = [[op, site, n / steps] for (op, site), n in sorted(counts.items(),
                                                             key=lambda kv: -kv[1])]
    how = "Trainer" + (" + EMA, NonFiniteGuard" if args.callbacks else "") if args.trainer \
        else "training_step + backward + optimizer"
    print_table(f"host-device syncs per {args.stage} training step ({how}; ops that wait for a "
                "GPU)", ["op", "asked for at", "per step"], rows)
    print(f"total: {sum(counts.values()) / steps:.1f} per step")


if __name__ == "__main__":
    main()
