#!/bin/bash
# A real one-node Slurm on this machine, from Debian's slurm-wlm and munge: a munge key, then
# slurmctld and slurmd as root with the config below. Needs root: the daemons run as root.
#   slurm/local_cluster.sh up STATE_DIR     start munge, slurmctld, slurmd; wait for "idle"
#   slurm/local_cluster.sh down STATE_DIR   stop them
# Exit 77 from "up" means: cannot be brought up here; the last line of output says why.
set -uo pipefail
cmd=${1:?up|down}
state=$(readlink -f "${2:?state folder}")
skip() { echo "SKIP: $*"; exit 77; }

if [ "$cmd" = down ]; then
  pids=()
  for f in "$state"/slurmd.pid "$state"/slurmctld.pid; do
    [ -f "$f" ] && pids+=("$(cat "$f")")
  done
  [ -f "$state/munged.started" ] && pids+=($(pgrep -u munge munged))
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  for _ in $(seq 50); do  # until they are gone (slurmd takes a second)
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.2
  done
  exit 0
fi

for b in munged slurmctld slurmd sbatch; do
  command -v $b >/dev/null || skip "$b is not installed (apt-get install slurm-wlm munge)"
done
mkdir -p "$state"/{spool,ctld,log}
if sinfo -h -o %t 2>/dev/null | grep -q idle; then  # one is already up: use it, leave it running
  echo "slurm already up: $(sinfo -h -o '%P %D %t %c')"
  exit 0
fi
[ "$(id -u)" = 0 ] || skip "the Slurm daemons need root (uid $(id -u))"
host=$(hostname -s)

# munge: a key, its folders, the daemon as the munge user
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /etc/munge /run/munge /var/log/munge /var/lib/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
  chmod 400 /etc/munge/munge.key
  chmod 700 /etc/munge
  su -s /bin/sh munge -c munged || skip "munged would not start"
  touch "$state/munged.started"
  for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
  munge -n | unmunge 2>&1 | grep -q "Success" || skip "munge does not authenticate: $(munge -n 2>&1 | unmunge 2>&1 | head -1)"
fi

mem=$(( $(awk '/MemAvailable/ {print int($2/1024)}' /proc/meminfo) - 1024 ))
mkdir -p /etc/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=deltakit-local
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
NodeName=$host CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
slurmctld || skip "slurmctld would not start: $(tail -1 "$state/log/slurmctld.log" 2>/dev/null)"
slurmd || skip "slurmd would not start: $(tail -1 "$state/log/slurmd.log" 2>/dev/null)"
for _ in $(seq 60); do
  sinfo -h -o %t 2>/dev/null | grep -q idle && { echo "slurm up: $(sinfo -h -o '%P %D %t %c')"; exit 0; }
  sleep 0.5
done
skip "the node never became idle: $(sinfo 2>&1 | tail -1); $(tail -2 "$state/log/slurmd.log" 2>/dev/null)"
