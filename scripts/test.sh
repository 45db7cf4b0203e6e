#!/usr/bin/env bash
# test.sh -- THE test command of executorlib_cache (README: `sudo bash scripts/test.sh`,
# or as root `bash scripts/test.sh`; extra arguments go to pytest).
#
#  1. creates/updates a venv ($VENV, default .venv-test in the repo) with an editable
#     install of '.[all,test]' plus the mpich wheel (mpiexec for MPI tasks);
#  2. as root, brings up a single-node SLURM with scripts/start-slurm.sh unless one is
#     already up, and stops it on exit only if this run started it; exports
#     XCACHE_TEST_SLURM=1 when SLURM answers. Without root and without a running
#     SLURM, the SLURM tests are skipped (it says how to enable them). With CI=true a
#     SLURM that cannot be brought up is a failure, not a skip;
#  2b. as root, brings up the multi-node SLURM (3 slurmd nodes in network namespaces,
#     a separate cluster next to the single-node one) with scripts/start-multinode.sh
#     unless it is already up, and stops it on exit only if this run started it;
#     exports XCACHE_TEST_SLURM_MN=/etc/slurm-mn/slurm.conf (the tests set SLURM_CONF
#     to it; nothing else here does, so the rest of the suite uses the single-node
#     cluster). Same rules as 2: CI=true makes a failed bring-up a failure;
#  3. puts the venv's bin first on PATH, so that batch jobs, which inherit the
#     environment of sbatch, find the venv's `python` and `mpiexec`;
#  4. runs ruff, mypy and pytest; exits with pytest's code (5 = no test ran is a
#     failure too), or 1 if only ruff/mypy failed.
#
# Knobs (env): VENV, PYTHON (interpreter for the venv, default python3),
# XCACHE_TEST_SLURM=0 (do not look for or start SLURM, either cluster),
# XCACHE_TEST_SLURM_MN=0 (no multi-node cluster), SLURM_CI_* (start-slurm.sh),
# SLURM_MN_* (start-multinode.sh).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
VENV=${VENV:-$REPO/.venv-test}
PYTHON=${PYTHON:-python3}
IS_CI=0; case "${CI:-}" in true|1|yes) IS_CI=1;; esac

log() { echo "[test.sh $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
t_start=$SECONDS

# ------------------------------------------------------------------ 0. system packages
# graphviz: the graph extra renders through Graphviz's `dot` (docs' graph examples,
#   tests/test_graph.py);
# strace: bench/bench_metadata.py counts metadata system calls (tests/test_bench_metadata.py);
# fuse3: bench/slowfs.py, the slow-metadata FUSE file system (libfuse3 + fusermount3).
# Under CI=true the tests that need them fail rather than skip when they are missing.
sys_need=()
command -v dot >/dev/null 2>&1 || sys_need+=(graphviz)
command -v strace >/dev/null 2>&1 || sys_need+=(strace)
command -v fusermount3 >/dev/null 2>&1 || sys_need+=(fuse3)
if [ "${#sys_need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "apt-get install ${sys_need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${sys_need[@]}" >/dev/null \
      || die "apt-get install ${sys_need[*]} failed"
  else
    log "WARNING: missing ${sys_need[*]}: the tests that need them will be skipped (apt-get install ${sys_need[*]})"
  fi
fi

# ------------------------------------------------------------------ 1. venv
if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV"
  "$PYTHON" -m venv "$VENV" \
    || die "'$PYTHON -m venv' failed (Debian: apt-get install python3-venv)"
fi
# keep the venv out of `git status` (venv writes this itself only from Python 3.13)
[ -e "$VENV/.gitignore" ] || echo '*' > "$VENV/.gitignore"
log "installing -e '.[all,test]' mpich into $VENV"
# editable: the suite tests the working tree (setuptools maps cli/ and
# scheduler_templates/ into executorlib_cache.* through its editable finder)
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[all,test]' mpich \
  || die "pip install failed"
export PATH="$VENV/bin:$PATH"
hash -r
log "venv ready after $((SECONDS - t_start))s: $(command -v python), mpiexec: $(command -v mpiexec || echo none)"

# ------------------------------------------------------------------ 2. SLURM
slurm_state=""
slurm_ready() {
  command -v sinfo >/dev/null 2>&1 || return 1
  timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP' || return 1
  timeout 10 sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}
mn_state=""
MN_CONF=/etc/slurm-mn/slurm.conf
cleanup() {
  local rc=$?
  if [ -n "$mn_state" ]; then
    log "stopping the multi-node SLURM this run started"
    SLURM_MN_STATE=$mn_state bash "$REPO/scripts/stop-multinode.sh" || true
    rm -rf "$mn_state"
  fi
  if [ -n "$slurm_state" ]; then
    log "stopping the SLURM this run started"
    SLURM_CI_STATE=$slurm_state bash "$REPO/scripts/stop-slurm.sh" || true
    rm -rf "$slurm_state"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "${XCACHE_TEST_SLURM:-}" = 0 ]; then
  log "XCACHE_TEST_SLURM=0: SLURM tests skipped"
  [ "$IS_CI" = 0 ] || die "CI=true but XCACHE_TEST_SLURM=0: CI must run the SLURM tests"
  unset XCACHE_TEST_SLURM
elif slurm_ready; then
  log "using the SLURM that is already running (left running afterwards)"
  export XCACHE_TEST_SLURM=1
elif [ "$(id -u)" = 0 ]; then
  # a private pid-record dir: stop-slurm.sh then stops only what this run started
  slurm_state=$(mktemp -d /tmp/xcache-slurm-state.XXXXXX)
  if SLURM_CI_STATE=$slurm_state bash "$REPO/scripts/start-slurm.sh" && slurm_ready; then
    export XCACHE_TEST_SLURM=1
  elif [ "$IS_CI" = 1 ]; then
    die "CI=true and SLURM could not be brought up (see the start-slurm.sh output above)"
  else
    log "WARNING: SLURM could not be brought up; SLURM tests will be skipped"
    unset XCACHE_TEST_SLURM
  fi
else
  [ "$IS_CI" = 0 ] || die "CI=true but not root and no SLURM running: cannot run the SLURM tests"
  log "not root and no SLURM running: SLURM tests will be skipped."
  log "  To run them: 'sudo bash scripts/test.sh' (starts a local single-node SLURM),"
  log "  or start SLURM yourself (sudo bash scripts/start-slurm.sh) and re-run."
  unset XCACHE_TEST_SLURM
fi
[ "${XCACHE_TEST_SLURM:-0}" = 1 ] && log "SLURM: $(sinfo -h -o '%P %a %D %T %c CPUs' | head -1)"

# ------------------------------------------------------------------ 2b. multi-node SLURM
# a second, separate cluster (its own config, ports, dirs; shared munged): only the
# tests that set SLURM_CONF=$XCACHE_TEST_SLURM_MN use it (tests/test_multinode.py)
mn_ready() {
  [ -f "$MN_CONF" ] && command -v sinfo >/dev/null 2>&1 || return 1
  SLURM_CONF=$MN_CONF timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP' || return 1
  [ "$(SLURM_CONF=$MN_CONF timeout 10 sinfo -h -N -o %T 2>/dev/null \
       | grep -cE '^(idle|mixed|allocated)$')" -ge 3 ]
}
mn_wanted=${XCACHE_TEST_SLURM_MN:-1}
unset XCACHE_TEST_SLURM_MN
if [ "${XCACHE_TEST_SLURM:-}" != 1 ] || [ "$mn_wanted" = 0 ]; then
  [ "$mn_wanted" = 0 ] && log "XCACHE_TEST_SLURM_MN=0: multi-node SLURM tests skipped"
  [ "$IS_CI" = 0 ] || [ "${XCACHE_TEST_SLURM:-}" != 1 ] \
    || die "CI=true but XCACHE_TEST_SLURM_MN=0: CI must run the multi-node tests"
elif mn_ready; then
  log "using the multi-node SLURM that is already running (left running afterwards)"
  export XCACHE_TEST_SLURM_MN=$MN_CONF
elif [ "$(id -u)" = 0 ]; then
  mn_state=$(mktemp -d /tmp/xcache-slurm-mn-state.XXXXXX)
  if SLURM_MN_STATE=$mn_state bash "$REPO/scripts/start-multinode.sh" && mn_ready; then
    export XCACHE_TEST_SLURM_MN=$MN_CONF
  elif [ "$IS_CI" = 1 ]; then
    die "CI=true and the multi-node SLURM could not be brought up (see start-multinode.sh above)"
  else
    log "WARNING: the multi-node SLURM could not be brought up; its tests will be skipped"
  fi
else
  [ "$IS_CI" = 0 ] || die "CI=true but not root: cannot bring up the multi-node SLURM"
  log "not root: the multi-node SLURM tests will be skipped (sudo bash scripts/test.sh)"
fi
[ -n "${XCACHE_TEST_SLURM_MN:-}" ] && \
  log "multi-node SLURM: $(SLURM_CONF=$MN_CONF sinfo -h -o '%P %a %D %T %N %c CPUs' | head -1)"

# ------------------------------------------------------------------ 3. checks
lint_failed=0
dirs=()
for d in executorlib_cache cli tests bench; do [ -d "$d" ] && dirs+=("$d"); done
log "ruff check ${dirs[*]}"
ruff check "${dirs[@]}" || lint_failed=1
log "mypy (config in pyproject.toml)"
mypy || lint_failed=1

log "pytest"
set +e
python -m pytest -q -p no:cacheprovider --timeout=300 "$@"
rc=$?
set -e
case "$rc" in
  0) ;;
  5) log "ERROR: pytest collected no test (exit 5)" ;;
  *) log "pytest failed (exit $rc)" ;;
esac
[ "$lint_failed" = 0 ] || log "ERROR: ruff or mypy reported problems (see above)"
log "done in $((SECONDS - t_start))s"
if [ "$rc" != 0 ]; then exit "$rc"; fi
exit "$lint_failed"
