#!/usr/bin/env bash
# The three papers' questions on the miniature reproduction, in one command (docs/science.md):
#   1. the reproduction (launch/repro_mini.sh) with three fine-tuning seeds, keeping ten
#      checkpoints of pre-training and of the first seed's fine-tunings;
#   2. train.repro.science: skill dynamics over those checkpoints, probes of the four models'
#      image towers (and the jointly trained control), WiSE-FT between the base and each
#      fine-tuned model, the claims' margins over all seeds; one report with its figures.
#
#   launch/science_mini.sh [OUT]         (default OUT=outputs/repro_mini)
#
# Knobs (environment): those of launch/repro_mini.sh (SEEDS "0 1" as there,
# KEEP_CHECKPOINTS to 10), JOBS (2: science processes side by side), LIMIT (100: held-out sets
# per subset in the repeated evaluations), PROBE_SEEDS ("0 1"), SCIENCE_ARGS (more key=value
# overrides of train.repro.science, e.g. "probe_extra=['tasks=[rcm,vsr]']": each probe override
# quoted as a list item), PUBLISH=1 (also write docs/science.md, its
# figures in docs/img and docs/science.json). Every stage skips what an earlier run finished.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-outputs/repro_mini}
export SEEDS=${SEEDS:-0 1} KEEP_CHECKPOINTS=${KEEP_CHECKPOINTS:-10}
export OMP_NUM_THREADS=${THREADS:-1} WANDB_MODE=disabled PYTHONUNBUFFERED=1
T0=$(date +%s)
launch/repro_mini.sh "$OUT"
T1=$(date +%s)
# shellcheck disable=SC2086  # PROBE_SEEDS is a list of words: "0 1" -> 0,1
PROBE_SEEDS_LIST=$(echo ${PROBE_SEEDS:-0 1} | tr ' ' ',')
# shellcheck disable=SC2086  # SCIENCE_ARGS is a list of words
$PY -m train.repro.science repro="$OUT" jobs="${JOBS:-2}" limit="${LIMIT:-100}" \
  probe_seeds="[$PROBE_SEEDS_LIST]" track_seed="${SEEDS%% *}" ${SCIENCE_ARGS:-} \
  note="Made by \`launch/science_mini.sh\` (this invocation: reproduction stages $(( (T1 - T0) / 60 )) min, \
then the science stages; fine-tuning seeds: $SEEDS; checkpoints kept: $KEEP_CHECKPOINTS per run)."
echo "[science_mini] $(( ($(date +%s) - T0) / 60 )) min in all: $OUT/science/science.md"
if [ "${PUBLISH:-0}" = 1 ]; then
  $PY -m train.repro.science_report science_json="$OUT/science/science.json" out=docs img_dir=img
fi
