#!/usr/bin/env bash
# Multi-GPU (or multi-process CPU/gloo) evaluation with torchrun.
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT GPUS [test.py args...]" >&2; exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/_launch.sh"
torchrun_tool "$3" test.py "$1" "$2" "${@:4}"
