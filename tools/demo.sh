#!/usr/bin/env bash
# The whole MARS chain on the embedded planted-bias dataset, on CPU.
#   bash tools/demo.sh            (or `make demo`)
# Every step is resumable: rerunning skips finished outputs and finished trainings.
# QUICK=1 shortens every training (a smoke run of the plumbing, not of the numbers).
# Outputs are reused by path: after changing USS_CONFIG, remove work_dirs/embeddings
# and work_dirs/mars first.
# Outputs: data/planted_bias/ and work_dirs/ (default paths of the planted configs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/_launch.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

CAM_CONFIG=configs/cam/cam_r18-d16_1xb16-30e_planted-128x128.py
# Stage 2 on CPU: the CAM classifier's frozen layer2 features (no self-supervised
# weights can be downloaded here; see configs/uss/README.md, "Planted-bias v2").
USS_CONFIG=${USS_CONFIG:-configs/uss/stego_r18-cam_1xb8-1k_planted-128x128.py}
DEBIAS_CONFIG=configs/mars/debias_planted.py
BASE_SEG=configs/mars/deeplabv3plus_r18-d8_1xb8-500it_planted-128x128.py
MARS_SEG=configs/mars/mars-deeplabv3plus_r18-d8_1xb8-500it_planted-128x128.py
DATA=data/planted_bias
W=work_dirs

name() { basename "$1" .py; }
step() { printf '\n== %s ==\n' "$*"; }
if [ "${QUICK:-0}" = 1 ]; then
  CAM_OPTS=(train_cfg.max_epochs=2)
  USS_OPTS=(train_cfg.max_iters=20 train_cfg.val_interval=20 default_hooks.checkpoint.interval=20)
  SEG_OPTS=(train_cfg.max_iters=20 train_cfg.val_interval=20 default_hooks.checkpoint.interval=20)
else
  CAM_OPTS=() USS_OPTS=() SEG_OPTS=()
fi

# train CONFIG WORK_DIR [cfg options...]: train unless the final checkpoint exists.
train() {
  local config=$1 work_dir=$2; shift 2
  if [ -f "$work_dir/last_checkpoint" ] && [ -f "$work_dir/.demo-done" ]; then
    echo "already trained: $work_dir"; return
  fi
  local resume=()
  [ -f "$work_dir/last_checkpoint" ] && resume=(--resume)
  "$PYTHON" tools/train.py "$config" --work-dir "$work_dir" "${resume[@]}" \
    ${1:+--cfg-options "$@"}
  touch "$work_dir/.demo-done"
}
last_ckpt() { cat "$1/last_checkpoint"; }

step "0. planted-bias dataset -> $DATA"
[ -f "$DATA/meta.json" ] || "$PYTHON" tools/dataset_converters/planted_bias.py "$DATA"

step "1. CAM classifier, CAMs, CRF pseudo labels"
train "$CAM_CONFIG" "$W/$(name $CAM_CONFIG)" "${CAM_OPTS[@]}"
"$PYTHON" tools/cam/generate_cams.py "$CAM_CONFIG" "$(last_ckpt "$W/$(name $CAM_CONFIG)")" \
  --out "$W/cams/planted_bias" --split train
"$PYTHON" tools/cam/make_pseudo_labels.py "$W/cams/planted_bias" --dataset "$CAM_CONFIG" \
  --out "$W/pseudo_labels/planted_bias" --split train --bg-power 2 --crf --workers 2
"$PYTHON" tools/analysis/eval_labels.py "$W/pseudo_labels/planted_bias" \
  --dataset "$CAM_CONFIG" --split train --out "$W/pseudo_labels/planted_bias_scores.json"

step "2. USS (STEGO head on the frozen CAM backbone) and embeddings"
USS_DIR="$W/$(name $USS_CONFIG)"
CAM_BACKBONE=(model.backbone.backbone.init_cfg.checkpoint="$(last_ckpt "$W/$(name $CAM_CONFIG)")")
[ -f "$USS_DIR/knn.npz" ] || "$PYTHON" tools/uss/precompute_knn.py "$USS_CONFIG" \
  --out "$USS_DIR/knn.npz" --cfg-options "${CAM_BACKBONE[@]}"
train "$USS_CONFIG" "$USS_DIR" "${CAM_BACKBONE[@]}" "${USS_OPTS[@]}"
"$PYTHON" tools/uss/extract_features.py "$USS_CONFIG" "$(last_ckpt "$USS_DIR")" \
  --what features --scales 1.0 --no-flip --out "$W/embeddings/planted_bias" \
  --cfg-options "${CAM_BACKBONE[@]}"

step "3. MARS debiasing + bias report"
"$PYTHON" tools/mars/debias.py "$DEBIAS_CONFIG"
"$PYTHON" tools/analysis/eval_debias.py "$W/pseudo_labels/planted_bias" \
  "$W/mars/debias_planted_bias/labels" --data-root "$DATA"

step "4. DeepLabV3+: baseline labels vs MARS (complementing + weighted CE)"
train "$BASE_SEG" "$W/$(name $BASE_SEG)" "${SEG_OPTS[@]}"
train "$MARS_SEG" "$W/$(name $MARS_SEG)" "${SEG_OPTS[@]}"
for config in "$BASE_SEG" "$MARS_SEG"; do
  "$PYTHON" tools/test.py "$config" "$(last_ckpt "$W/$(name $config)")" \
    --work-dir "$W/$(name $config)/test"
done
step "done: bias report in $W/mars/debias_planted_bias/report/"
