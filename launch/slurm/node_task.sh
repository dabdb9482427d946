#!/usr/bin/env bash
# One task per node (started by run_job.sh through srun): `accelerate launch` with this
# node's machine rank and the job's first node as the rendezvous address.
#
# Environment knobs (all optional):
#   HNCLIP_ACCELERATE_CONFIG  accelerate config file (the sbatch script sets a default)
#   HNCLIP_PROCS_PER_NODE     processes per node (default: GPUs SLURM gave this node, else 1)
#   HNCLIP_MAIN_PORT          rendezvous port (default: derived from the job id)
#   HNCLIP_ACCELERATE         the accelerate executable (default: .venv/bin/accelerate)
#   HNCLIP_LAUNCH_ARGS        extra `accelerate launch` flags, e.g. "--multi_gpu"
set -euo pipefail
cd "$SLURM_SUBMIT_DIR"

# Ignored here, and (inherited across exec and fork) in accelerate's launcher: a launcher
# killed by the warning signal, or by the SIGTERM that scancel and preemption send to every
# process of the job, would take its trainers down before they checkpoint. The trainers
# install their own handlers (train/signals.py), which override the inherited ignore; their
# data workers keep ignoring both. torch's elastic agent (several processes per node) would
# install a SIGTERM handler of its own that kills the ranks: tell it to leave SIGTERM alone.
trap '' USR1 TERM
export TORCHELASTIC_SIGNALS_TO_HANDLE=${TORCHELASTIC_SIGNALS_TO_HANDLE:-SIGINT,SIGHUP,SIGQUIT}

MAIN_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MAIN_PORT=${HNCLIP_MAIN_PORT:-$((20000 + SLURM_JOB_ID % 20000))}
NNODES=${SLURM_JOB_NUM_NODES:-1}
MACHINE_RANK=${SLURM_NODEID:-${SLURM_PROCID:-0}}
GPUS=${SLURM_GPUS_ON_NODE:-}
PROCS=${HNCLIP_PROCS_PER_NODE:-${GPUS:-1}}
CONFIG=${HNCLIP_ACCELERATE_CONFIG:-launch/accelerate/multi_node.yaml}
ACCELERATE=${HNCLIP_ACCELERATE:-.venv/bin/accelerate}

echo "[hnclip-slurm] node $(hostname -s) machine_rank $MACHINE_RANK/$NNODES, $PROCS process(es)," \
     "main $MAIN_ADDR:$MAIN_PORT, config $CONFIG"
# shellcheck disable=SC2086  # HNCLIP_LAUNCH_ARGS is a list of flags
exec "$ACCELERATE" launch --config_file "$CONFIG" ${HNCLIP_LAUNCH_ARGS:-} \
    --num_machines "$NNODES" --machine_rank "$MACHINE_RANK" \
    --main_process_ip "$MAIN_ADDR" --main_process_port "$MAIN_PORT" \
    --num_processes $((NNODES * PROCS)) \
    train/main.py "$@"
