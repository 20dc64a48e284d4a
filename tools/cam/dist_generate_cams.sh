#!/usr/bin/env bash
# CAM export on N GPUs (or N CPU processes with gloo) with torchrun; each rank takes
# every N-th image, and a rerun skips finished files.
#   tools/cam/dist_generate_cams.sh CONFIG CHECKPOINT GPUS --out DIR [generate_cams.py args...]
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT GPUS --out DIR [generate_cams.py args...]" >&2
  exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/../_launch.sh"
torchrun_tool "$3" cam/generate_cams.py "$1" "$2" "${@:4}"
