#!/usr/bin/env bash
# Installs the low end of mars_mm's declared ranges (requirements/constraints-gpu.txt:
# torch 2.1, numpy 1.26, full mmcv 2.1.0 with its compiled ops) into a separate venv.
#   bash tools/install_low.sh [VENV_DIR=.venv-low] [PYTHON=python3.11]
# PyPI has only mmcv's sdist, so mmcv is compiled here against the venv's torch (CPU
# ops where no CUDA toolkit is found; ~20 min on 2 cores). GPU users with a CUDA
# toolkit get the CUDA ops from the same command (FORCE_CUDA=1 forces them).
set -euo pipefail
venv=${1:-.venv-low}
python=${2:-python3.11}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
constraints="$repo/requirements/constraints-gpu.txt"

"$python" - <<'PY'
import sys
# torch 2.1 publishes wheels for CPython 3.8-3.11 only
if not (3, 8) <= sys.version_info[:2] <= (3, 11):
    sys.exit(f'torch 2.1 needs CPython 3.8-3.11, got {sys.version.split()[0]}')
PY
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip)
"${pip[@]}" install -q --upgrade "pip>=24" wheel ninja
"${pip[@]}" install -q -c "$constraints" torch torchvision numpy "setuptools>=77.0.3,<81"
# mmcv's build imports torch, so no build isolation (an isolated build would fetch
# another torch); no wheel cache either, it does not key on the torch version.
MAX_JOBS=${MAX_JOBS:-2} "${pip[@]}" install -c "$constraints" --no-build-isolation \
  --no-cache-dir mmcv
"${pip[@]}" install -q -c "$constraints" mmengine mmsegmentation mmpretrain
"${pip[@]}" install -q -c "$constraints" -e "$repo[tests,optional]"
"$venv/bin/python" - <<'PY'
import mmcv, numpy, torch
from mmcv.ops import nms, roi_align  # noqa: F401  compiled ops present
import mars_mm, mmseg, mmpretrain, pydensecrf.densecrf  # noqa: F401
print('low stack: torch', torch.__version__, 'numpy', numpy.__version__,
      'mmcv', mmcv.__version__, 'mmseg', mmseg.__version__, 'ops ok')
PY
