"""Every seeded generator that feeds a model's sampler is made on the model's device.

``torch.randn(..., generator=g, device="cuda")`` refuses a CPU generator, so a bare
``torch.Generator()`` beside a model works on the CPU and breaks on CUDA: the GPU check
(``benchmarks/gpu_check.sh``) found one in ``evaluate.py``'s prior section. CI has no GPU, so
this reads the package's source instead.
"""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT

BARE = re.compile(r"torch\.Generator\(\s*\)")


def test_no_generator_without_a_device() -> None:
    offenders = [f"{path.relative_to(REPO_ROOT)}:{n}"
                 for path in sorted((REPO_ROOT / "unclip").rglob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if BARE.search(line)]
    assert not offenders, ("torch.Generator() without device= (use the model's or the "
                           f"pipeline's device): {offenders}")
