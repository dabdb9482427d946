#!/usr/bin/env bash
# A real one-node (or two-node) SLURM on this machine, for testing the job scripts.
#
#   launch/local_slurm.sh start [NODES]   install (Debian packages, needs root), configure, start
#   launch/local_slurm.sh stop            cancel jobs, stop the daemons
#   launch/local_slurm.sh status
#
# NODES=1 (default): one node named after the host. NODES=2: nodes n1 and n2 on this host
# (two slurmd on ports 7818/7819), for the multi-node script. Two partitions: `debug` (the
# default) and `urgent`, whose jobs preempt debug jobs as a busy cluster does (PreemptMode=
# REQUEUE: the preempted job gets its --signal, then SIGTERM, GraceTime s to checkpoint, and is
# requeued by SLURM itself). Idempotent: a second `start` with the daemons already up and the
# same configuration does nothing.
# Everything SLURM writes lives under $SLURM_LOCAL_DIR (default /tmp/hnclip-slurm).
set -euo pipefail

CMD=${1:-start}
NODES=${2:-1}
STATE=${SLURM_LOCAL_DIR:-/tmp/hnclip-slurm}
HOST=$(hostname -s)
CONF=/etc/slurm/slurm.conf

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "local_slurm.sh: $1 needs root (Debian packages, /etc/slurm, munge)" >&2
        exit 1
    fi
}

install() {
    if command -v slurmctld >/dev/null && command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return
    fi
    need_root "installing slurm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null; }
}

node_names() {
    if [ "$NODES" = 1 ]; then echo "$HOST"; else seq -f "n%g" 1 "$NODES"; fi
}

write_conf() {
    mkdir -p /etc/slurm "$STATE"/{ctld,spool,log}
    render_conf > "$CONF.new"
    mv "$CONF.new" "$CONF"
    if [ "$NODES" != 1 ]; then
        for n in $(node_names); do
            grep -qE "[[:space:]]$n(\$|[[:space:]])" /etc/hosts || echo "127.0.0.1 $n" >> /etc/hosts
        done
    fi
}

render_conf() {
    local mem cpus
    # each node gets a share of the memory and all CPUs (jobs here are tiny)
    mem=$(( $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) / (2 * NODES) ))
    cpus=$(nproc)
    {
        echo "# written by hnclip launch/local_slurm.sh"
        echo "ClusterName=hnclip"
        echo "SlurmctldHost=$HOST(127.0.0.1)"
        echo "SlurmUser=root"
        echo "AuthType=auth/munge"
        echo "CredType=cred/munge"
        # a requeued job waits this long for its old credential to expire (default 120 s)
        echo "AuthInfo=cred_expire=10"
        echo "ProctrackType=proctrack/linuxproc"
        echo "TaskPlugin=task/none"
        echo "MpiDefault=none"
        echo "AccountingStorageType=accounting_storage/none"
        echo "JobCompType=jobcomp/filetxt"
        echo "JobCompLoc=$STATE/log/jobcomp.txt"
        echo "SchedulerParameters=bf_interval=2,sched_interval=2"
        echo "SelectType=select/cons_tres"
        echo "SelectTypeParameters=CR_Core_Memory"
        echo "DefMemPerCPU=256"
        echo "JobRequeue=1"
        echo "ReturnToService=2"
        echo "MinJobAge=300"
        # preemption by partition priority; the preempted job is requeued, and it gets its own
        # --signal (B:USR1 in our scripts) at preemption, not only near its time limit
        echo "PreemptType=preempt/partition_prio"
        echo "PreemptMode=REQUEUE"
        echo "SlurmctldParameters=preempt_send_user_signal"
        echo "StateSaveLocation=$STATE/ctld"
        echo "SlurmdSpoolDir=$STATE/spool/%n"
        echo "SlurmctldPidFile=$STATE/slurmctld.pid"
        echo "SlurmdPidFile=$STATE/slurmd-%n.pid"
        echo "SlurmctldLogFile=$STATE/log/slurmctld.log"
        echo "SlurmdLogFile=$STATE/log/slurmd-%n.log"
        echo "SlurmctldPort=6817"
        if [ "$NODES" = 1 ]; then
            echo "NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN"
        else
            local i=0
            for n in $(node_names); do
                echo "NodeName=$n NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$((7818 + i)) CPUs=$cpus RealMemory=$mem State=UNKNOWN"
                i=$((i + 1))
            done
        fi
        echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=60"
        echo "PartitionName=urgent Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=2"
    }
}

start_munge() {
    if pgrep -x munged >/dev/null; then return; fi
    mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
    chmod 0400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged
}

running_nodes() {
    sinfo -h -N -o "%N" 2>/dev/null | sort -u | tr '\n' ' '
}

wait_idle() {
    # every node of *this* configuration idle (a controller left over from another
    # configuration would show other node names)
    for _ in $(seq 1 60); do
        local idle missing=0
        idle=" $(sinfo -h -N -t idle -o "%N" 2>/dev/null | sort -u | tr '\n' ' ')"
        for n in $(node_names); do
            case "$idle" in *" $n "*) ;; *) missing=1 ;; esac
        done
        if [ "$missing" = 0 ]; then return 0; fi
        sleep 0.5
    done
    echo "local_slurm.sh: nodes $(node_names | tr '\n' ' ')did not become idle; logs in $STATE/log" >&2
    sinfo -N >&2 || true
    return 1
}

wait_gone() {  # pid: up to 15 s for a daemon to exit, then SIGKILL it
    for _ in $(seq 1 30); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.5
    done
    kill -9 "$1" 2>/dev/null || true
}

stop() {
    if command -v scontrol >/dev/null && scontrol ping >/dev/null 2>&1; then
        local jobs
        jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
        # shellcheck disable=SC2086
        [ -n "${jobs// /}" ] && scancel $jobs 2>/dev/null
        for _ in $(seq 1 20); do
            [ -z "$(squeue -h 2>/dev/null)" ] && break
            sleep 0.5
        done
        # the controller that answers (whichever configuration it runs) and its slurmds
        scontrol shutdown >/dev/null 2>&1 || true
    fi
    # and the daemons this script started (their pid files), never by name
    local pids=""
    for f in "$STATE"/slurmd-*.pid "$STATE"/slurmctld.pid; do
        [ -f "$f" ] || continue
        pids="$pids $(cat "$f")"
        rm -f "$f"
    done
    for pid in $pids; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $pids; do
        wait_gone "$pid"
    done
    # a new controller cannot bind its port while an old one is still shutting down
    for _ in $(seq 1 30); do
        scontrol ping >/dev/null 2>&1 || return 0
        sleep 0.5
    done
    echo "local_slurm.sh: a slurmctld this script does not know still answers; stop it first" >&2
    return 1
}

start() {
    install
    need_root "configuring slurm"
    local want
    want=$(node_names | sort | tr '\n' ' ')
    if pgrep -x slurmctld >/dev/null && [ "$(running_nodes)" = "$want" ] \
            && [ -f "$CONF" ] && cmp -s "$CONF" <(render_conf); then
        wait_idle "$NODES"
        return
    fi
    stop
    write_conf
    start_munge
    slurmctld -i
    for n in $(node_names); do
        slurmd -N "$n"
    done
    wait_idle "$NODES"
    echo "local_slurm.sh: SLURM up with node(s): $want(state and logs in $STATE)"
}

case "$CMD" in
    start) start ;;
    stop) stop ;;
    status) sinfo -N; squeue ;;
    *) echo "usage: $0 start [NODES] | stop | status" >&2; exit 2 ;;
esac
