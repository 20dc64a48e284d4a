#!/usr/bin/env bash
# Installs mars_mm and the tested CPU stack into a virtual environment.
#   bash tools/install_cpu.sh [VENV_DIR=.venv] [PYTHON=python3]
# GPU users: see README ("Install on a GPU machine"): same command with full mmcv.
set -euo pipefail
venv=${1:-.venv}
python=${2:-python3}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
constraints="$repo/requirements/constraints-cpu.txt"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip)
"${pip[@]}" install -q --upgrade "pip>=24" wheel
# OpenMMLab packages first: mmcv-lite stands in for mmcv on machines without CUDA.
"${pip[@]}" install -q -c "$constraints" torch torchvision mmcv-lite mmengine \
  mmsegmentation mmpretrain "setuptools>=77.0.3,<81" numpy
"${pip[@]}" install -q -c "$constraints" -e "$repo[tests,optional]"
"$venv/bin/python" -c "import mars_mm, mmseg, mmpretrain, pydensecrf.densecrf; print('mars_mm', mars_mm.__version__, 'installed')"
