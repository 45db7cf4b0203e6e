#!/usr/bin/env bash
# stop-multinode.sh -- undo start-multinode.sh, touching nothing of the single-node
# cluster (its config, daemons, pid files, logs, spool dirs stay as they are):
#  1. cancels the jobs queued in the multi-node cluster (SLURM_CONF=/etc/slurm-mn/slurm.conf;
#     SLURM_MN_KEEP_JOBS=1 skips this);
#  2. stops the daemons recorded in $SLURM_MN_STATE (default /run/slurm-mn/started):
#     the slurmd's, slurmctld, and munged only if the start script started it AND no
#     other slurmctld/slurmd (the single-node cluster) is left that needs it;
#     TERM, KILL after 10 s;
#  3. KILLs (by pid, found by network namespace) whatever still runs inside the node
#     namespaces: a killed slurmd leaves its slurmstepd and job tasks behind;
#  4. deletes the namespaces, their veths and the bridge it created.
# Then the multi-node config stays in /etc/slurm-mn (harmless: nothing reads it
# without SLURM_CONF). Takes 0.5-3 s.
set -uo pipefail
CONF=/etc/slurm-mn/slurm.conf
RUN_DIR=/run/slurm-mn
STATE=${SLURM_MN_STATE:-$RUN_DIR/started}
export SLURM_CONF=$CONF
log() { echo "[stop-multinode $(date +%T)] $*" >&2; }
alive() {  # pid exists, is not a zombie, and (optionally) has the given comm
  local pid=$1 comm=${2:-} st
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  st=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ "$st" != Z ] && [ "$st" != X ] || return 1
  [ -z "$comm" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]
}
stop_pid() {  # pid comm label
  local pid=$1 comm=$2 label=$3
  if alive "$pid" "$comm"; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do alive "$pid" "$comm" || return 0; sleep 0.1; done
    log "$label did not exit in 10 s, SIGKILL"; kill -KILL "$pid" 2>/dev/null
  fi
}
[ -d "$STATE" ] || { log "nothing recorded in $STATE"; exit 0; }
T_START=$(date +%s.%N)

if [ "${SLURM_MN_KEEP_JOBS:-0}" != 1 ] && [ -s "$STATE/slurmctld.pid" ] \
   && alive "$(cat "$STATE/slurmctld.pid")" slurmctld; then
  jobs=$(timeout 10 squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    log "cancelling jobs: $jobs"
    timeout 10 scancel $jobs 2>/dev/null
    for _ in $(seq 25); do
      [ -z "$(timeout 5 squeue -h -t R,CG -o %i 2>/dev/null)" ] && break; sleep 0.2
    done
  fi
fi

# the daemons: every slurmd inside our namespaces (also one a test restarted) and
# the recorded ones, then slurmctld; TERM all at once, wait (slurmctld may take 3 s)
netns=$(sort -u "$STATE/netns" 2>/dev/null)
in_ns_slurmd=$(for ns in $netns; do
  [ -e "/run/netns/$ns" ] || continue
  for p in $(ip netns pids "$ns" 2>/dev/null); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = slurmd ] && echo "$p"
  done
done)
stopped=""
for f in "$STATE"/slurmd-*.pid "$STATE/slurmctld.pid"; do
  [ -s "$f" ] || continue
  name=$(basename "$f" .pid); pid=$(cat "$f")
  rm -f "$f"
  stop_pid "$pid" "${name%%-*}" "$name" &
  stopped="$stopped $name"
done
for p in $in_ns_slurmd; do stop_pid "$p" slurmd "slurmd pid $p" & done
wait
[ -z "$stopped" ] || log "stopped$stopped"

# processes left in our namespaces (slurmstepd / job tasks of a killed slurmd):
# found by their network namespace, killed by pid
if [ -n "$netns" ]; then
  for ns in $netns; do
    [ -e "/run/netns/$ns" ] || continue
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    if [ -n "${pids// /}" ]; then
      log "killing processes left in netns $ns: $pids"
      kill -KILL $pids 2>/dev/null
    fi
  done
  for ns in $netns; do
    # deleting the namespace deletes its end of the veth pair, and with it ours
    [ -e "/run/netns/$ns" ] && { ip netns del "$ns" 2>/dev/null || log "could not delete netns $ns"; }
  done
  log "deleted netns $(tr '\n' ' ' <<<"$netns")"
  rm -f "$STATE/netns"
fi
if [ -s "$STATE/links" ]; then
  for l in $(sort -u "$STATE/links"); do
    if ip link show "$l" >/dev/null 2>&1; then
      # veths of ours still on the bridge (their namespace was not ours to delete)
      for v in $(ip -o link show master "$l" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
        ip link del "$v" 2>/dev/null && log "deleted $v"
      done
      ip link del "$l" && log "deleted bridge $l"
    fi
  done
  rm -f "$STATE/links"
fi

# munged last, and only if we started it and nothing else uses it
if [ -s "$STATE/munged.pid" ]; then
  others=$(for p in /proc/[0-9]*; do   # (no pgrep in a bare Debian)
    case "$(cat "$p/comm" 2>/dev/null)" in slurmctld|slurmd|slurmdbd) echo "${p#/proc/}";; esac
  done | tr '\n' ' ')
  if [ -n "${others// /}" ]; then
    log "leaving munged running: other SLURM daemons use it (pids $others)"
  else
    stop_pid "$(cat "$STATE/munged.pid")" munged munged && log "stopped munged"
  fi
  rm -f "$STATE/munged.pid"
fi
rm -f "$STATE/probe.out"
rmdir "$STATE" 2>/dev/null || true
log "multi-node SLURM stopped in $(awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s"
exit 0
