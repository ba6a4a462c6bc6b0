#!/usr/bin/env bash
# Ferry data-diode benchmark: one bundle over UDP with RaptorQ FEC on loopback.
#
#   tests/bench/diode.sh                      # full run, ~200 MiB bundle
#   BENCH_DIODE_MB=32 tests/bench/diode.sh    # quick smoke run
#
# Environment:
#   BENCH_DIR               work dir (default /tmp/ferry-diode-bench); wiped at start
#   BENCH_DIODE_MB          approximate size of the data tree in MiB (default 200)
#   BENCH_SEED              data and relay seed (default 42)
#   BENCH_DIODE_RATES       send rates for the lossless cases, sent both directly
#                           and through the relay (default "100M 300M 600M")
#   BENCH_DIODE_LOSSY_RATE  send rate for the lossy relay cases and the import
#                           case (default 300M). Measured on 2 cores next to
#                           sender and receiver, the Python relay costs 3.5-7.5
#                           us CPU per datagram; it relayed 1000M (~83k pkt/s)
#                           with no drops at its socket and tops out around
#                           130-140k pkt/s (~1.6 Gbit/s of 1.5 KB datagrams).
#                           300M keeps the lossy cases far below the relay's
#                           and the receiver's limits, even without a raised
#                           net.core.rmem_max.
#   BENCH_DIODE_STRESS_RATES  rates past what this machine sustains, sent directly
#                           and through the relay, outcome not judged
#                           (default "1000M 2000M"; empty: skip)
#   BENCH_DIODE_ORIG_RATES  direct lossless cases run with the original
#                           net.core.rmem_max before it is raised, outcome not
#                           judged (default "300M 600M"; empty: skip; only when
#                           the limit is going to be raised)
#   BENCH_DIODE_IDLE        receiver --exit-when-idle (default 3s)
#   BENCH_DIODE_CASES       only the cases whose names match one of these
#                           shell patterns, such as "fit1-* loss1-*" (default
#                           "*": every case); for repeated runs of a few cases
#   BENCH_DIODE_REPEAT      run each selected case this many times (default 1);
#                           the runs are named CASE, CASE#2, ... and the table
#                           adds the median and range of each case's figures
#   BENCH_DIODE_RMEM        as root, raise net.core.rmem_max to this many bytes
#                           for the run and restore it afterwards (default
#                           33554432, what ferry-in asks for; 0 leaves it alone)
#   BENCH_SKIP_BUILD=1      use existing binaries (FERRY_OUT / FERRY_IN override paths)
#   BENCH_SKIP_INSTALL=1    never call apt-get
#
# The lossy cases send with --overhead, and fit1 with --loss 1% (repair sized
# to the loss), the way to reach 90% of the line rate at 1% loss.
#
# Steps: install tools, build release binaries, generate ~BENCH_DIODE_MB MiB
# of mostly incompressible data, export it to one bundle, time `cp -a` of the
# bundle as a baseline, then for every case start a receiver (fresh state,
# trust added, spool only -- no --import, so only the transport is timed),
# optionally the lossy relay (tests/bench/lossy_relay.py), and the sender.
# A last case runs with --import for the end-to-end time. All traffic stays
# on 127.0.0.1. Prints tables and writes $BENCH_DIR/diode-results.json.
#
# Per case it records: sender wall time (goodput = bundle bytes / wall),
# the time from sender start to the receiver's "received bundle ...
# completely" log line (each stderr line is timestamped as it arrives), with
# --import the time until the import finished (the spooled bundle directory
# is removed after a successful import), wire overhead and packets from the
# sender's summary line, sender and receiver CPU from /usr/bin/time,
# decode_secs and packet counters from STATE/diode-receive.json, the relay's
# counters, and /proc/net/snmp UDP RcvbufErrors deltas (datagrams the kernel
# dropped because a socket buffer was full: loss the relay did not cause).
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)

BENCH_DIR=${BENCH_DIR:-/tmp/ferry-diode-bench}
BENCH_DIODE_MB=${BENCH_DIODE_MB:-200}
BENCH_SEED=${BENCH_SEED:-42}
BENCH_DIODE_RATES=${BENCH_DIODE_RATES:-"100M 300M 600M"}
BENCH_DIODE_LOSSY_RATE=${BENCH_DIODE_LOSSY_RATE:-300M}
BENCH_DIODE_STRESS_RATES=${BENCH_DIODE_STRESS_RATES-"1000M 2000M"}
BENCH_DIODE_ORIG_RATES=${BENCH_DIODE_ORIG_RATES-"300M 600M"}
BENCH_DIODE_IDLE=${BENCH_DIODE_IDLE:-3s}
BENCH_DIODE_CASES=${BENCH_DIODE_CASES:-"*"}
BENCH_DIODE_REPEAT=${BENCH_DIODE_REPEAT:-1}
BENCH_DIODE_RMEM=${BENCH_DIODE_RMEM:-33554432}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
BENCH_SKIP_INSTALL=${BENCH_SKIP_INSTALL:-0}
FERRY_OUT=${FERRY_OUT:-$REPO/target/release/ferry-out}
FERRY_IN=${FERRY_IN:-$REPO/target/release/ferry-in}
RELAY=$SCRIPT_DIR/lossy_relay.py
REPORT=$SCRIPT_DIR/diode_report.py

CURRENT_STEP="startup"
T_START=$EPOCHREALTIME
RMEM_ORIG=""
RMEM_RAISED=0
BG_PIDS=()

# ------------------------------------------------------------------ helpers
if [[ -t 1 ]]; then B=$'\e[1m'; R=$'\e[31m'; G=$'\e[32m'; Y=$'\e[33m'; N=$'\e[0m'; else B=; R=; G=; Y=; N=; fi

section() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
info()    { printf '    %s\n' "$*"; }
die()     { printf '\n%sFAILED%s [%s]: %s\n' "$R" "$N" "$CURRENT_STEP" "$*" >&2; exit 1; }

on_err() {
    local rc=$? line=$1
    printf '\n%sFAILED%s in step "%s" (exit %s, diode.sh line %s)\n' "$R" "$N" "$CURRENT_STEP" "$rc" "$line" >&2
    exit "$rc"
}
trap 'on_err $LINENO' ERR

# Stop what this script started (by pid) and put net.core.rmem_max back.
cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    if (( RMEM_RAISED )) && [[ -n $RMEM_ORIG ]]; then
        if sysctl -q -w net.core.rmem_max="$RMEM_ORIG" >/dev/null 2>&1; then
            printf '    net.core.rmem_max restored to %s\n' "$RMEM_ORIG"
        else
            printf '%swarning%s: could not restore net.core.rmem_max to %s\n' "$Y" "$N" "$RMEM_ORIG" >&2
        fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

metric() { printf '%s=%s\n' "$1" "$2" >>"$METRICS"; }

bytes_of() { find "$1" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%d\n", s}'; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b/1048576}'; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.6f", a-b}'; }

# Prefixes each line of stdin with the wall clock (seconds since the epoch,
# microseconds) at which it arrived.
stamp() {
    local l
    while IFS= read -r l || [[ -n $l ]]; do
        printf '%s %s\n' "$EPOCHREALTIME" "$l"
    done
}

# A free UDP port on 127.0.0.1 (the kernel picks one; it is released again).
free_port() {
    python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for FILE PATTERN SECONDS: until FILE contains PATTERN (fixed string).
wait_for() {
    local deadline=$(( ${EPOCHSECONDS} + $3 ))
    until [[ -f $1 ]] && grep -qF -- "$2" "$1"; do
        (( EPOCHSECONDS < deadline )) || return 1
        sleep 0.02
    done
}

udp_counters() { grep '^Udp:' /proc/net/snmp; }   # header line + counters line

# ------------------------------------------------------------------ 1. tools
section "Tools"
CURRENT_STEP="install"
SUDO=""
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then SUDO=sudo; fi
missing=()
[[ -x /usr/bin/time ]]        || missing+=(time)
command -v python3 >/dev/null || missing+=(python3)
command -v diff    >/dev/null || missing+=(diffutils)
command -v sysctl  >/dev/null || missing+=(procps)
if (( ${#missing[@]} )); then
    (( BENCH_SKIP_INSTALL == 0 )) || die "missing tools: ${missing[*]} (BENCH_SKIP_INSTALL=1)"
    info "apt-get update; apt-get install -y ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
(( BASH_VERSINFO[0] >= 5 )) || die "bash >= 5 needed (EPOCHREALTIME)"
[[ -f $RELAY ]] || die "relay script $RELAY missing"
[[ -f $REPORT ]] || die "report script $REPORT missing"
info "python: $(python3 --version 2>&1), bash $BASH_VERSION"

# ------------------------------------------------------------------ 2. build
section "Build"
CURRENT_STEP="build"
if (( BENCH_SKIP_BUILD == 0 )); then
    command -v cargo >/dev/null || die "cargo not found (install a Rust toolchain >= 1.85)"
    info "cargo build --release -p agent-outside -p agent-inside"
    if ! (cd "$REPO" && cargo build --release -p agent-outside -p agent-inside) >"/tmp/ferry-diode-build.$$.log" 2>&1; then
        tail -n 40 "/tmp/ferry-diode-build.$$.log" >&2
        die "cargo build failed (log: /tmp/ferry-diode-build.$$.log); BENCH_SKIP_BUILD=1 uses existing binaries"
    fi
    rm -f "/tmp/ferry-diode-build.$$.log"
else
    info "build skipped (BENCH_SKIP_BUILD=1)"
fi
[[ -x $FERRY_OUT ]] || die "ferry-out not found at $FERRY_OUT"
[[ -x $FERRY_IN ]]  || die "ferry-in not found at $FERRY_IN"
info "ferry-out: $FERRY_OUT"
info "ferry-in:  $FERRY_IN"

# ------------------------------------------------------------------ work dir
section "Work dir $BENCH_DIR"
CURRENT_STEP="workdir"
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd -P)
case "$BENCH_DIR" in
    /|/root|/home|/tmp|/usr|/etc|/var|"$HOME"|"$REPO"|"$REPO"/*) die "refusing to use $BENCH_DIR as BENCH_DIR";;
esac
if [[ -n $(ls -A "$BENCH_DIR") && ! -f $BENCH_DIR/.ferry-diode-bench ]]; then
    die "$BENCH_DIR is not empty and is not a previous diode bench dir (no .ferry-diode-bench marker); refusing to wipe it"
fi
find "$BENCH_DIR" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
touch "$BENCH_DIR/.ferry-diode-bench"
mkdir -p "$BENCH_DIR"/{cases,cmp}
METRICS=$BENCH_DIR/metrics.env
: >"$METRICS"
: >"$BENCH_DIR/cases.list"
metric size_mb "$BENCH_DIODE_MB"
metric seed "$BENCH_SEED"
metric idle "$BENCH_DIODE_IDLE"
metric lossy_rate "$BENCH_DIODE_LOSSY_RATE"
SRC=$BENCH_DIR/source/data
MEDIA=$BENCH_DIR/media
OUT_STATE=$BENCH_DIR/out-state
CONFIG=$BENCH_DIR/ferry-out.toml

# ------------------------------------------------------------------ rmem_max
section "Kernel UDP receive buffer limit"
CURRENT_STEP="rmem"
RMEM_ORIG=$(sysctl -n net.core.rmem_max)
metric rmem_max_orig "$RMEM_ORIG"
info "net.core.rmem_max = $RMEM_ORIG (ferry-in asks for 32 MiB; the kernel grants min(ask, rmem_max), reported doubled)"
WILL_RAISE=0
if (( BENCH_DIODE_RMEM > 0 && BENCH_DIODE_RMEM > RMEM_ORIG )); then
    if [[ $(id -u) -eq 0 ]]; then
        WILL_RAISE=1
        info "will raise it to $BENCH_DIODE_RMEM after the cases with the original limit (restored on exit)"
    else
        info "${Y}warning${N}: not root, cannot raise net.core.rmem_max; high rates will lose packets in the kernel"
    fi
fi

# ------------------------------------------------------------------ 3. data
section "Generate data (~${BENCH_DIODE_MB} MiB, mostly incompressible)"
CURRENT_STEP="generate"
python3 - "$SRC" "$BENCH_DIODE_MB" "$BENCH_SEED" >"$BENCH_DIR/gen.log" <<'PY'
# ~92% random bytes in files of 1..24 MiB, ~8% text-like (compressible) files
# of 4..256 KiB. Deterministic for a given seed and size.
import os, random, sys
root, size_mb, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
total = size_mb * 1024 * 1024
os.makedirs(os.path.join(root, "bin"), exist_ok=True)
os.makedirs(os.path.join(root, "text"), exist_ok=True)
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(2000)]
rand_target, done, i = int(total * 0.92), 0, 0
while done < rand_target:
    n = min(rng.randint(1 << 20, 24 << 20), rand_target - done)
    with open(os.path.join(root, "bin", "blob-%04d.bin" % i), "wb") as f:
        left = n
        while left:
            k = min(left, 8 << 20)
            f.write(rng.randbytes(k))
            left -= k
    done += n; i += 1
text_bytes, j = 0, 0
while done < total:
    n = min(rng.randint(4 << 10, 256 << 10), total - done)
    lines, size = [], 0
    while size < n:
        l = " ".join(rng.choices(words, k=rng.randint(4, 14))) + "\n"
        lines.append(l); size += len(l)
    data = "".join(lines).encode()[:n]
    with open(os.path.join(root, "text", "doc-%05d.txt" % j), "wb") as f:
        f.write(data)
    done += n; text_bytes += n; j += 1
print("random_files=%d random_bytes=%d text_files=%d text_bytes=%d" % (i, rand_target, j, text_bytes))
PY
DATA_BYTES=$(bytes_of "$SRC")
metric data_bytes "$DATA_BYTES"
metric data_files "$(find "$SRC" -type f | wc -l)"
info "$(cat "$BENCH_DIR/gen.log")"
info "tree: $(find "$SRC" -type f | wc -l) files, $(mib "$DATA_BYTES")"

cat >"$CONFIG" <<EOF
[[source]]
name = "data"
type = "files"
path = "$SRC"
EOF

# ------------------------------------------------------------------ 4. bundle
section "Export one bundle"
CURRENT_STEP="keygen"
"$FERRY_OUT" --state "$OUT_STATE" keygen >"$BENCH_DIR/keygen.log" 2>&1 || { cat "$BENCH_DIR/keygen.log" >&2; die "keygen failed"; }
[[ -f $OUT_STATE/signing.pub ]] || die "keygen did not write $OUT_STATE/signing.pub"
CURRENT_STEP="export"
t0=$EPOCHREALTIME
"$FERRY_OUT" --state "$OUT_STATE" export --config "$CONFIG" --to "$MEDIA" >"$BENCH_DIR/export.log" 2>&1 || { cat "$BENCH_DIR/export.log" >&2; die "export failed"; }
metric export_wall_s "$(fsub "$EPOCHREALTIME" "$t0")"
n=$(find "$MEDIA" -mindepth 1 -maxdepth 1 -type d -name 'bundle-*' | wc -l)
(( n == 1 )) || die "expected exactly one bundle-* dir in $MEDIA, found $n"
BUNDLE_DIR=$(ls -d "$MEDIA"/bundle-*)
BUNDLE_NAME=$(basename "$BUNDLE_DIR")
BUNDLE_BYTES=$(bytes_of "$BUNDLE_DIR")
metric bundle_name "$BUNDLE_NAME"
metric bundle_bytes "$BUNDLE_BYTES"
metric bundle_files "$(find "$BUNDLE_DIR" -type f | wc -l)"
info "$(head -n 1 "$BENCH_DIR/export.log")"
info "bundle $BUNDLE_NAME: $(find "$BUNDLE_DIR" -type f | wc -l) files, $BUNDLE_BYTES bytes ($(mib "$BUNDLE_BYTES"))"

# ------------------------------------------------------------------ 5. baseline
section "Baseline: cp -a of the bundle (page cache warm)"
CURRENT_STEP="baseline-cp"
cat "$BUNDLE_DIR"/* >/dev/null
t0=$EPOCHREALTIME
cp -a "$BUNDLE_DIR" "$BENCH_DIR/cmp/cp1"
t1=$EPOCHREALTIME
metric cp_wall_s "$(fsub "$t1" "$t0")"
t0=$EPOCHREALTIME
cp -a "$BUNDLE_DIR" "$BENCH_DIR/cmp/cp2"
sync "$BENCH_DIR/cmp/cp2"/*
t1=$EPOCHREALTIME
metric cp_sync_wall_s "$(fsub "$t1" "$t0")"
info "cp -a: $(awk -F= '/^cp_wall_s=/{printf "%.3f s", $2}' "$METRICS");  cp -a + sync: $(awk -F= '/^cp_sync_wall_s=/{printf "%.3f s", $2}' "$METRICS")"
rm -rf "$BENCH_DIR/cmp/cp1" "$BENCH_DIR/cmp/cp2"

# ------------------------------------------------------------------ 6. cases
# run_case NAME VIA RATE OVERHEAD EXPECT IMPORT [RELAY ARGS...]
#   OVERHEAD  --overhead, such as 10%; or L<loss>, such as L1%: --loss 1% instead
#   VIA     direct | relay
#   EXPECT  complete | incomplete | any (not judged)
#   IMPORT  0 | 1 (receiver runs with --import; the time until the import is done is recorded)
# Runs only the cases BENCH_DIODE_CASES selects, each BENCH_DIODE_REPEAT
# times. A case's relay seed does not depend on which cases are selected.
run_case() {
    local name=$1 seed=$CASE_SEED rep pat wanted=0
    CASE_SEED=$(( CASE_SEED + 1 ))
    for pat in $BENCH_DIODE_CASES; do
        # shellcheck disable=SC2053
        [[ $name == $pat ]] && wanted=1
    done
    (( wanted )) || return 0
    for (( rep = 1; rep <= BENCH_DIODE_REPEAT; rep++ )); do
        local run=$name
        (( rep > 1 )) && run="$name#$rep"
        run_one "$run" "$(( seed + 1000 * (rep - 1) ))" "${@:2}"
    done
}

# run_one NAME SEED VIA RATE OVERHEAD EXPECT IMPORT [RELAY ARGS...]
run_one() {
    local name=$1 seed=$2 via=$3 rate=$4 overhead=$5 expect=$6 import=$7
    shift 7
    local relay_args=("$@")
    CURRENT_STEP="case-$name"
    local d=$BENCH_DIR/cases/$name st=$BENCH_DIR/cases/$name/in-state
    mkdir -p "$d"
    printf '%s\n' "$name" >>"$BENCH_DIR/cases.list"
    "$FERRY_IN" --state "$st" trust add "$OUT_STATE/signing.pub" --first-use >"$d/trust.log" 2>&1 \
        || { cat "$d/trust.log" >&2; die "trust add failed"; }

    local port; port=$(free_port)
    local imp=()
    (( import )) && imp=(--import)
    # Receiver: /usr/bin/time -> sh (writes its pid, then execs ferry-in);
    # stderr lines are timestamped as they arrive.
    (
        /usr/bin/time -f '%e %U %S %M %x' -o "$d/rx.time" \
            sh -c 'echo $$ >"$0"; exec "$@"' "$d/rx.pid" \
            "$FERRY_IN" --state "$st" receive --diode "127.0.0.1:$port" "${imp[@]}" \
            --exit-when-idle "$BENCH_DIODE_IDLE" 2>&1 >"$d/rx.out" | stamp >"$d/rx.log"
    ) &
    local rx_job=$!
    BG_PIDS+=("$rx_job")
    wait_for "$d/rx.log" "receiving on" 20 || { cat "$d/rx.log" >&2; die "receiver did not start"; }
    local rx_pid; rx_pid=$(<"$d/rx.pid")
    BG_PIDS+=("$rx_pid")

    local target="127.0.0.1:$port" relay_pid=""
    if [[ $via == relay ]]; then
        python3 "$RELAY" --listen 127.0.0.1:0 --to "127.0.0.1:$port" --seed "$seed" \
            --ready "$d/relay.addr" --stats "$d/relay.json" "${relay_args[@]}" \
            >"$d/relay.out" 2>"$d/relay.log" &
        relay_pid=$!
        BG_PIDS+=("$relay_pid")
        wait_for "$d/relay.addr" ":" 20 || { cat "$d/relay.log" >&2; die "relay did not start"; }
        target=$(<"$d/relay.addr")
    fi

    # With --import: note when the spooled bundle directory goes away again
    # (ferry-in removes it once the import succeeded).
    local watch_pid=""
    if (( import )); then
        (
            while kill -0 "$rx_pid" 2>/dev/null; do
                if [[ -d $st/spool/$BUNDLE_NAME ]]; then seen=1; fi
                if [[ ${seen:-0} == 1 && ! -d $st/spool/$BUNDLE_NAME ]]; then
                    printf '%s\n' "$EPOCHREALTIME" >"$d/import.done"
                    break
                fi
                sleep 0.02
            done
        ) &
        watch_pid=$!
        BG_PIDS+=("$watch_pid")
    fi

    local fec=(--overhead "$overhead")
    [[ $overhead == L* ]] && fec=(--loss "${overhead#L}")
    udp_counters >"$d/udp.before"
    local t0=$EPOCHREALTIME tx_rc=0
    /usr/bin/time -f '%e %U %S %M %x' -o "$d/tx.time" \
        "$FERRY_OUT" send --diode "$target" --rate "$rate" "${fec[@]}" "$MEDIA" \
        >"$d/tx.log" 2>&1 || tx_rc=$?
    local t1=$EPOCHREALTIME
    if (( tx_rc != 0 )); then
        tail -n 20 "$d/tx.log" >&2
        die "ferry-out send failed (exit $tx_rc)"
    fi

    # The receiver exits BENCH_DIODE_IDLE after the last packet (plus the import).
    local limit=$(( EPOCHSECONDS + 600 ))
    while kill -0 "$rx_pid" 2>/dev/null; do
        if (( EPOCHSECONDS > limit )); then
            info "${R}receiver still running 600 s after the sender finished; stopping it${N}"
            kill -TERM "$rx_pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    wait "$rx_job" || true
    [[ -n $watch_pid ]] && { wait "$watch_pid" || true; }
    if [[ -n $relay_pid ]]; then
        kill -TERM "$relay_pid" 2>/dev/null || true
        wait "$relay_pid" || true
    fi
    udp_counters >"$d/udp.after"

    cp "$st/diode-receive.json" "$d/diode-receive.json" 2>/dev/null || true
    "$FERRY_IN" --state "$st" status --json >"$d/status.json" 2>"$d/status.err" || true
    local verify="n/a"
    if (( import )); then
        # A generation is an index over objects: written out as a tree to compare.
        rm -rf "$d/served"
        if "$FERRY_IN" --state "$st" export-tree "$d/served" >"$d/export-tree.log" 2>&1 \
            && diff -r "$SRC" "$d/served/files/data" >"$d/diff.log" 2>&1; then
            verify=ok
        else
            verify=mismatch
        fi
    fi
    {
        printf 'name=%s\nvia=%s\nrate=%s\noverhead=%s\nexpect=%s\nimport=%s\n' "$name" "$via" "$rate" "$overhead" "$expect" "$import"
        printf 'relay_args=%s\n' "${relay_args[*]:-}"
        printf 't_send_start=%s\nt_send_end=%s\n' "$t0" "$t1"
        printf 'bundle_bytes=%s\nbundle_name=%s\nverify=%s\nidle=%s\n' "$BUNDLE_BYTES" "$BUNDLE_NAME" "$verify" "$BENCH_DIODE_IDLE"
        printf 'rmem_max=%s\n' "$(sysctl -n net.core.rmem_max)"
    } >"$d/meta.env"
    BG_PIDS=()   # all waited for: never signal a pid that may have been reused
    python3 "$REPORT" case --dir "$d"
    # Free the disk (the logs and status files stay).
    rm -rf "$st/spool" "$st/store"
}

CASE_SEED=$BENCH_SEED
LOSSY=$BENCH_DIODE_LOSSY_RATE

if (( WILL_RAISE )) && [[ -n ${BENCH_DIODE_ORIG_RATES// /} ]]; then
    section "Direct, no loss, with the original net.core.rmem_max ($RMEM_ORIG): outcome not fixed"
    for r in $BENCH_DIODE_ORIG_RATES; do
        run_case "origbuf-direct-$r" direct "$r" 10% any 0
    done
fi

CURRENT_STEP="rmem"
if (( WILL_RAISE )); then
    if sysctl -q -w net.core.rmem_max="$BENCH_DIODE_RMEM" >/dev/null 2>&1; then
        RMEM_RAISED=1
        info "${Y}raised${N} net.core.rmem_max from $RMEM_ORIG to $BENCH_DIODE_RMEM for the rest of the run (restored on exit)"
    else
        info "${Y}warning${N}: could not raise net.core.rmem_max; high rates will lose packets in the kernel"
    fi
fi
metric rmem_max_used "$(sysctl -n net.core.rmem_max)"
metric rmem_raised "$RMEM_RAISED"

section "Direct to the receiver, no loss (overhead 10%)"
for r in $BENCH_DIODE_RATES; do
    run_case "direct-$r" direct "$r" 10% complete 0
done

section "Through the relay, no impairment (overhead 10%): what the relay sustains"
for r in $BENCH_DIODE_RATES; do
    run_case "relay-$r" relay "$r" 10% complete 0
done

section "Through the lossy relay at $LOSSY"
run_case "loss1-$LOSSY"  relay "$LOSSY" 10% complete 0   --drop 0.01 --reorder 0.02 --duplicate 0.01
# The same loss with repair sized to it (--loss 1%): the goodput target, 90% of the rate.
run_case "fit1-$LOSSY"   relay "$LOSSY" L1% complete 0   --drop 0.01 --reorder 0.02 --duplicate 0.01
run_case "loss5-$LOSSY"  relay "$LOSSY" 15% complete 0   --drop 0.05 --reorder 0.02
run_case "burst5-$LOSSY" relay "$LOSSY" 25% complete 0   --burst-loss 0.05 --burst-len 100
run_case "short-$LOSSY"  relay "$LOSSY" 3%  incomplete 0 --drop 0.05

if [[ -n ${BENCH_DIODE_STRESS_RATES// /} ]]; then
    section "Stress, no loss (overhead 10%): beyond what sender/receiver/relay sustain on this machine; outcome not fixed"
    for r in $BENCH_DIODE_STRESS_RATES; do
        run_case "direct-$r" direct "$r" 10% any 0
        run_case "relay-$r" relay "$r" 10% any 0
    done
fi

section "End to end: lossy relay (1%) at $LOSSY with --import"
run_case "import-$LOSSY" relay "$LOSSY" 10% complete 1   --drop 0.01 --reorder 0.02 --duplicate 0.01

# ------------------------------------------------------------------ 7. report
section "Results"
CURRENT_STEP="report"
metric total_seconds "$(fsub "$EPOCHREALTIME" "$T_START")"
python3 "$REPORT" table --bench-dir "$BENCH_DIR"
info "JSON: $BENCH_DIR/diode-results.json   logs: $BENCH_DIR/cases/*/"
