#!/usr/bin/env bash
# Evaluation on a Slurm cluster: one task per GPU.
#   [GPUS=4 ...] tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [args...]
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]" >&2; exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/_launch.sh"
srun_tool "$1" "$2" test.py "$3" "$4" "${@:5}"
