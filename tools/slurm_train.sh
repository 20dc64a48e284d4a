#!/usr/bin/env bash
# Training on a Slurm cluster: one task per GPU.
#   [GPUS=8 GPUS_PER_NODE=8 CPUS_PER_TASK=5 SRUN_ARGS=...] \
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py args...]
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG [train.py args...]" >&2; exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/_launch.sh"
srun_tool "$1" "$2" train.py "$3" "${@:4}"
