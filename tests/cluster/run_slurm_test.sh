#!/usr/bin/env bash
# The lab on a real, one-node SLURM cluster (make test-cluster).
#
# Installs Debian's slurm-wlm and munge if missing (needs root), then, all under one temporary
# folder: a private munge key and munged, a slurm.conf for this machine, slurmctld and slurmd.
# It submits data_prep/slurm/labkit_mpi.sbatch with `sbatch --wait` (split rows through srun,
# split dates through mpiexec), checks that each job's mean/std are bitwise equal to
# `labkit run sequential`, that it ran with the asked-for number of MPI ranks, and that the job
# is COMPLETED with exit code 0:0 in `scontrol show job` and in the job completion log; a job
# given a missing folder must come back FAILED. It then starts ipyparallel engines under SLURM
# (ipp.Cluster(engines="slurm")) and checks they form one MPI world. On any exit the jobs are
# cancelled and the daemons it started are stopped and waited for; the whole run sits under
# tests/cluster/subreaper.py, which adopts the job steps' daemonized slurmstepd processes and
# fails the run if any of them outlives it.
#
# Environment: KEEP_SLURM_TMP=1 keeps the temporary folder (logs, slurm.conf) even on success.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/.venv/bin
JOB_SCRIPT=$ROOT/data_prep/slurm/labkit_mpi.sbatch
IPP_SCRIPT=$ROOT/tests/cluster/ipp_slurm_check.py
NTASKS=2
JOB_TIMEOUT_S=300  # for one `sbatch --wait` (the jobs take seconds)
T0=$SECONDS

log() { echo "[test-cluster $((SECONDS - T0))s] $*"; }
die() { echo "test-cluster: $*" >&2; exit 1; }

[ -x "$BIN/labkit" ] || die "$BIN/labkit is missing: run make venv"
if [ "${LABKIT_SUBREAPER:-0}" != 1 ]; then
    LABKIT_SUBREAPER=1 exec "$BIN/python" "$ROOT/tests/cluster/subreaper.py" \
        bash "$ROOT/tests/cluster/run_slurm_test.sh" "$@"
fi

# --- Debian packages ---------------------------------------------------------------------------
export PATH="$PATH:/usr/sbin:/sbin"  # the daemons live in sbin
need_install=0
for cmd in slurmctld slurmd sbatch scontrol squeue scancel munged; do
    command -v "$cmd" >/dev/null || need_install=1
done
if [ "$need_install" = 1 ]; then
    [ "$(id -u)" = 0 ] || die "slurm-wlm/munge are not installed and installing them needs root"
    log "installing slurm-wlm and munge (apt-get)"
    # Keep the packages' own services from starting: this test runs private daemons
    policy=/usr/sbin/policy-rc.d
    added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && added_policy=1
    fi
    apt-get update -qq || true
    apt_rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurm-wlm munge >/dev/null || apt_rc=$?
    [ "$added_policy" = 0 ] || rm -f "$policy"
    [ "$apt_rc" = 0 ] || die "apt-get install slurm-wlm munge failed (exit $apt_rc)"
fi
[ "$(id -u)" = 0 ] || die "slurmd must run as root to start jobs: run this as root"

# --- temporary cluster folder and cleanup --------------------------------------------------------
# In /tmp, not $TMPDIR: the munge socket's path must stay under the 108-byte limit
WORK=$(mktemp -d /tmp/labkit-slurm.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK"/{munge,key,state,spool,log,out}
chmod 755 "$WORK/munge"
chmod 700 "$WORK/key"
export SLURM_CONF=$WORK/slurm.conf
# Jobs inherit the submitting environment (sbatch --export=ALL): drop any outer allocation's
# variables and put the lab's venv first on PATH
while IFS='=' read -r name _; do
    case $name in SLURM_CONF) ;; SLURM_*|SBATCH_*|SALLOC_*|SRUN_*) unset "$name" ;; esac
done < <(env)
export PATH="$BIN:$PATH"
cd "$ROOT"  # the jobs' submit directory

MUNGED_PID='' CTLD_PID='' SLURMD_PID=''
BG_PID='' BG_SIG=TERM BG_RC=0
ok=0

# Wait up to 30 s for a process we started to end, then SIGKILL it; always reaped with wait
reap_pid() {
    local pid=$1 name=$2 i
    for i in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "test-cluster: $name (pid $pid) still running 30 s after SIG$3: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# Stop a daemon we started: SIGTERM, then reap_pid
stop_pid() {
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || true
    reap_pid "$1" "$2" TERM
}

# Run a command in the background and wait for it (exit status in BG_RC), so that a Ctrl-C or
# SIGTERM runs this script's trap at once: bash defers traps while a foreground command runs,
# and sbatch --wait does not stop on SIGINT. The cleanup sends the command SIGNAL.
run_bg() {
    local sig=$1
    shift
    "$@" &
    BG_PID=$! BG_SIG=$sig BG_RC=0
    wait "$BG_PID" || BG_RC=$?
    BG_PID=''
}

cleanup() {
    local rc=$? i left
    trap - EXIT
    trap '' INT TERM  # a second Ctrl-C must not cut the cleanup short
    set +e
    [ -z "$BG_PID" ] || kill -"$BG_SIG" "$BG_PID" 2>/dev/null
    if [ -n "$CTLD_PID" ] && kill -0 "$CTLD_PID" 2>/dev/null; then
        left=$(squeue -h -o %i 2>/dev/null)
        if [ -n "$left" ]; then
            log "cancelling jobs: $(echo $left)"
            scancel $left 2>/dev/null
            for i in $(seq 100); do
                [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
                sleep 0.2
            done
        fi
    fi
    [ -z "$BG_PID" ] || reap_pid "$BG_PID" "the running step" "$BG_SIG"
    stop_pid "$SLURMD_PID" slurmd
    stop_pid "$CTLD_PID" slurmctld
    stop_pid "$MUNGED_PID" munged
    if [ "$rc" != 0 ] || [ "$ok" != 1 ]; then
        [ "$rc" != 0 ] || rc=1
        for f in "$WORK"/log/*; do
            [ -s "$f" ] || continue
            echo "--- tail of $f" >&2
            tail -n 15 "$f" >&2
        done
        echo "test-cluster: FAILED after $((SECONDS - T0)) s; logs and slurm.conf kept in $WORK" >&2
    elif [ "${KEEP_SLURM_TMP:-0}" = 1 ]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- munge: a private key and socket -------------------------------------------------------------
dd if=/dev/urandom of="$WORK/key/munge.key" bs=1024 count=1 status=none
chmod 400 "$WORK/key/munge.key"
SOCKET=$WORK/munge/munge.socket
# Daemons run in sessions of their own (setsid): a Ctrl-C reaches this script, whose cleanup
# cancels the jobs before it stops them, not the daemons themselves
setsid munged --foreground --force --key-file="$WORK/key/munge.key" --socket="$SOCKET" \
    --pid-file="$WORK/munge/munged.pid" --seed-file="$WORK/key/munged.seed" \
    --log-file="$WORK/log/munged.log" >"$WORK/log/munged.out" 2>&1 &
MUNGED_PID=$!
for i in $(seq 50); do [ -S "$SOCKET" ] && break; sleep 0.1; done
[ -S "$SOCKET" ] || die "munged did not create its socket $SOCKET"
munge -S "$SOCKET" -n | unmunge -S "$SOCKET" >/dev/null \
    || die "munge/unmunge round trip failed on $SOCKET"

# --- slurm.conf for this machine ------------------------------------------------------------------
HOST=$(hostname -s)
CPUS=$(nproc)
# A smaller machine still takes the job: slurmd trusts this count (config_overrides)
[ "$CPUS" -ge "$NTASKS" ] || CPUS=$NTASKS
read -r CTLD_PORT SLURMD_PORT < <("$BIN/python" - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
cat > "$SLURM_CONF" <<EOF
# One-node cluster of the lab's test (tests/cluster/run_slurm_test.sh); everything under $WORK
ClusterName=labkit
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups here: process tracking through /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
SlurmdParameters=config_overrides
ReturnToService=2
# No slurmdbd (so no sacct): the job completion log records each job's state and exit code
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$WORK/log/jobcomp.log
MinJobAge=600
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=lab Nodes=$HOST Default=YES MaxTime=UNLIMITED State=UP
EOF

# --- daemons --------------------------------------------------------------------------------------
log "starting slurmctld and slurmd ($HOST, $CPUS CPUs, ports $CTLD_PORT/$SLURMD_PORT, $WORK)"
setsid slurmctld -D -i -f "$SLURM_CONF" >"$WORK/log/slurmctld.out" 2>&1 &
CTLD_PID=$!
setsid slurmd -D -f "$SLURM_CONF" >"$WORK/log/slurmd.out" 2>&1 &
SLURMD_PID=$!
state=''
for i in $(seq 150); do
    kill -0 "$CTLD_PID" 2>/dev/null || die "slurmctld exited at start (see $WORK/log/slurmctld.out)"
    kill -0 "$SLURMD_PID" 2>/dev/null || die "slurmd exited at start (see $WORK/log/slurmd.out)"
    state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.2
done
[ "$state" = idle ] || die "node $HOST is '${state:-unreachable}', not idle, after 30 s"
log "node $HOST idle"

# --- data and the sequential reference ------------------------------------------------------------
SRC=$(labkit data --preset tiny --root "$WORK/data" | tail -n 1)
[ -d "$SRC" ] || die "labkit data did not print a tile folder (got '$SRC')"
labkit run sequential "$SRC" "$WORK/out/ref_mean.tif" "$WORK/out/ref_std.tif" --quiet

# Field of `scontrol show job` (one job), e.g. JobState or ExitCode
job_field() { scontrol show job "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }

# Submit the job script and wait for it; prints the job id, sets JOB_RC to sbatch's exit code
submit() {
    local name=$1 launcher=$2; shift 2
    LABKIT_LAUNCHER=$launcher run_bg TERM timeout "$JOB_TIMEOUT_S" sbatch --parsable --wait \
        --ntasks="$NTASKS" --job-name="labkit-$name" --output="$WORK/log/job-$name.out" \
        "$JOB_SCRIPT" "$@" >"$WORK/log/sbatch-$name.id"
    JOB_RC=$BG_RC
    JOB_ID=$(cut -d';' -f1 "$WORK/log/sbatch-$name.id")
    [ -n "$JOB_ID" ] || die "sbatch printed no job id for $name (exit $JOB_RC)"
}

check_accounting() {
    local id=$1 want_state=$2 want_exit=$3 state exit line
    state=$(job_field "$id" JobState)
    exit=$(job_field "$id" ExitCode)
    [ "$state" = "$want_state" ] || die "job $id: scontrol JobState=$state, expected $want_state"
    case $want_exit in
        0:0) [ "$exit" = 0:0 ] || die "job $id: scontrol ExitCode=$exit, expected 0:0" ;;
        *)   [ "$exit" != 0:0 ] || die "job $id: scontrol ExitCode=0:0, expected a failure" ;;
    esac
    line=$(grep -E "^JobId=$id " "$WORK/log/jobcomp.log" || true)
    [ -n "$line" ] || die "job $id is missing from the job completion log"
    echo "$line" | grep -q " JobState=$want_state " || die "job $id: completion log says: $line"
    echo "$line" | grep -q " ExitCode=$exit " \
        || die "job $id: completion log exit code differs from scontrol's ($exit): $line"
    log "job $id: JobState=$state ExitCode=$exit (scontrol and completion log)"
}

for run in rows:srun dates:mpiexec; do
    split=${run%%:*} launcher=${run#*:}
    out=$WORK/out/$split
    log "sbatch --wait labkit_mpi.sbatch (split $split, $launcher, $NTASKS tasks)"
    submit "$split" "$launcher" "$SRC" "$out" "$split"
    [ "$JOB_RC" = 0 ] \
        || die "job $JOB_ID ($split, $launcher): sbatch --wait exited $JOB_RC (see $WORK/log/job-$split.out)"
    check_accounting "$JOB_ID" COMPLETED 0:0
    grep -q "mpi/$split x$NTASKS" "$WORK/log/job-$split.out" \
        || die "job $JOB_ID did not report $NTASKS MPI ranks (mpi/$split x$NTASKS): $WORK/log/job-$split.out"
    labkit verify "$WORK/out/ref_mean.tif" "$out/mean.tif" >/dev/null \
        || die "job $JOB_ID ($split): mean.tif differs from sequential"
    labkit verify "$WORK/out/ref_std.tif" "$out/std.tif" >/dev/null \
        || die "job $JOB_ID ($split): std.tif differs from sequential"
    log "job $JOB_ID ($split, $launcher): mean.tif and std.tif bitwise equal to sequential"
done

# A job that fails must be seen as failed: sbatch --wait's exit code and the recorded state
log "sbatch --wait labkit_mpi.sbatch on a missing folder (must fail)"
submit missing srun "$WORK/no-such-folder" "$WORK/out/missing"
[ "$JOB_RC" != 0 ] || die "job $JOB_ID on a missing folder: sbatch --wait exited 0"
check_accounting "$JOB_ID" FAILED nonzero
log "job $JOB_ID: sbatch --wait exited $JOB_RC"

# --- ipyparallel engines under SLURM -------------------------------------------------------------
log "ipyparallel: ipp.Cluster(engines=\"slurm\", n=$NTASKS)"
# SIGINT on cleanup: KeyboardInterrupt, so that the script stops its ipyparallel cluster
run_bg INT timeout -s INT 180 "$BIN/python" "$IPP_SCRIPT" "$NTASKS" "$SRC" "$WORK"
[ "$BG_RC" = 0 ] || die "ipyparallel engines under SLURM failed (exit $BG_RC)"

# Stopping the ipyparallel cluster cancels the engines' job: it must leave the queue
for i in $(seq 150); do
    [ -z "$(squeue -h -o %i)" ] && break
    sleep 0.2
done
[ -z "$(squeue -h -o %i)" ] \
    || die "jobs still queued 30 s after the checks: $(squeue -h -o '%i %j %T' | tr '\n' ';')"
grep -qE "^JobId=[0-9]+ .* Name=ipengine-.* JobState=CANCELLED " "$WORK/log/jobcomp.log" \
    || die "the ipyparallel engines' job is not recorded as CANCELLED in the completion log"
log "ipyparallel engines' job cancelled by cluster.stop_cluster(), queue empty"
ok=1
log "OK"
