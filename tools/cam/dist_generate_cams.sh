#!/usr/bin/env bash
# CAM export on N GPUs (or N CPU processes with gloo) with torchrun; each rank takes
# every N-th image, and a rerun skips finished files.
#   tools/cam/dist_generate_cams.sh CONFIG CHECKPOINT GPUS --out DIR [generate_cams.py args...]
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT GPUS --out DIR [generate_cams.py args...]" >&2
  exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
source "$(dirname "${BASH_SOURCE[0]}")/../_python.sh"

exec "$PYTHON" -m torch.distributed.run \
  --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
  --nproc_per_node="$GPUS" --master_port="$PORT" \
  "$MARS_MM_ROOT/tools/cam/generate_cams.py" "$CONFIG" "$CHECKPOINT" \
  --launcher pytorch "${@:4}"
