#!/usr/bin/env bash
# Miniature reproduction of SPEC's Table 3 on a CPU (docs/repro.md):
#   1. generate data (pairs named by objects only, candidate sets, held-out SPEC sets, zero-shot);
#   2. pre-train a small CLIP from scratch on the pairs;
#   3. fine-tune it three ways with the real trainer (+L_hn, +L_clip, +L_clip + lambda*L_hn),
#      same steps and same data for each; the fourth row is the pre-trained model itself;
#   4. score all four on the held-out sets and object zero-shot; write tables and a chart.
#
#   launch/repro_mini.sh [OUT]          (default OUT=outputs/repro_mini)
#
# Budget knobs (environment): PRETRAIN_STEPS PRETRAIN_LR FINETUNE_STEPS FINETUNE_LR LAMBDA
# PAIRS_PER_STEP SET_ITEMS_PER_STEP THREADS. A stage whose output exists is skipped, so a rerun
# after an interruption continues; FRESH=1 starts over.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-outputs/repro_mini}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-1500}
PRETRAIN_LR=${PRETRAIN_LR:-1e-3}
PRETRAIN_PAIRS=${PRETRAIN_PAIRS:-96}
FINETUNE_STEPS=${FINETUNE_STEPS:-500}
# the calibration: fine-tuning a model trained from scratch needs an LR near the pre-training one
FINETUNE_LR=${FINETUNE_LR:-1e-3}
LAMBDA=${LAMBDA:-1.0}
PAIRS_PER_STEP=${PAIRS_PER_STEP:-48}
SET_ITEMS_PER_STEP=${SET_ITEMS_PER_STEP:-64}
PRECISION=${PRECISION:-bf16}
# tiny models do not profit from a second thread while a data worker shares the two cores
export OMP_NUM_THREADS=${THREADS:-1} WANDB_MODE=disabled PYTHONUNBUFFERED=1
[ "${FRESH:-0}" = 1 ] && rm -rf "$OUT"
mkdir -p "$OUT/scores"
T0=$(date +%s)
stamp() { echo "[repro_mini] $(( $(date +%s) - T0 )) s: $*"; }

if [ ! -f "$OUT/data/.complete" ]; then
  stamp "generating data"
  $PY -m train.repro.data --out "$OUT/data" --heldout-per-subset "${HELDOUT_PER_SUBSET:-200}"
fi

BASE="$OUT/pretrain/final/open_clip_pytorch_model.bin"
if [ ! -f "$BASE" ]; then
  stamp "pre-training ($PRETRAIN_STEPS steps)"
  $PY -m train.repro.run pretrain --data "$OUT/data" --out "$OUT/pretrain" \
    --steps "$PRETRAIN_STEPS" --lr "$PRETRAIN_LR" --warmup 50 --pairs "$PRETRAIN_PAIRS" \
    --extra model.precision="$PRECISION"
fi

# the three fine-tunings are independent: run them side by side (one thread each)
pids=()
for v in hn clip both; do
  if [ ! -f "$OUT/$v/final/open_clip_pytorch_model.bin" ]; then
    stamp "fine-tuning '$v' ($FINETUNE_STEPS steps), log $OUT/$v.log"
    $PY -m train.repro.run finetune --variant "$v" --init "$BASE" --data "$OUT/data" --out "$OUT/$v" \
      --steps "$FINETUNE_STEPS" --lr "$FINETUNE_LR" --warmup 30 --lam "$LAMBDA" \
      --pairs "$PAIRS_PER_STEP" --set-items "$SET_ITEMS_PER_STEP" \
      --extra model.precision="$PRECISION" > "$OUT/$v.log" 2>&1 &
    pids+=($!)
  fi
done
for p in "${pids[@]}"; do wait "$p" || { echo "[repro_mini] a fine-tuning failed, see $OUT/*.log" >&2; exit 1; }; done

stamp "evaluating"
pids=()
for v in none hn clip both; do
  w="$OUT/$v/final/open_clip_pytorch_model.bin"; [ "$v" = none ] && w="$BASE"
  $PY -m train.repro.evaluate --weights "$w" --data "$OUT/data" --out "$OUT/scores/$v.json" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { echo "[repro_mini] an evaluation failed" >&2; exit 1; }; done
NOTE="Made by \`launch/repro_mini.sh\` (this invocation: $(( ($(date +%s) - T0) / 60 )) min): pre-training $PRETRAIN_STEPS steps \
(lr $PRETRAIN_LR, $PRETRAIN_PAIRS pairs/step); each fine-tuning $FINETUNE_STEPS steps (lr $FINETUNE_LR, \
$PAIRS_PER_STEP pairs + $SET_ITEMS_PER_STEP set items/step, lambda $LAMBDA)."
$PY -m train.repro.report --scores "$OUT/scores" --out "$OUT/report" --note "$NOTE"
stamp "done: $OUT/report/repro_table.md, $OUT/report/repro_chart.png"
