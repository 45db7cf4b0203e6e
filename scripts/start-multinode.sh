#!/usr/bin/env bash
# start-multinode.sh -- bring up a small MULTI-NODE SLURM cluster on this one machine,
# next to (not instead of) the single-node cluster of start-slurm.sh, for the
# multi-node tests (tests/test_multinode.py; scripts/test.sh calls it as root).
# Adapted from the team's tested bring-up in shared/slurm/ (MULTINODE.md there).
#
#   root network namespace:  slurmctld, listening on the bridge address $NET.1
#   netns/UTS ns <prefix>nodeK: one slurmd each (hostname nodeK, address $NET.(10+K)),
#                               on a veth pair into the bridge $BR
#   shared: the file system (the cache, as a cluster's parallel file system) and munged
#
# It is a SEPARATE cluster: every SLURM command or daemon finds it only through
#   SLURM_CONF=/etc/slurm-mn/slurm.conf    (the default /etc/slurm/slurm.conf stays
#                                           the single-node cluster's)
# with its own ClusterName (mn), ports (6827/6828, not 6817/6818), StateSaveLocation
# (/var/spool/slurmctld-mn), SlurmdSpoolDir (/var/spool/slurmd-mn/<node>), pid files
# (/run/slurm-mn/), logs (/var/log/slurm-mn/), node names (node1..N; the single-node
# cluster's node is "localhost") and job ids (FirstJobId=1000000, so an id can never
# be mistaken for one of the other cluster's). Only munged is shared (one per machine).
#
# Idempotent: installs only what is missing, creates only missing links/namespaces,
# starts only daemons that are not running (a restart only if the config changed),
# resumes nodes that are down, waits until all nodes are idle, then (by default) runs a
# probe job `srun hostname` over all nodes. Re-running it after a node's slurmd was
# killed (tests do) starts just that slurmd again (SLURM_MN_PROBE=0: ~0.5 s).
# Everything it created or started is recorded in $SLURM_MN_STATE for stop-multinode.sh.
# Measured on the 2-core CI VM: ~4 s from nothing (the probe job waits for the
# scheduler's ~3 s warm-up), ~1 s when all is up.
#
# Node failure settings (what the tests rely on): SlurmdTimeout=5 + MessageTimeout=2
# put a node whose slurmd died DOWN (and its jobs NODE_FAIL) ~10 s after the death;
# ReturnToService=1 keeps a node an admin set DOWN down until
# `scontrol update nodename=X state=resume`, while a node that was DOWN only for not
# responding returns by itself when its slurmd registers again; JobRequeue=1 (SLURM's
# default) requeues a batch job hit by a node failure unless it was submitted with
# --no-requeue (then it ends NODE_FAIL).
#
# Optional environment knobs:
#   SLURM_MN_STATE       dir for "created/started by us" records      [/run/slurm-mn/started]
#   SLURM_MN_NODES       number of slurmd nodes (node1..nodeN)       [3]
#   SLURM_MN_CPUS        CPUs advertised per node (all nodes share the real cores;
#                        config_overrides if it differs from the hardware)  [2]
#   SLURM_MN_NET         first three octets of the private /24        [10.77.0]
#   SLURM_MN_BRIDGE      bridge in the root namespace                 [xcmnbr0]
#   SLURM_MN_NETNS_PREFIX  netns of nodeK = <prefix>nodeK; root-side veth <prefix>vK [xcmn-]
#   SLURM_MN_CTLD_PORT / SLURM_MN_SLURMD_PORT                        [6827 / 6828]
#   SLURM_MN_PARTITION   the (default) partition                      [debug]
#   SLURM_MN_MPI_DEFAULT MpiDefault (pmi2: plain srun starts MPICH ranks on all nodes) [pmi2]
#   SLURM_MN_SLURMD_TIMEOUT / SLURM_MN_MESSAGE_TIMEOUT  (s)          [5 / 2]
#   SLURM_MN_RETURN_TO_SERVICE                                       [1]
#   SLURM_MN_JOB_REQUEUE                                             [1]
#   SLURM_MN_KILL_WAIT   KillWait (s)                                 [1]
#   SLURM_MN_EXTRA_CONF  extra slurm.conf lines (newline-separated)   []
#   SLURM_MN_CLEAN       1 = start slurmctld with -c (forget old jobs) [1]
#   SLURM_MN_TIMEOUT     seconds to wait for idle nodes / the probe   [90]
#   SLURM_MN_PROBE       1 = finish with one `srun hostname` job over all nodes [1]
# The paths (/etc/slurm-mn, /run/slurm-mn, /var/spool/slurm*-mn, /var/log/slurm-mn) are
# fixed: stop-multinode.sh, multinode-node.sh and the tests find the cluster by them.
set -euo pipefail

CONF_DIR=/etc/slurm-mn
CONF=$CONF_DIR/slurm.conf
RUN_DIR=/run/slurm-mn
CTLD_SPOOL=/var/spool/slurmctld-mn
D_SPOOL=/var/spool/slurmd-mn
LOG_DIR=/var/log/slurm-mn
STATE=${SLURM_MN_STATE:-$RUN_DIR/started}
NNODES=${SLURM_MN_NODES:-3}
WANT_CPUS=${SLURM_MN_CPUS:-2}
NET=${SLURM_MN_NET:-10.77.0}
BR=${SLURM_MN_BRIDGE:-xcmnbr0}
PREFIX=${SLURM_MN_NETNS_PREFIX:-xcmn-}
CTLD_PORT=${SLURM_MN_CTLD_PORT:-6827}
SLURMD_PORT=${SLURM_MN_SLURMD_PORT:-6828}
PART=${SLURM_MN_PARTITION:-debug}
MPI_DEFAULT=${SLURM_MN_MPI_DEFAULT:-pmi2}
SD_TIMEOUT=${SLURM_MN_SLURMD_TIMEOUT:-5}
MSG_TIMEOUT=${SLURM_MN_MESSAGE_TIMEOUT:-2}
RTS=${SLURM_MN_RETURN_TO_SERVICE:-1}
REQUEUE=${SLURM_MN_JOB_REQUEUE:-1}
KILL_WAIT=${SLURM_MN_KILL_WAIT:-1}
CLEAN=${SLURM_MN_CLEAN:-1}
TIMEOUT=${SLURM_MN_TIMEOUT:-90}
CTL_ADDR=$NET.1
# every SLURM command below (and every daemon) talks to THIS cluster
export SLURM_CONF=$CONF

log() { echo "[start-multinode $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
case "$NNODES" in ''|*[!0-9]*) die "SLURM_MN_NODES must be a number";; esac
[ "$NNODES" -ge 1 ] && [ "$NNODES" -le 200 ] || die "SLURM_MN_NODES must be 1..200"
case "$WANT_CPUS" in ''|*[!0-9]*|0) die "SLURM_MN_CPUS must be a positive integer";; esac
[ "$CTLD_PORT" != 6817 ] && [ "$SLURMD_PORT" != 6818 ] \
  || die "ports 6817/6818 are the single-node cluster's; pick others"
T_START=$(date +%s.%N)
NODES=$(seq -f 'node%g' 1 "$NNODES" | tr '\n' ' ')
NODELIST=node[1-$NNODES]; [ "$NNODES" = 1 ] && NODELIST=node1
NODE_ADDRS=$NET.[11-$((10 + NNODES))]; [ "$NNODES" = 1 ] && NODE_ADDRS=$NET.11

alive() {  # pid exists, is not a zombie, and (optionally) is named COMM
  local pid=$1 comm=${2:-} st
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  st=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ "$st" != Z ] && [ "$st" != X ] || return 1
  [ -z "$comm" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]
}
pidfile_alive() { [ -s "$1" ] && alive "$(cat "$1" 2>/dev/null)" "$2"; }
record() { grep -qxF "$2" "$STATE/$1" 2>/dev/null || echo "$2" >> "$STATE/$1"; }
mkdir -p "$RUN_DIR" "$STATE"

# ---------------------------------------------------------------- 1. install
need=0
for b in munged slurmctld slurmd sinfo sbatch ip nsenter unshare; do
  command -v "$b" >/dev/null || need=1
done
if [ "$need" = 1 ]; then
  log "installing munge + slurm + iproute2 + util-linux from apt"
  made_policy=0   # keep maintainer scripts from starting services (no init system)
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends \
      munge slurmctld slurmd slurm-client iproute2 util-linux >/dev/null
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# ---------------------------------------------------------------- 2. network
# the /24 must be ours: not on any other interface of the root namespace
other=$(ip -o -4 addr show | awk -v net="$NET." -v br="$BR" \
        'index($4, net) == 1 && $2 != br {print $2}' | head -1)
[ -z "$other" ] || die "$NET.0/24 is already on interface $other; set SLURM_MN_NET"
if ! ip link show "$BR" >/dev/null 2>&1; then
  log "creating bridge $BR ($CTL_ADDR/24)"
  ip link add "$BR" type bridge
  record links "$BR"
fi
ip addr show dev "$BR" | grep -q "inet $CTL_ADDR/" || ip addr add "$CTL_ADDR/24" dev "$BR"
ip link set "$BR" up
for k in $(seq 1 "$NNODES"); do
  ns=${PREFIX}node$k; addr=$NET.$((10 + k)); veth=${PREFIX}v$k
  if [ ! -e "/run/netns/$ns" ]; then
    log "creating netns $ns ($addr)"
    ip netns add "$ns"
    record netns "$ns"
  fi
  if ! ip link show "$veth" >/dev/null 2>&1; then
    ip -n "$ns" link del eth0 2>/dev/null || true
    ip link add "$veth" type veth peer name eth0 netns "$ns"
  fi
  ip link set "$veth" master "$BR" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr show dev eth0 | grep -q "inet $addr/" || ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
done

# ---------------------------------------------------------------- 3. munge (shared)
# munged's socket /run/munge/munge.socket.2 is a file: every namespace reaches it
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "munged already running (shared)"
else
  if [ ! -s /etc/munge/munge.key ]; then
    log "creating munge key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
  rm -f /run/munge/munged.pid
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged --force
  for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  cp /run/munge/munged.pid "$STATE/munged.pid"
  munge -n | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"
fi

# ---------------------------------------------------------------- 4. config
install -d -m 0755 "$CONF_DIR" "$LOG_DIR"
install -d -m 0700 "$CTLD_SPOOL" "$D_SPOOL"
hw=$(slurmd -C | head -1)
get() { sed -n "s/.*[[:space:]]$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
CPUS=$(get CPUs); MEM=$(get RealMemory)
[ -n "$CPUS" ] && [ -n "$MEM" ] || die "could not parse 'slurmd -C': $hw"
if [ "$WANT_CPUS" != "$CPUS" ]; then
  NODE_HW="CPUs=$WANT_CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$WANT_CPUS ThreadsPerCore=1"
  SLURMD_PARAMS="SlurmdParameters=config_overrides"
else
  NODE_HW="CPUs=$CPUS Boards=$(get Boards) SocketsPerBoard=$(get SocketsPerBoard) CoresPerSocket=$(get CoresPerSocket) ThreadsPerCore=$(get ThreadsPerCore)"
  SLURMD_PARAMS="#SlurmdParameters="
fi
NODE_MEM=$((MEM / NNODES))   # all nodes share the machine's memory

new_conf=$(cat <<CONF
# generated by scripts/start-multinode.sh -- $NNODES slurmd nodes in network namespaces,
# a cluster SEPARATE from /etc/slurm/slurm.conf: use it with SLURM_CONF=$CONF
ClusterName=mn
# "localhost" lets slurmctld accept this machine as controller whatever its hostname;
# nodes and clients connect to the address in (): the bridge, in the root namespace
SlurmctldHost=localhost($CTL_ADDR)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$CTLD_SPOOL
# %n = the node name of slurmd -N: one spool dir / pid file / log per node
SlurmdSpoolDir=$D_SPOOL/%n
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd-%n.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# job ids never overlap the single-node cluster's
FirstJobId=1000000
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
MpiDefault=$MPI_DEFAULT
# refuse at submit what no node/partition can ever run (more nodes than exist, ...)
EnforcePartLimits=ALL
# node failure: a dead slurmd's node is DOWN ~10 s after its death with 5/2
ReturnToService=$RTS
JobRequeue=$REQUEUE
SlurmctldTimeout=30
SlurmdTimeout=$SD_TIMEOUT
MessageTimeout=$MSG_TIMEOUT
InactiveLimit=0
MinJobAge=300
OverTimeLimit=0
KillWait=$KILL_WAIT
Waittime=0
$SLURMD_PARAMS
${SLURM_MN_EXTRA_CONF:-}
NodeName=$NODELIST NodeAddr=$NODE_ADDRS $NODE_HW RealMemory=$NODE_MEM State=UNKNOWN
PartitionName=$PART Nodes=$NODELIST Default=YES MaxTime=INFINITE State=UP
CONF
)
conf_changed=0
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$new_conf" ]; then
  printf '%s\n' "$new_conf" > "$CONF"; conf_changed=1
  log "wrote $CONF"
fi

# ---------------------------------------------------------------- 5. daemons
stop_pid() {  # pid: TERM, up to 10 s, KILL
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do alive "$pid" || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
start_daemon() {  # record-name comm pidfile cmd...
  local rec=$1 comm=$2 pidf=$3; shift 3
  if pidfile_alive "$pidf" "$comm"; then
    if [ "$conf_changed" = 0 ]; then return 0; fi
    log "config changed: restarting $rec"; stop_pid "$(cat "$pidf")"
  fi
  rm -f "$pidf"
  log "starting $rec"
  "$@"
  for _ in $(seq 100); do pidfile_alive "$pidf" "$comm" && break; sleep 0.1; done
  pidfile_alive "$pidf" "$comm" || die "$rec did not start; see $LOG_DIR/$rec.log"
  cp "$pidf" "$STATE/$rec.pid"
}
ctld_args=(-f "$CONF"); [ "$CLEAN" = 1 ] && ctld_args+=(-c)
start_daemon slurmctld slurmctld "$RUN_DIR/slurmctld.pid" slurmctld "${ctld_args[@]}"
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q 'is UP' && break; sleep 0.1; done
scontrol ping 2>/dev/null | grep -q 'is UP' || die "slurmctld does not answer; see $LOG_DIR/slurmctld.log"
for n in $NODES; do
  ns=$PREFIX$n
  # can the namespace reach slurmctld over the bridge? (no ping in a bare Debian)
  ok=0
  for _ in $(seq 50); do
    if nsenter --net="/run/netns/$ns" timeout 1 bash -c ": </dev/tcp/$CTL_ADDR/$CTLD_PORT" 2>/dev/null
    then ok=1; break; fi
    sleep 0.1
  done
  [ "$ok" = 1 ] || die "$ns cannot reach slurmctld at $CTL_ADDR:$CTLD_PORT over $BR"
  install -d -m 0700 "$D_SPOOL/$n"
  # own network namespace (NodeAddr) + own UTS namespace (hostname = node name, so
  # socket.gethostname() in a job names its node); -N selects the NodeName line.
  # nsenter, not `ip netns exec`: that remounts /sys, hiding /sys/fs/cgroup, and
  # slurmd 22.05 then fails "Unable to initialize cgroup plugin"
  start_daemon "slurmd-$n" slurmd "$RUN_DIR/slurmd-$n.pid" \
    nsenter --net="/run/netns/$ns" unshare --uts \
      sh -c "hostname $n && exec slurmd -f '$CONF' -N $n"
done

# ---------------------------------------------------------------- 6. wait idle
t0=$SECONDS
while :; do
  states=$(sinfo -h -N -p "$PART" -o '%N %T' 2>/dev/null || true)
  nidle=$(awk '$2=="idle"||$2=="mixed"||$2=="allocated"' <<<"$states" | wc -l)
  [ "$nidle" -ge "$NNODES" ] && break
  while read -r n st; do
    case "$st" in drain*|down*|fail*)
      log "node $n is '$st': resuming"; scontrol update NodeName="$n" State=RESUME 2>/dev/null || true ;;
    esac
  done <<<"$states"
  if [ $((SECONDS - t0)) -ge "$TIMEOUT" ]; then
    sinfo -R >&2 || true; tail -n 20 "$LOG_DIR"/slurmctld.log "$LOG_DIR"/slurmd-node*.log >&2 || true
    die "nodes not idle after ${TIMEOUT}s: $(tr '\n' ' ' <<<"$states")"
  fi
  sleep 0.2
done

# ---------------------------------------------------------------- 7. probe job
if [ "${SLURM_MN_PROBE:-1}" = 1 ]; then
  out=$STATE/probe.out; rm -f "$out"
  probe=$(sbatch --parsable -J slurm-mn-probe -N "$NNODES" -n "$NNODES" -o "$out" -D "$STATE" \
          --wrap 'srun hostname') || die "sbatch of the probe job failed"
  t0=$SECONDS
  while :; do
    st=$(scontrol show job "$probe" -o 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
    [ "$st" = COMPLETED ] && break
    case "$st" in FAILED|CANCELLED|NODE_FAIL|TIMEOUT|BOOT_FAIL|OUT_OF_MEMORY)
      cat "$out" >&2 2>/dev/null || true
      die "probe job $probe ended $st (see $LOG_DIR/slurmd-node*.log)";; esac
    [ $((SECONDS - t0)) -lt "$TIMEOUT" ] || die "probe job $probe not done after ${TIMEOUT}s (state '$st')"
    sleep 0.1
  done
  got=$(sort "$out" | tr '\n' ' ')
  [ "$got" = "$NODES" ] || die "probe job $probe: srun hostname printed '$got', expected '$NODES'"
  rm -f "$out"
fi
log "multi-node SLURM up in $(awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s" \
    "(SLURM_CONF=$CONF): $(sinfo -h -o '%P %a %D %T %N %c CPUs' | tr '\n' ' ')"
