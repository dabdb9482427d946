"""Stop signals: SLURM's warning (USR1) and a polite kill (TERM) make the run checkpoint and
exit 3 instead of dying.

A scheduler signals *every* process of a job at once: `scancel`, SLURM preemption and a
cgroup-wide kill reach the trainer's DataLoader workers as well. torch's worker dies on a
SIGTERM that does not come from its parent, and the trainer then fails with "DataLoader worker
... is killed by signal: Terminated" before it can checkpoint. So the trainer alone acts on
these signals and its workers ignore them: the trainer finishes the step, checkpoints and
stops its workers itself (and a worker whose trainer is gone exits on torch's own watchdog)."""
import signal

STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


def install(on_stop):
    """In the trainer: call on_stop(signum) for each stop signal (it must only record it)."""
    for s in STOP_SIGNALS:
        signal.signal(s, lambda signum, frame: on_stop(signum))


def ignore_in_worker(worker_id=None):
    """DataLoader worker_init_fn: the stop signals are the trainer's business."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
