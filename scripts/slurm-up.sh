#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (localhost only), for the SLURM test
# (tests/test_slurm.py) and for trying the SLURM profile (profiles/slurm/) on one workstation.
#
#   bash scripts/slurm-up.sh        # or: make slurm-up
#
# Idempotent: when the node already answers `sinfo` as idle/mixed/allocated it exits 0 at once.
# Otherwise it
#   1. installs munge + slurmctld + slurmd + slurm-client with apt-get if any is missing,
#   2. writes /etc/slurm/slurm.conf (this host, `nproc` CPUs, RealMemory from free memory),
#      refusing to overwrite a slurm.conf it did not write (a real site's config),
#   3. starts munged (as user munge), slurmctld and slurmd (no systemd needed),
#   4. waits until `sinfo` shows the node idle.
# Needs root (or password-less sudo). The daemons stay up afterwards; they cost ~no CPU when idle.
# Nothing listens beyond 127.0.0.1. On failure it says what failed and prints the daemons' log tails.
set -euo pipefail

NODE="$(hostname -s)"
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
MARKER="# written by uqroute scripts/slurm-up.sh"
LOG_DIR=/var/log/slurm
WAIT_S="${SLURM_UP_WAIT_S:-60}"

say() { echo "slurm-up: $*"; }
fail() {
    echo "slurm-up: FAILED: $*" >&2
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" /var/log/munge/munged.log; do
        if [[ -r "$f" ]]; then echo "---- last lines of $f" >&2; tail -n 15 "$f" >&2; fi
    done
    exit 1
}

node_state() {
    # State of this node as sinfo reports it ("" when slurmctld does not answer).
    command -v sinfo >/dev/null 2>&1 || return 0
    timeout 10 sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1 | tr -d '*~#!%$@^-' || true
}

daemons_running() { pgrep -x munged >/dev/null && pgrep -x slurmctld >/dev/null && pgrep -x slurmd >/dev/null; }

# slurmctld reports a node idle for minutes after its slurmd died, so check the daemons too.
if daemons_running; then
    case "$(node_state)" in
        idle|mixed|allocated|completing)
            say "already up: node $NODE is $(node_state)"
            exit 0 ;;
    esac
fi

if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    fail "root or password-less sudo is needed to install and start SLURM (user $(id -un))"
fi
as_root() { "${SUDO[@]}" "$@"; }

# ---------------------------------------------------------------- 1. packages
missing=()
for exe in munged slurmctld slurmd sinfo sbatch squeue; do
    command -v "$exe" >/dev/null 2>&1 || [[ -x /usr/sbin/$exe ]] || missing+=("$exe")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 || fail "missing ${missing[*]} and no apt-get to install them (install munge and SLURM by hand)"
    say "installing munge slurmctld slurmd slurm-client (missing: ${missing[*]})"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || fail "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        munge slurmctld slurmd slurm-client >/dev/null || fail "apt-get install munge slurmctld slurmd slurm-client failed"
fi
export PATH="$PATH:/usr/sbin:/sbin"

# ---------------------------------------------------------------- 2. slurm.conf
if [[ -e "$CONF" ]] && ! grep -qF "$MARKER" "$CONF"; then
    fail "$CONF exists and was not written by this script; refusing to overwrite a site's SLURM config"
fi
CPUS="$(nproc)"

write_conf() {
    # RealMemory: 90% of the memory free now (slurmd drains a node that claims more than it has).
    local avail_mb tmp
    avail_mb="$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)"
    REAL_MB=$((avail_mb * 9 / 10))
    ((REAL_MB >= 1000)) || fail "only ${avail_mb} MB of memory available"
    as_root mkdir -p "$CONF_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd
    tmp="$(mktemp)"
    cat >"$tmp" <<EOF
$MARKER on $(date -u +%FT%TZ)
# A single-node cluster on localhost; see docs/slurm.md.
ClusterName=uqroute
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${REAL_MB} State=UNKNOWN
PartitionName=debug Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
EOF
    as_root install -m 0644 "$tmp" "$CONF"
    rm -f "$tmp"
    say "wrote $CONF (node $NODE, CPUs=$CPUS, RealMemory=$REAL_MB MB)"
}

if pgrep -x slurmctld >/dev/null && [[ -e "$CONF" ]]; then
    # A running controller serves the slurm.conf it was started with: keep that file.
    REAL_MB="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' "$CONF")"
    say "slurmctld is already running; keeping $CONF"
else
    write_conf
fi

# ---------------------------------------------------------------- 3. daemons
if ! pgrep -x munged >/dev/null; then
    as_root mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
    as_root chown munge:munge /run/munge /var/log/munge /var/lib/munge
    as_root chmod 0755 /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        as_root mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null \
            || as_root dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none \
            || fail "could not create /etc/munge/munge.key"
    fi
    as_root chown munge:munge /etc/munge/munge.key
    as_root chmod 0400 /etc/munge/munge.key
    as_root runuser -u munge -- munged || fail "munged did not start"
fi
munge -n | unmunge >/dev/null 2>&1 || fail "munge does not work (munge -n | unmunge)"

if ! pgrep -x slurmctld >/dev/null; then
    as_root slurmctld || fail "slurmctld did not start"
fi
if ! pgrep -x slurmd >/dev/null; then
    as_root slurmd || fail "slurmd did not start"
fi

# ---------------------------------------------------------------- 4. wait for the node
for ((i = 0; i < WAIT_S; i++)); do
    state="$(node_state)"
    case "$state" in
        idle|mixed|allocated)
            say "up: node $NODE is $state ($CPUS CPUs, ${REAL_MB} MB); try: sbatch --wait --wrap hostname"
            exit 0 ;;
        down|drained|draining|drain|fail)
            # A node that was down before this start (e.g. a previous RealMemory) comes back this way.
            as_root scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
done
fail "node $NODE not idle after ${WAIT_S}s (sinfo state: '$(node_state)')"
