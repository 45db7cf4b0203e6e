#!/usr/bin/env bash
# multinode-node.sh kill|start NODE -- one node of the start-multinode.sh cluster, as root
# (tests/test_multinode.py uses it for node failures):
#
#   kill  NODE   the node "loses power": SIGKILL every process in its network namespace
#                (slurmd, slurmstepd, the job tasks). slurmctld notices nothing at once;
#                with SlurmdTimeout=5/MessageTimeout=2 the node is DOWN (not responding)
#                and its jobs NODE_FAIL (or requeued) ~10 s later.
#   start NODE   starts the node's slurmd again if it is not running (same namespaces,
#                same command as start-multinode.sh), resumes the node if it is DOWN or
#                DRAINED (an admin's `scontrol update state=down` sticks with
#                ReturnToService=1), and waits until it is idle/mixed/allocated.
#
# Knobs (must match start-multinode.sh): SLURM_MN_NETNS_PREFIX [xcmn-], SLURM_MN_TIMEOUT [60].
set -euo pipefail
CONF=/etc/slurm-mn/slurm.conf
RUN_DIR=/run/slurm-mn
PREFIX=${SLURM_MN_NETNS_PREFIX:-xcmn-}
TIMEOUT=${SLURM_MN_TIMEOUT:-60}
export SLURM_CONF=$CONF
log() { echo "[multinode-node $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ $# = 2 ] || die "usage: $0 kill|start NODE"
action=$1 node=$2
case "$node" in node[0-9]*) ;; *) die "not a node of the multi-node cluster: $node";; esac
ns=$PREFIX$node
[ "$(id -u)" = 0 ] || die "must run as root"
[ -e "/run/netns/$ns" ] || die "no network namespace $ns (is the multi-node cluster up?)"

slurmd_pid() {  # the slurmd running in the node's namespace, if any
  local p
  for p in $(ip netns pids "$ns" 2>/dev/null); do
    if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = slurmd ]; then echo "$p"; return 0; fi
  done
  return 1
}

case "$action" in
kill)
  pids=$(ip netns pids "$ns" | tr '\n' ' ')
  [ -n "${pids// /}" ] && kill -KILL $pids 2>/dev/null || true
  for _ in $(seq 50); do [ -z "$(ip netns pids "$ns")" ] && break; sleep 0.1; done
  [ -z "$(ip netns pids "$ns")" ] || die "processes left in $ns: $(ip netns pids "$ns" | tr '\n' ' ')"
  log "$node is dead (killed: $pids)"
  ;;
start)
  if ! slurmd_pid >/dev/null; then
    rm -f "$RUN_DIR/slurmd-$node.pid"
    nsenter --net="/run/netns/$ns" unshare --uts \
      sh -c "hostname $node && exec slurmd -f '$CONF' -N $node"
    for _ in $(seq 100); do slurmd_pid >/dev/null && [ -s "$RUN_DIR/slurmd-$node.pid" ] && break; sleep 0.1; done
    slurmd_pid >/dev/null || die "slurmd of $node did not start; see /var/log/slurm-mn/slurmd-$node.log"
    log "started slurmd of $node (pid $(slurmd_pid))"
  fi
  t0=$SECONDS
  while :; do
    st=$(sinfo -h -n "$node" -o %T 2>/dev/null | head -1)
    case "$st" in
      idle|mixed|allocated) break ;;
      *'*') ;;    # not responding yet: wait for its slurmd to register
      down*|drain*|fail*) scontrol update NodeName="$node" State=RESUME 2>/dev/null || true ;;
    esac
    [ $((SECONDS - t0)) -lt "$TIMEOUT" ] || die "$node not back after ${TIMEOUT}s (state '$st')"
    sleep 0.1
  done
  log "$node is $st after $((SECONDS - t0))s"
  ;;
*) die "usage: $0 kill|start NODE" ;;
esac
