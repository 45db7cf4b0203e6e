#!/usr/bin/env bash
# start-slurm.sh -- bring up a single-node SLURM cluster (munge + slurmctld + slurmd)
# on a Debian 12 machine, as root, without systemd and without cgroups, for the
# executorlib_cache test suite (scripts/test.sh calls it; adapted from the team's
# tested bring-up in shared/slurm/).
# Idempotent: installs only what is missing, starts only daemons that are not
# already running, and waits until `sinfo` reports the node idle.
# Daemons it starts are recorded in $SLURM_CI_STATE/*.pid for stop-slurm.sh.
#
# Optional environment knobs:
#   SLURM_CI_STATE       dir for "started by us" pid records     [/run/slurm-ci]
#   SLURM_CI_NODE        NodeName in slurm.conf                  [localhost]
#   SLURM_CI_PARTITION   name of the (default) partition         [debug]
#   SLURM_CI_CPUS        CPUs to advertise; if larger than the real count the
#                        node is oversubscribed (SlurmdParameters=config_overrides).
#                        8 by default: the tests run several 1-core jobs at once
#                        plus a 2-rank MPI job on a 2-core machine  [8]
#                        (SLURM_CI_CPUS=real uses the hardware count)
#   SLURM_CI_MPI_DEFAULT MpiDefault (pmi2 lets plain `srun` start MPICH ranks) [pmi2]
#   SLURM_CI_CLEAN       1 = start slurmctld with -c (forget old jobs) [1]
#   SLURM_CI_TIMEOUT     seconds to wait for the node to be idle  [90]
#   SLURM_CI_EXTRA_PKGS  extra apt packages to install            []
#   SLURM_CI_PROBE       1 = finish by running one tiny batch job, so that the
#                        ~3 s scheduler warm-up after slurmctld starts is over
#                        before tests submit anything           [1]
#   SLURM_CI_KILL_WAIT   KillWait: seconds between SIGTERM and SIGKILL at a time
#                        limit or scancel                        [1]
#
# Time limits: OverTimeLimit=0 and KillWait=1, but slurmctld only tests time
# limits every 30 s (PERIODIC_TIMEOUT, compiled in, not configurable), so a job
# with --time=1 is killed 60-91 s after it starts (state TIMEOUT), not at 60 s.
set -euo pipefail

STATE=${SLURM_CI_STATE:-/run/slurm-ci}
NODE=${SLURM_CI_NODE:-localhost}
PART=${SLURM_CI_PARTITION:-debug}
MPI_DEFAULT=${SLURM_CI_MPI_DEFAULT:-pmi2}
CLEAN=${SLURM_CI_CLEAN:-1}
TIMEOUT=${SLURM_CI_TIMEOUT:-90}
WANT_CPUS=${SLURM_CI_CPUS:-8}
KILL_WAIT=${SLURM_CI_KILL_WAIT:-1}
EXTRA_PKGS=${SLURM_CI_EXTRA_PKGS:-}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
CTLD_SPOOL=/var/spool/slurmctld
D_SPOOL=/var/spool/slurmd
LOG_DIR=/var/log/slurm

log() { echo "[start-slurm $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
mkdir -p "$STATE"

# alive PID [COMM] -> pid exists, is not a zombie, and (optionally) is named COMM
alive() {
  local pid=$1 comm=${2:-} st
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  st=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ "$st" != Z ] && [ "$st" != X ] || return 1
  [ -z "$comm" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]
}
pidfile_alive() { [ -s "$1" ] && alive "$(cat "$1" 2>/dev/null)" "$2"; }

# ---------------------------------------------------------------- 1. install
need=0
for b in munged slurmctld slurmd sinfo sbatch; do command -v "$b" >/dev/null || need=1; done
if [ -n "$EXTRA_PKGS" ] && ! dpkg -s $EXTRA_PKGS >/dev/null 2>&1; then need=1; fi
if [ "$need" = 1 ]; then
  log "installing munge + slurm from apt"
  # keep maintainer scripts from starting services (there is no init system)
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends \
      munge slurmctld slurmd slurm-client $EXTRA_PKGS >/dev/null
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# ---------------------------------------------------------------- 2. munge
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  log "creating munge key"
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key

if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "munged already running"
else
  rm -f /run/munge/munged.pid
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged --force
  for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  cp /run/munge/munged.pid "$STATE/munged.pid"
  munge -n | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"
fi

# ---------------------------------------------------------------- 3. config
install -d -m 0755 "$CONF_DIR" "$LOG_DIR"
install -d -m 0700 "$CTLD_SPOOL" "$D_SPOOL"
# real hardware as slurmd sees it, e.g.
# NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105
hw=$(slurmd -C | head -1)
get() { sed -n "s/.*[[:space:]]$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
CPUS=$(get CPUs); MEM=$(get RealMemory)
[ -n "$CPUS" ] && [ -n "$MEM" ] || die "could not parse 'slurmd -C': $hw"
[ "$WANT_CPUS" = real ] && WANT_CPUS=$CPUS
case "$WANT_CPUS" in ''|*[!0-9]*|0) die "SLURM_CI_CPUS must be a positive integer or 'real', got '$WANT_CPUS'";; esac
if [ "$WANT_CPUS" != "$CPUS" ]; then
  # advertise a different core count than the hardware has (slurmd would
  # otherwise drain the node for a CPU count mismatch)
  NODE_HW="CPUs=$WANT_CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$WANT_CPUS ThreadsPerCore=1"
  SLURMD_PARAMS="SlurmdParameters=config_overrides"
else
  NODE_HW="CPUs=$CPUS Boards=$(get Boards) SocketsPerBoard=$(get SocketsPerBoard) CoresPerSocket=$(get CoresPerSocket) ThreadsPerCore=$(get ThreadsPerCore)"
  SLURMD_PARAMS="#SlurmdParameters="
fi

new_conf=$(cat <<CONF
# generated by start-slurm.sh -- single node, no cgroups, no slurmdbd
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$CTLD_SPOOL
SlurmdSpoolDir=$D_SPOOL
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# no cgroups: plain process tracking, no task binding, no accounting gather
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# start batch jobs right away (default batch_sched_delay=3 adds ~3 s per job)
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
# no slurmdbd: sacct does not work; finished jobs go to a text file instead
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
MpiDefault=$MPI_DEFAULT
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
# reject at submit a job that no node/partition could ever run (e.g. more CPUs
# than the node has) instead of leaving it PENDING (PartitionConfig) forever,
# as production clusters usually do
EnforcePartLimits=ALL
# time limits: no grace period, SIGKILL 1 s after SIGTERM, so a --time limit
# ends the job at the first 30 s time-limit sweep after it expires
OverTimeLimit=0
KillWait=$KILL_WAIT
Waittime=0
$SLURMD_PARAMS
NodeName=$NODE NodeAddr=127.0.0.1 $NODE_HW RealMemory=$MEM State=UNKNOWN
PartitionName=$PART Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
)
conf_changed=0
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$new_conf" ]; then
  printf '%s\n' "$new_conf" > "$CONF"; conf_changed=1
  log "wrote $CONF"
fi

# ---------------------------------------------------------------- 4. daemons
stop_pid() {  # pid: TERM, wait up to 10 s, then KILL
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do alive "$pid" || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
start_daemon() {  # name pidfile cmd...
  local name=$1 pidf=$2; shift 2
  if pidfile_alive "$pidf" "$name"; then
    if [ "$conf_changed" = 0 ]; then log "$name already running (pid $(cat "$pidf"))"; return 0; fi
    log "config changed: restarting $name"; stop_pid "$(cat "$pidf")"
  fi
  rm -f "$pidf"
  log "starting $name"
  "$@"
  for _ in $(seq 100); do pidfile_alive "$pidf" "$name" && break; sleep 0.1; done
  pidfile_alive "$pidf" "$name" || die "$name did not start; see $LOG_DIR/$name.log"
  cp "$pidf" "$STATE/$name.pid"
}
ctld_args=(); [ "$CLEAN" = 1 ] && ctld_args=(-c)
start_daemon slurmctld /run/slurmctld.pid slurmctld "${ctld_args[@]}"
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
start_daemon slurmd /run/slurmd.pid slurmd -N "$NODE"

# ---------------------------------------------------------------- 5. wait idle
t0=$SECONDS
while :; do
  st=$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1 || true)
  case "$st" in
    idle|mixed|allocated) break ;;
    drain*|down*|fail*)
      log "node state '$st', resuming"; scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
  esac
  if [ $((SECONDS - t0)) -ge "$TIMEOUT" ]; then
    sinfo -R >&2 || true; tail -n 20 "$LOG_DIR"/slurmctld.log "$LOG_DIR"/slurmd.log >&2 || true
    die "node not idle after ${TIMEOUT}s (state '$st')"
  fi
  sleep 0.2
done

# ---------------------------------------------------------------- 6. probe job
if [ "${SLURM_CI_PROBE:-1}" = 1 ]; then
  probe=$(sbatch --parsable -J slurm-ci-probe -o /dev/null -e /dev/null -D /tmp --wrap true) \
    || die "sbatch of the probe job failed"
  t0=$SECONDS
  while :; do
    st=$(scontrol show job "$probe" -o 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
    [ "$st" = COMPLETED ] && break
    case "$st" in FAILED|CANCELLED|NODE_FAIL|TIMEOUT|BOOT_FAIL|OUT_OF_MEMORY)
      die "probe job $probe ended $st (see $LOG_DIR/slurmd.log)";; esac
    [ $((SECONDS - t0)) -lt "$TIMEOUT" ] || die "probe job $probe not done after ${TIMEOUT}s (state '$st')"
    sleep 0.1
  done
  log "probe job $probe completed in $((SECONDS - t0))s"
fi
log "SLURM up: $(sinfo -h -o '%P %a %D %T %N %c CPUs')"
