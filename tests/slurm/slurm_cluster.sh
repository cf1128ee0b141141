#!/usr/bin/env bash
# A single-node SLURM cluster on localhost for the tests, and nothing outside DIR:
#   tests/slurm/slurm_cluster.sh start DIR   generate a munge key and slurm.conf in DIR, start
#                                            munged, slurmctld and slurmd, wait for the node
#   tests/slurm/slurm_cluster.sh stop DIR    stop the three daemons started from DIR
# Needs root and Debian's slurm-wlm and munge packages. Clients use the cluster with
# SLURM_CONF=DIR/slurm.conf. Ports: SLURM_TEST_PORT (slurmctld) and SLURM_TEST_PORT+1 (slurmd),
# 6917 and 6918 by default.
set -euo pipefail

command=${1:-}
dir=${2:-}
if [ -z "$command" ] || [ -z "$dir" ]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 2
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
port=${SLURM_TEST_PORT:-6917}

stop_pid_file() {   # stop the daemon whose pid is in $1 (if it still runs), waiting up to 10 s
    local pid
    [ -f "$1" ] || return 0
    pid=$(cat "$1")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$1"
}

if [ "$command" = stop ]; then
    stop_pid_file "$dir/slurmd.pid"
    stop_pid_file "$dir/slurmctld.pid"
    stop_pid_file "$dir/munged.pid"
    exit 0
fi
if [ "$command" != start ]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 2
fi

for program in munged slurmctld slurmd sinfo; do
    command -v "$program" >/dev/null || { echo "$program not found (Debian: apt-get install slurm-wlm munge)" >&2; exit 3; }
done
[ "$(id -u)" = 0 ] || { echo "the daemons run as root here, and this is uid $(id -u)" >&2; exit 3; }

mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
chmod 700 "$dir" "$dir/munge"
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
socket="$dir/munge/munge.socket"
munged --force --key-file="$dir/munge/munge.key" --socket="$socket" --pid-file="$dir/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"

cpus=$(nproc)
memory_mb=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)   # half the memory
cat > "$dir/slurm.conf" <<CONF
ClusterName=decathlon-test
SlurmctldHost=localhost
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=localhost NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -c -f "$SLURM_CONF"   # -c: a clean start, no state from an earlier cluster
slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do   # up to 20 s for the node to report idle
    if [ "$(sinfo -h -N -o %t 2>/dev/null)" = idle ]; then
        echo "SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 0.2
done
echo "the node did not come up; the daemons' logs:" >&2
tail -n 20 "$dir"/log/*.log >&2 || true
"$0" stop "$dir"
exit 4
