# Sourced by the launch scripts: the Python interpreter and the torchrun/srun helpers.
# $PYTHON wins; otherwise the repository's .venv (made by `make install`) if it
# exists; otherwise `python` on PATH (an activated environment).
MARS_MM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$MARS_MM_ROOT/.venv/bin/python" ]; then
    PYTHON="$MARS_MM_ROOT/.venv/bin/python"
  else
    PYTHON=python
  fi
fi

# torchrun_tool NPROC SCRIPT [ARGS...]: run a mars_mm tool on NPROC processes per
# node with torchrun (multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT), adding
# `--launcher pytorch`. Without CUDA the tool gets a gloo group (compat fix 3).
torchrun_tool() {
  local nproc=$1 script=$2
  shift 2
  exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$nproc" "$MARS_MM_ROOT/tools/$script" "$@" --launcher pytorch
}

# srun_tool PARTITION JOB_NAME SCRIPT [ARGS...]: one Slurm task per GPU
# (GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS from the environment).
srun_tool() {
  local partition=$1 job_name=$2 script=$3
  shift 3
  # shellcheck disable=SC2086  # SRUN_ARGS is a list of options
  exec srun -p "$partition" --job-name="$job_name" \
    --gres=gpu:"${GPUS_PER_NODE:-4}" --ntasks="${GPUS:-4}" \
    --ntasks-per-node="${GPUS_PER_NODE:-4}" --cpus-per-task="${CPUS_PER_TASK:-5}" \
    --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
    "$PYTHON" -u "$MARS_MM_ROOT/tools/$script" "$@" --launcher=slurm
}
