#!/usr/bin/env bash
# Fetch, here, the wheels that benchmarks/gpu_check.sh installs on a GPU machine that has torch,
# pytorch-lightning, torchmetrics, timm, diffusers' and open_clip's common needs, but not this
# project's other dependencies nor the peers' (and no network). Python 3.12, x86-64 Linux.
#   .gpu/ours    hydra-core, omegaconf, antlr4 (copied: 4.9.3 has no wheel), open_clip_torch 3
#   .gpu/common  webdataset, braceexpand, ftfy, wcwidth, diffusers, importlib_metadata
#   .gpu/peers   dalle2-pytorch 1.15.6 and what it needs beyond that image (open_clip_torch 2)
# The versions are those of .venv / make bench-env. Run from the repository root; .gpu/ should be
# git-ignored (e.g. in .git/info/exclude) and carried to the machine.
set -euo pipefail
PY=${PY:-.venv/bin/python}
get() {  # get DIR PACKAGE==VERSION...
    local dir=$1; shift
    mkdir -p ".gpu/$dir"
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d ".gpu/$dir" "$@"
}
get ours hydra-core==1.3.8 omegaconf==2.3.1 open_clip_torch==3.3.0
get common webdataset==1.0.2 braceexpand==0.1.7 ftfy==6.3.1 wcwidth==0.9.4 diffusers==0.42.1 \
    importlib_metadata==10.2.0
get peers dalle2-pytorch==1.15.6 open_clip_torch==2.32.0 clip-anytorch==2.6.0 CoCa-pytorch==0.1.0 \
    ema-pytorch==0.8.3 kornia==0.9.0 kornia_rs==0.2.0 pydantic==2.14.4 pydantic_core==2.50.5 \
    annotated-types==0.8.0 typing-inspection==0.4.5 resize-right==0.0.2 torch_fidelity==0.4.0 \
    x-clip==0.14.4 beartype==0.23.1 embedding-reader==1.8.1 pytorch-warmup==0.2.0 \
    rotary-embedding-torch==0.9.1 vector-quantize-pytorch==1.32.0 einx==0.4.3 \
    torch-einops-utils==0.2.0 frozendict==2.5.1 loguru==0.7.3
antlr=$("$PY" -c "import antlr4, os; print(os.path.dirname(antlr4.__file__))")
rm -rf .gpu/ours/antlr4 && cp -r "$antlr" .gpu/ours/antlr4
du -sh .gpu
