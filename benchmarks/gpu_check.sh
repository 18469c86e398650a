#!/usr/bin/env bash
# The GPU check, one short script for a lent CUDA machine (about 11 minutes on one H200):
#   1. the smoke demo on CUDA: every stage through its real entry point (trainer=gpu, device=cuda);
#   2. the performance benchmarks on CUDA, ours beside dalle2-pytorch and diffusers:
#      decoder training, sampling, prior training, MFU.
# Where the machine's Python lacks this project's dependencies, carry .gpu/ (made here by
# benchmarks/gpu_wheels.sh). Logs and JSON go to $OUT (default ./gpu_out); each step has its own
# time limit, so one that hangs costs only its share. Arguments name the steps to run (default:
# all): smoke_demo decoder_training sampling prior_training mfu.
set -u
ONLY=" $* "
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 WANDB_MODE=offline
PY=${PYTHON:-python3}

step() {  # step NAME SECONDS COMMAND...: run it under a time limit, print its exit and wall time
    local name=$1 limit=$2 t0=$SECONDS rc
    shift 2
    if [ "$ONLY" != "  " ] && [[ "$ONLY" != *" $name "* ]]; then return; fi
    echo "=== $name ($(date +%T), limit ${limit} s)"
    timeout "$limit" "$@"
    rc=$?
    echo "=== $name: exit $rc, $((SECONDS - t0)) s"
}

if [ -d .gpu ]; then
    for part in ours common peers; do
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "/tmp/site_$part" .gpu/$part/*.whl || exit 1
    done
    cp -r .gpu/ours/antlr4 /tmp/site_ours/
    export PYTHONPATH="/tmp/site_ours:/tmp/site_common:$PWD"
    # the peers' interpreter (benchmarks/_bench.py: UNCLIP_BENCH_VENV/bin/python): the same
    # Python with the peers' packages (open_clip 2 for dalle2-pytorch) instead of ours
    mkdir -p /tmp/venv-bench/bin
    printf '#!/bin/sh\nPYTHONPATH=/tmp/site_peers:/tmp/site_common:%s exec %s "$@"\n' \
        "$PWD" "$(command -v "$PY")" > /tmp/venv-bench/bin/python
    chmod +x /tmp/venv-bench/bin/python
    export UNCLIP_BENCH_VENV=/tmp/venv-bench
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch, pytorch_lightning as pl, open_clip, hydra, webdataset
print('torch', torch.__version__, 'lightning', pl.__version__, 'open_clip', open_clip.__version__,
      'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))"

UNCLIP_ROOT=/tmp/unclip_smoke step smoke_demo 180 "$PY" -m unclip.demo --preset smoke --device cuda
cp /tmp/unclip_smoke/logs/sample/smoke/grid.png "$OUT/smoke_grid.png" 2>/dev/null

step decoder_training 300 "$PY" benchmarks/decoder_training.py --device cuda --steps 20 \
    --warmup 5 --json "$OUT/decoder_training.json"
step sampling 110 "$PY" benchmarks/sampling.py --device cuda --json "$OUT/sampling.json"
step prior_training 80 "$PY" benchmarks/prior_training.py --device cuda --steps 20 --warmup 5 \
    --json "$OUT/prior_training.json"
step mfu 80 "$PY" benchmarks/mfu.py --device cuda --steps 20 --warmup 5 --json "$OUT/mfu.json"
echo "=== done ($(date +%T))"
