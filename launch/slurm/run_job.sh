# The body shared by train_1node.sbatch and train_multinode.sbatch (sourced in the batch
# shell, on the job's first node). It starts one task per node, forwards SLURM's warning
# signal to the trainers, and requeues the job when they checkpointed because of it.
#
# Why the dance: the batch shell gets the warning (--signal=B:USR1@N), but bash runs a trap
# only between commands, never during a foreground command; so the task runs in the
# background and the shell `wait`s for it. On one node the task runs right here, without srun:
# srun answers a SIGTERM that reaches it (scancel, the end of a preemption's grace time) by
# SIGKILLing its whole step at once, which would leave the trainers no time to checkpoint.
# Several nodes need srun, so there only the warning signal (USR1, which srun forwards) gives
# a checkpoint; a TERM sent to the steps alone (`scancel --signal=TERM JOB`) works too. The trainers checkpoint and exit 3 (train/main.py
# REQUEUE_EXIT_CODE); then `scontrol requeue` puts the same job id back in the queue, and
# the next attempt resumes from the latest checkpoint in the same run_dir (and continues
# the same wandb run, whose id is kept in the run dir).
set -uo pipefail

MAX_RESTARTS=${HNCLIP_MAX_RESTARTS:-10}
ATTEMPT=${SLURM_RESTART_COUNT:-0}
NODE_TASK="$SLURM_SUBMIT_DIR/launch/slurm/node_task.sh"
if [ ! -f "$NODE_TASK" ]; then
    echo "[hnclip-slurm] $NODE_TASK not found: submit from the project root" >&2
    exit 2
fi
echo "[hnclip-slurm] job $SLURM_JOB_ID attempt $((ATTEMPT + 1)) (restart cap $MAX_RESTARTS)" \
     "on ${SLURM_JOB_NUM_NODES:-1} node(s): $SLURM_JOB_NODELIST; args: $*"

got_warning=0
got_term=0
child=""
signal_tree() {  # signal pid and every process below it (ranks run in sessions of their own)
    local sig=$1 pid=$2 c
    for c in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        signal_tree "$sig" "$c"
    done
    kill -"$sig" "$pid" 2>/dev/null
}
on_warning() {
    got_warning=1
    echo "[hnclip-slurm] warning signal: asking the trainers to checkpoint and stop"
    # to the task's processes here; srun forwards it to every task on every node. The
    # launchers (node_task.sh) and data workers ignore it, so only the trainers act on it
    [ -n "$child" ] && signal_tree USR1 "$child"
}
# SIGTERM (scancel, the end of a preemption's grace time, a node drain) usually reaches every
# process of the job at once. This shell must outlive the trainers' checkpoint (its exit ends
# the job and SLURM then kills what is left), so it traps TERM, passes it on (for a TERM sent
# to this shell alone) and keeps waiting.
on_term() {
    got_term=1
    echo "[hnclip-slurm] SIGTERM: the trainers checkpoint and stop"
    [ -n "$child" ] && signal_tree TERM "$child"
}
trap on_warning USR1
trap on_term TERM

if [ "${SLURM_JOB_NUM_NODES:-1}" = 1 ]; then
    bash "$NODE_TASK" "$@" &
else
    srun --ntasks-per-node=1 --nodes="${SLURM_JOB_NUM_NODES}" --kill-on-bad-exit=1 \
        bash "$NODE_TASK" "$@" &
fi
child=$!
# `wait` returns early (status > 128) whenever a trapped signal arrives: wait again
while kill -0 "$child" 2>/dev/null; do
    wait "$child"
done
wait "$child"
rc=$?

# SIGTERM: SLURM itself decides what comes next (a preemption with PreemptMode=REQUEUE
# requeues the job, scancel ends it); never requeue here, or a user's scancel would not stop it.
# Exit 3 like the trainers: checkpointed on a signal, the next submission resumes.
if [ "$got_term" = 1 ]; then
    echo "[hnclip-slurm] stopped by SIGTERM (trainers exited $rc): not requeueing; a new submission resumes"
    exit 3
fi
# exit 3 = checkpointed on a signal. The launcher turns a trainer's 3 into its own failure
# code, so a received warning plus a non-zero exit counts too.
if [ "$rc" -eq 3 ] || { [ "$got_warning" = 1 ] && [ "$rc" -ne 0 ]; }; then
    if [ "$ATTEMPT" -lt "$MAX_RESTARTS" ]; then
        echo "[hnclip-slurm] checkpointed (exit $rc): requeueing job $SLURM_JOB_ID"
        scontrol requeue "$SLURM_JOB_ID"
        exit 0
    fi
    echo "[hnclip-slurm] checkpointed (exit $rc) but the restart cap ($MAX_RESTARTS) is reached: not requeueing" >&2
    exit 3
fi
echo "[hnclip-slurm] trainer exited with $rc"
exit "$rc"
