#!/usr/bin/env bash
# One prepared run for a GPU machine: the tests that need CUDA (`pytest -m gpu`), `make bench-gpu` (one source model,
# then resnet18 trained K = 1, 8, 41 at a time with both stack engines and the 437-source matrix projected), then
# `make bench-scale` at full size with the GPU trainer. Results (gpu_tests.log, gpu.json, scale.json) and logs go
# into the folder given as $1 (e.g. the device's $OUT).
#   scripts/device_check.sh <out_dir> [extra bench.scale arguments, e.g. --n 50000]
# Uses .venv/bin/python when the checkout has one, else plain python3 (needs torch, torchvision, lightning,
# numpy, pandas, scipy, scikit-learn, PIL, omegaconf, hydra-core, threadpoolctl, tqdm, pytest). The real CelebA label files
# come from $CELEBA_LABELS, ../shared/data/celeba or shared/data/celeba (see bench/scale.py); ../shared does not
# travel to a device machine, so copy them into shared/data/celeba inside the checkout (or carry a folder and set
# CELEBA_LABELS). About 7-9 minutes on one H200 with 16 cores (estimate); IDENTITY_LIMIT_S bounds the last step.
set -euo pipefail
export PYTHONUNBUFFERED=1
out=${1:?usage: scripts/device_check.sh <out_dir> [bench.scale arguments]}
shift
mkdir -p "$out"
cd "$(dirname "$0")/.."
py=python3
[ -x .venv/bin/python ] && py=.venv/bin/python
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
work=${BENCH_WORK:-outputs/bench}

stamp() { date -u +%H:%M:%S; }
echo "[$(stamp)] $($py -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
echo "[$(stamp)] CPUs: $(nproc)"

t0=$SECONDS
echo "[$(stamp)] tests marked gpu"
# A failing GPU test is reported, not fatal: the benches' figures are still worth having.
$py -m pytest -q -p no:cacheprovider -m gpu tests 2>&1 | tee "$out/gpu_tests.log" || echo "[$(stamp)] gpu tests failed"
echo "[$(stamp)] gpu tests took $((SECONDS - t0)) s"

echo "[$(stamp)] bench-gpu"
# A failure here must not cost the scale figures: bench-scale then runs without the GPU projection.
if $py -m transferability.bench.gpu --json "$work/gpu.json" --out "$work/gpu_lightning" 2>&1 | tee "$out/bench_gpu.log"; then
  cp "$work/gpu.json" "$out/gpu.json"
else
  echo "[$(stamp)] bench-gpu failed (see bench_gpu.log); continuing without it"
fi
echo "[$(stamp)] bench-gpu took $((SECONDS - t0)) s"

t1=$SECONDS
echo "[$(stamp)] bench-scale (full size, trainer=gpu)"
# The 40 attribute targets first: the identity target (9,177 training classes, one-vs-rest) is measured apart
# below, so that its cost (or an out-of-memory) cannot take the rest of the figures with it.
$py -m transferability.bench.scale --trainer gpu --batches 20 --targets attributes --gpu-json "$work/gpu.json" \
    --out "$work/scale" --json "$work/scale.json" "$@" 2>&1 | tee "$out/bench_scale.log"
cp "$work/scale.json" "$out/scale.json"
echo "[$(stamp)] bench-scale took $((SECONDS - t1)) s; total $((SECONDS - t0)) s"

t2=$SECONDS
echo "[$(stamp)] heads + estimators at full size with all 41 targets (identity included), at most ${IDENTITY_LIMIT_S:-240} s"
if timeout "${IDENTITY_LIMIT_S:-240}" $py -m transferability.bench.scale --heads-only --trainer gpu --targets all \
    --json "$work/scale_heads_all.json" 2>&1 | tee "$out/bench_heads_all.log"; then
  cp "$work/scale_heads_all.json" "$out/scale_heads_all.json"
else
  echo "[$(stamp)] all-targets heads did not finish (exit $?): see bench_heads_all.log"
fi
echo "[$(stamp)] that took $((SECONDS - t2)) s; total $((SECONDS - t0)) s; results in $out"
