#!/usr/bin/env bash
# The GPU check: one script, at most 8 minutes on one CUDA GPU, no network.
#
#   bench/gpu_check.sh [--wheels DIR] [--out DIR]     # on the GPU machine
#   bench/gpu_check.sh --cpu-dry-run [--out DIR]      # anywhere: the same steps at toy size
#
# The GPU machine brings Python 3.12 with PyTorch, torchvision, accelerate, transformers and
# timm; the rest (open_clip_torch, webdataset, hydra-core, ...) and hnclip itself are
# installed from --wheels, a folder bench/gpu_wheels.sh fills on a machine with the package
# index. Writes DIR/gpu_check.json and DIR/gpu_check.md (default DIR: gpu_check_out); the
# steps are in bench/gpu_check.py. Exit status 0 only if every test and every arm ran.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
WHEELS="" ; ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) WHEELS=$2; shift 2 ;;
    --out) ARGS+=(--out "$2"); shift 2 ;;
    --cpu-dry-run) ARGS+=(--cpu-dry-run); shift ;;
    *) echo "gpu_check.sh: unknown argument $1 (see the head of this file)" >&2; exit 2 ;;
  esac
done
if [ -n "$WHEELS" ]; then
  [ -d "$WHEELS" ] || { echo "gpu_check.sh: no wheels folder $WHEELS (make it with bench/gpu_wheels.sh)" >&2; exit 2; }
  # the machine's own torch stack stays: hnclip's pins are for its CPU wheels, so no deps for it
  "$PY" -m pip install -q --no-index --find-links "$WHEELS" --no-deps hnclip
  "$PY" -m pip install -q --no-index --find-links "$WHEELS" -r bench/gpu_requirements.txt
fi
export WANDB_MODE=disabled HYDRA_FULL_ERROR=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# the whole check inside the 8-minute budget, whatever hangs
exec timeout 480 "$PY" bench/gpu_check.py "${ARGS[@]}"
