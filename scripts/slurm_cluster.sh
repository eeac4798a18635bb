#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, from Debian's packages, for trying and testing
# `launcher=submitit_slurm` without a real cluster (tests/test_slurm.py; .ci/run starts it before `make test`).
# With job accounting (slurmdbd on a local MariaDB): submitit learns a job's state from `sacct`, and without it
# a cancelled or failed job would look unfinished forever.
#
#   sudo scripts/slurm_cluster.sh start    # installs slurmctld slurmd slurm-client munge if missing (apt), starts
#   scripts/slurm_cluster.sh status        # sinfo
#   sudo scripts/slurm_cluster.sh stop
#
# The node is this host with its real CPU count and memory (`slurmd -C`), in one partition `debug`. The config
# is written to /etc/slurm/slurm.conf only when none exists or it is ours (first line below), so a machine that
# already has a real Slurm config is never touched. Jobs run as the submitting user with no cgroup confinement.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by transferability scripts/slurm_cluster.sh"
STATE=/var/spool/slurm-transferability
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
DBD_CONF=/etc/slurm/slurmdbd.conf

need_root() {
    if [ "$(id -u)" != 0 ]; then echo "slurm_cluster.sh $1: run as root (sudo)" >&2; exit 2; fi
}

install() {
    local missing=()
    for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
        command -v apt-get >/dev/null || { echo "no apt-get: install ${missing[*]} yourself" >&2; exit 2; }
        echo "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

write_conf() {
    if [ -f "$CONF" ] && ! head -1 "$CONF" | grep -qF "$MARK"; then
        echo "$CONF exists and is not ours: using it as it is"
        return
    fi
    local host node
    host=$(hostname -s)
    # `slurmd -C` prints this machine's NodeName line (CPUs, sockets, cores, RealMemory).
    node=$(slurmd -C | head -1)
    mkdir -p "$(dirname "$CONF")" "$STATE/ctld" "$STATE/d" /var/log/slurm
    cat > "$CONF" <<CONF
$MARK
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$host
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmdTimeout=60
# scancel sends SIGTERM, which submitit ignores (Slurm also sends it before preemption); SIGKILL follows
# after KillWait seconds. 30 by default; short here, so a cancelled job stops while it is still training.
KillWait=2
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    cat > "$DBD_CONF" <<CONF
$MARK
DbdHost=$host
SlurmUser=root
AuthType=auth/munge
PidFile=/run/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
CONF
    chmod 600 "$DBD_CONF"
}

start_db() {
    if ! pgrep -x mariadbd >/dev/null && ! pgrep -x mysqld >/dev/null; then
        mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
        [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null
        runuser -u mysql -- mariadbd --skip-networking --pid-file=/run/mysqld/mysqld.pid \
            >/var/log/slurm/mariadb.log 2>&1 &
        for _ in $(seq 60); do mariadb -e 'select 1' >/dev/null 2>&1 && break; sleep 0.5; done
    fi
    mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
                GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
    pgrep -x slurmdbd >/dev/null || slurmdbd
    for _ in $(seq 60); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.5; done
    sacctmgr -n list cluster >/dev/null 2>&1 || { echo "slurmdbd did not come up; see /var/log/slurm/slurmdbd.log" >&2; exit 1; }
    sacctmgr -n list cluster format=cluster | grep -qw local || sacctmgr -i add cluster local >/dev/null
}

start_munge() {
    pgrep -x munged >/dev/null && return
    [ -s /etc/munge/munge.key ] || /usr/sbin/mungekey --create >/dev/null 2>&1 || \
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
    chmod 0400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged
}

start() {
    need_root start
    install
    write_conf
    start_munge
    start_db
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    # The controller needs a moment before the node registers and is idle.
    for _ in $(seq 60); do
        if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
            echo "slurm cluster up:"; sinfo; return
        fi
        sleep 1
    done
    echo "slurm did not come up; see /var/log/slurm/*.log" >&2
    sinfo >&2 || true
    exit 1
}

stop() {
    need_root stop
    # Only the daemons this script starts, each by its pid file (munged by its own pid file).
    local pids=()
    for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/slurmdbd.pid /run/mysqld/mysqld.pid \
                   /run/munge/munged.pid; do
        if [ -s "$pidfile" ]; then
            pid=$(cat "$pidfile")
            kill "$pid" 2>/dev/null && pids+=("$pid") || true
        fi
    done
    # Wait until they are gone: a `start` right after would otherwise find a daemon still shutting down
    # (pgrep says it runs), skip starting it, and then have none.
    for _ in $(seq 60); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.5
    done
    echo "slurm cluster stopped"
}

status() {
    if command -v sinfo >/dev/null && sinfo 2>/dev/null; then exit 0; fi
    echo "no slurm cluster answers (start one: sudo scripts/slurm_cluster.sh start)"
    exit 1
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
