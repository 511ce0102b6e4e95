#!/usr/bin/env bash
# Issue 9's CUDA checks in one command, for a lent GPU machine (the device tool's `run`):
#   here:  bash scripts/device_wheels.sh           # .whl/, about 41 MB, git-ignored
#   there: run(command="bash scripts/device_check.sh", carry=[".whl"], timeout_s=540)
# It installs the wheels beside the machine's own packages, generates the default mini dataset,
# then writes into $OUT: gpu.txt (card), bench_train.json (step rate per backbone, precision and
# layout, and end to end with training's loader from JPEG files), bench_train_cache.json (the
# same, ResNet-50, from the memory cache), bench_feed.json (loader alone, 15 workers) and
# pytest.log (tests/test_gpu.py: training, notebooks 03-05 and DDP on CUDA).
# Exit status: the number of steps that failed (each later step still runs).
set -uo pipefail
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"
SITE=/tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl \
    || { echo "installing .whl/ failed: run scripts/device_wheels.sh and carry .whl" >&2; exit 99; }
failed=0
export PYTHONPATH="$SITE:$PWD/src" PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
nproc | tee -a "$OUT/gpu.txt"
step() { echo "== $(date +%T) $*"; }
check() { "$@" || { failed=$((failed + 1)); echo "FAILED: $*" >&2; }; }
step data
check python3 -m utils minigld --out data/minigld-default --profile default --if-missing
step bench train
check python3 -m utils bench train --models resnet50,efficientnet-b2,mobilenet_v2 --size 224 \
    --batch 64 --steps 30 --device cuda --json >"$OUT/bench_train.json"
check python3 -m utils bench train --models resnet50 --size 224 --batch 64 --steps 60 --device cuda \
    --cache --json >"$OUT/bench_train_cache.json"
step bench feed
check python3 -m utils bench feed --workers 15 --epochs 5 --json >"$OUT/bench_feed.json"
step gpu tests
python3 -m pytest -p no:cacheprovider -q -rs tests/test_gpu.py 2>&1 | tee "$OUT/pytest.log"
[[ ${PIPESTATUS[0]} -eq 0 ]] || failed=$((failed + 1))
step "done, $failed step(s) failed"
exit "$failed"
