#!/usr/bin/env bash
# Wheels the lent CUDA machine (Python 3.12, the workplace's 'cuda' image) lacks to run the
# gpu-marked tests, notebooks included, into .whl/ (git-ignored) for the device tool's `carry`:
# the team's ../shared/cuda/wheels.sh (albumentations, simplejpeg, faiss, efficientnet-pytorch)
# plus the notebook runner (papermill, nbclient, ipykernel and their dependencies), less what
# that image already holds (its package list: .library/device/KINDS.md).
# Usage: bash scripts/device_wheels.sh; then see scripts/device_check.sh.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
bash ../shared/cuda/wheels.sh >/dev/null
pin() { .venv/bin/python -m pip freeze | grep -i "^$1==" || echo "$1"; }
extra=$(mktemp -d)
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$extra" \
    "$(pin papermill)" "$(pin nbclient)" "$(pin nbformat)" "$(pin ipykernel)" 2>&1 \
    | grep -v "is ignored" || true
# On the image already (KINDS.md): keep theirs.
present="attrs certifi charset_normalizer click contourpy cycler fonttools idna iniconfig
kiwisolver matplotlib numpy packaging pandas pillow pluggy psutil pygments pyparsing pytest
python_dateutil pyyaml requests scipy seaborn six tqdm typing_extensions urllib3 tzdata"
for wheel in "$extra"/*.whl; do  # wheel names differ in case and - or _ (PyYAML, pyyaml)
    name=$(basename "$wheel" | cut -d- -f1 | tr 'A-Z-' 'a-z_')
    if grep -qw -- "$name" <<<"$present"; then rm -f "$wheel"; fi
done
mv "$extra"/*.whl .whl/
rmdir "$extra"
ls -1 .whl | wc -l; du -sh .whl
