#!/usr/bin/env bash
# Multi-GPU (or, without CUDA, multi-process CPU/gloo) training with torchrun.
#   tools/dist_train.sh CONFIG GPUS [train.py args...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT from the environment.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG GPUS [train.py args...]" >&2; exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/_launch.sh"
torchrun_tool "$2" train.py "$1" "${@:3}"
