#!/usr/bin/env bash
# stop-slurm.sh -- stop the daemons that scripts/start-slurm.sh started (pid records in
# $SLURM_CI_STATE, default /run/slurm-ci). Leaves other processes alone.
# Jobs still in the queue are cancelled first (set SLURM_CI_KEEP_JOBS=1 to skip),
# so that no job processes outlive the cluster.
set -uo pipefail
STATE=${SLURM_CI_STATE:-/run/slurm-ci}
log() { echo "[stop-slurm $(date +%T)] $*" >&2; }
alive() {  # pid exists, is not a zombie, and has the given comm
  local pid=$1 comm=$2 st
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  st=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ "$st" != Z ] && [ "$st" != X ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]
}
[ -d "$STATE" ] || { log "nothing recorded in $STATE"; exit 0; }

if [ "${SLURM_CI_KEEP_JOBS:-0}" != 1 ] && [ -s "$STATE/slurmctld.pid" ] \
   && alive "$(cat "$STATE/slurmctld.pid")" slurmctld; then
  jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    log "cancelling jobs: $jobs"
    scancel $jobs 2>/dev/null
    for _ in $(seq 50); do [ -z "$(squeue -h -t R,CG -o %i 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi

for name in slurmd slurmctld munged; do     # reverse start order
  f=$STATE/$name.pid
  [ -s "$f" ] || continue
  pid=$(cat "$f")
  if alive "$pid" "$name"; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do alive "$pid" "$name" || break; sleep 0.1; done
    if alive "$pid" "$name"; then log "$name did not exit in 10 s, SIGKILL"; kill -KILL "$pid" 2>/dev/null; fi
  else
    log "$name (pid $pid) not running"
  fi
  rm -f "$f"
done
exit 0
