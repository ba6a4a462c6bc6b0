#!/usr/bin/env bash
# Ferry end-to-end benchmark.
#
#   tests/bench/run.sh                       # full run, ~1 GiB tree
#   BENCH_SIZE_MB=64 tests/bench/run.sh      # quick smoke run
#
# Environment:
#   BENCH_DIR          work dir (default /tmp/ferry-bench); wiped at start
#   BENCH_SIZE_MB      approximate size of the v1 tree in MiB (default 1024)
#   BENCH_SEED         generator seed (default 42)
#   BENCH_VOLUME_SIZE  passed to `ferry-out export --volume-size` if set
#   BENCH_SKIP_BUILD=1 use existing binaries (FERRY_OUT / FERRY_IN override paths)
#   BENCH_SKIP_INSTALL=1  never call apt-get
#   BENCH_NO_CASYNC=1  skip the casync comparison
#
# Steps: install tools, build, generate v1 + v2, then (timed with
# /usr/bin/time, wall seconds + peak RSS) keygen/trust, export v1, import v1,
# swap the source to v2, export v2 (delta), import v2, diff -r against v2;
# then tar|zstd, rsync --write-batch and casync on the same data. Prints a
# table and writes $BENCH_DIR/results.json.
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)

BENCH_DIR=${BENCH_DIR:-/tmp/ferry-bench}
BENCH_SIZE_MB=${BENCH_SIZE_MB:-1024}
BENCH_SEED=${BENCH_SEED:-42}
BENCH_VOLUME_SIZE=${BENCH_VOLUME_SIZE:-}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
BENCH_SKIP_INSTALL=${BENCH_SKIP_INSTALL:-0}
BENCH_NO_CASYNC=${BENCH_NO_CASYNC:-0}
FERRY_OUT=${FERRY_OUT:-$REPO/target/release/ferry-out}
FERRY_IN=${FERRY_IN:-$REPO/target/release/ferry-in}

CURRENT_STEP="startup"
T_START=$(date +%s)

# ------------------------------------------------------------------ helpers
if [[ -t 1 ]]; then B=$'\e[1m'; R=$'\e[31m'; G=$'\e[32m'; N=$'\e[0m'; else B=; R=; G=; N=; fi

section() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
info()    { printf '    %s\n' "$*"; }
die()     { printf '\n%sFAILED%s [%s]: %s\n' "$R" "$N" "$CURRENT_STEP" "$*" >&2; exit 1; }

on_err() {
    local rc=$? line=$1
    printf '\n%sFAILED%s in step "%s" (exit %s, run.sh line %s)\n' "$R" "$N" "$CURRENT_STEP" "$rc" "$line" >&2
    exit "$rc"
}
trap 'on_err $LINENO' ERR

metric() { printf '%s=%s\n' "$1" "$2" >>"$METRICS"; }

# Sum of regular-file sizes under a path (bytes actually carried; directory
# entries are not counted, which matters for casync's 64k-directory store).
bytes_of() { find "$1" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%d\n", s}'; }

mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b/1048576}'; }

# run_timed NAME CMD... : run CMD under /usr/bin/time, log to logs/NAME.log,
# record NAME_wall_s and NAME_rss_kib, fail loudly with the log tail.
run_timed() {
    local name=$1; shift
    CURRENT_STEP=$name
    local tf="$BENCH_DIR/times/$name.time" lf="$BENCH_DIR/logs/$name.log"
    local rc=0
    /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"$lf" 2>&1 || rc=$?
    if (( rc != 0 )); then
        printf '\n%sFAILED%s step "%s" (exit %d): %s\n' "$R" "$N" "$name" "$rc" "$*" >&2
        printf -- '---- last 40 lines of %s ----\n' "$lf" >&2
        tail -n 40 "$lf" >&2 || true
        exit 1
    fi
    local wall rss user sys cpu load
    read -r wall rss user sys < <(tail -n 1 "$tf")
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u+s}')
    load=$(cut -d' ' -f1 /proc/loadavg)
    metric "${name}_wall_s" "$wall"
    metric "${name}_rss_kib" "$rss"
    metric "${name}_cpu_s" "$cpu"
    metric "${name}_load" "$load"
    printf '    %-14s %8.2f s   CPU %8.2f s   peak RSS %8.1f MiB   load %s\n' "$name" "$wall" "$cpu" "$(awk -v k="$rss" 'BEGIN{print k/1024}')" "$load"
}

verify_tree() {  # expected actual label
    CURRENT_STEP="verify-$3"
    if [[ ! -d $IN_STATE/store/current/files ]]; then
        # A generation has no tree (an older ferry-in's has): written out to compare.
        rm -rf "$BENCH_DIR/served"
        "$FERRY_IN" --state "$IN_STATE" export-tree "$BENCH_DIR/served" >"$BENCH_DIR/export-tree.log" 2>&1 \
            || die "ferry-in export-tree failed: $(tail -n 3 "$BENCH_DIR/export-tree.log")"
        set -- "$1" "$BENCH_DIR/served/files/data" "$3"
    fi
    [[ -d $2 ]] || die "inside tree $2 does not exist after import"
    if diff -r "$1" "$2" >"$BENCH_DIR/logs/diff-$3.log" 2>&1; then
        info "${G}OK${N}: inside tree == $3 (diff -r)"
        metric "verify_$3" ok
    else
        printf '%sMISMATCH%s: inside tree differs from %s; first lines of diff:\n' "$R" "$N" "$3" >&2
        head -n 20 "$BENCH_DIR/logs/diff-$3.log" >&2
        die "inside tree != $3 (full diff: $BENCH_DIR/logs/diff-$3.log)"
    fi
}

# ------------------------------------------------------------------ 1. tools
section "Tools"
CURRENT_STEP="install"
SUDO=""
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then SUDO=sudo; fi
APT_UPDATED=0
apt_update_once() {
    if (( APT_UPDATED == 0 )); then
        info "apt-get update"
        $SUDO apt-get update -qq
        APT_UPDATED=1
    fi
}
missing=()
command -v rsync   >/dev/null || missing+=(rsync)
command -v zstd    >/dev/null || missing+=(zstd)
[[ -x /usr/bin/time ]]        || missing+=(time)
command -v python3 >/dev/null || missing+=(python3)
command -v diff    >/dev/null || missing+=(diffutils)
command -v tar     >/dev/null || missing+=(tar)
if (( ${#missing[@]} )); then
    (( BENCH_SKIP_INSTALL == 0 )) || die "missing tools: ${missing[*]} (BENCH_SKIP_INSTALL=1)"
    apt_update_once
    info "apt-get install -y ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
HAVE_CASYNC=0
if (( BENCH_NO_CASYNC == 0 )); then
    if ! command -v casync >/dev/null && (( BENCH_SKIP_INSTALL == 0 )); then
        apt_update_once
        if apt-cache show casync >/dev/null 2>&1; then
            info "apt-get install -y casync"
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq casync >/dev/null || info "casync install failed; skipping it"
        else
            info "casync package not available; skipping casync comparison"
        fi
    fi
    command -v casync >/dev/null && HAVE_CASYNC=1
fi
info "rsync:  $(rsync --version | sed -n 1p)"
info "zstd:   $(zstd --version)"
info "casync: $( (( HAVE_CASYNC )) && casync --version | sed -n 1p || echo 'not used')"

# ------------------------------------------------------------------ 2. build
section "Build"
CURRENT_STEP="build"
if (( BENCH_SKIP_BUILD == 0 )); then
    command -v cargo >/dev/null || die "cargo not found (install a Rust toolchain >= 1.85)"
    info "cargo build --release -p agent-outside -p agent-inside"
    if ! (cd "$REPO" && cargo build --release -p agent-outside -p agent-inside) >"/tmp/ferry-bench-build.$$.log" 2>&1; then
        tail -n 40 "/tmp/ferry-bench-build.$$.log" >&2
        die "cargo build failed (log: /tmp/ferry-bench-build.$$.log); BENCH_SKIP_BUILD=1 uses existing binaries"
    fi
    rm -f "/tmp/ferry-bench-build.$$.log"
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
if [[ -n $(ls -A "$BENCH_DIR") && ! -f $BENCH_DIR/.ferry-bench ]]; then
    die "$BENCH_DIR is not empty and is not a previous ferry-bench dir (no .ferry-bench marker); refusing to wipe it"
fi
# wipe the previous run (only inside the marked dir)
find "$BENCH_DIR" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
touch "$BENCH_DIR/.ferry-bench"
mkdir -p "$BENCH_DIR"/{data,source,logs,times,cmp}
METRICS=$BENCH_DIR/metrics.env
: >"$METRICS"
metric size_mb "$BENCH_SIZE_MB"
metric seed "$BENCH_SEED"
metric volume_size "${BENCH_VOLUME_SIZE:-default}"
metric have_casync "$HAVE_CASYNC"
DATA=$BENCH_DIR/data
SRC=$BENCH_DIR/source/data          # the path ferry-out exports; v1, then v2
OUT_STATE=$BENCH_DIR/out-state
IN_STATE=$BENCH_DIR/in-state
INSIDE_TREE=$IN_STATE/store/current/files/data
CONFIG=$BENCH_DIR/ferry-out.toml
VOL_ARGS=()
[[ -n $BENCH_VOLUME_SIZE ]] && VOL_ARGS=(--volume-size "$BENCH_VOLUME_SIZE")
info "cleaned; size ${BENCH_SIZE_MB} MiB, seed ${BENCH_SEED}"

# ------------------------------------------------------------------ 3. data
section "Generate data (v1 ~${BENCH_SIZE_MB} MiB, v2 = v1 + ~1% changes)"
CURRENT_STEP="generate"
python3 "$SCRIPT_DIR/gen.py" --seed "$BENCH_SEED" --size-mb "$BENCH_SIZE_MB" \
    --v1 "$DATA/v1" --v2 "$DATA/v2" --stats "$DATA/gen-stats.json"
V1_BYTES=$(bytes_of "$DATA/v1")
V2_BYTES=$(bytes_of "$DATA/v2")
metric v1_bytes "$V1_BYTES"
metric v2_bytes "$V2_BYTES"
info "v1: $(find "$DATA/v1" -type f | wc -l) files, $(mib "$V1_BYTES");  v2: $(find "$DATA/v2" -type f | wc -l) files, $(mib "$V2_BYTES")"

CURRENT_STEP="prepare-source"
rsync -a "$DATA/v1/" "$SRC/"
cat >"$CONFIG" <<EOF
[[source]]
name = "data"
type = "files"
path = "$SRC"
EOF
info "source dir $SRC  (config $CONFIG)"

# ------------------------------------------------------------------ 4. ferry
section "Ferry: keygen + trust"
run_timed keygen "$FERRY_OUT" --state "$OUT_STATE" keygen
[[ -f $OUT_STATE/signing.pub ]] || die "keygen did not write $OUT_STATE/signing.pub"
STREAM=$("$FERRY_OUT" --state "$OUT_STATE" status | awk '/^stream:/{print $2}')
run_timed trust "$FERRY_IN" --state "$IN_STATE" trust add "$OUT_STATE/signing.pub" --stream "$STREAM"

section "Ferry: first export (v1) -> media1"
run_timed export1 "$FERRY_OUT" --state "$OUT_STATE" export --config "$CONFIG" --to "$BENCH_DIR/media1" "${VOL_ARGS[@]}"
CURRENT_STEP="measure-media1"
n=$(find "$BENCH_DIR/media1" -mindepth 1 -maxdepth 1 -type d -name 'bundle-*' | wc -l)
(( n == 1 )) || die "expected exactly one bundle-* dir in media1, found $n"
B1=$(bytes_of "$BENCH_DIR/media1")
metric bundle1_bytes "$B1"
metric bundle1_volumes "$(find "$BENCH_DIR/media1" -name 'volume-*.ferry' | wc -l)"
info "bundle: $(basename "$(ls -d "$BENCH_DIR"/media1/bundle-*)"), $B1 bytes ($(mib "$B1")), $(find "$BENCH_DIR/media1" -name 'volume-*.ferry' | wc -l) volume(s)"

section "Ferry: import media1"
run_timed import1 "$FERRY_IN" --state "$IN_STATE" import "$BENCH_DIR/media1"
verify_tree "$DATA/v1" "$INSIDE_TREE" v1

section "Ferry: swap source to v2, delta export -> media2"
CURRENT_STEP="swap-source"
rsync -a --delete "$DATA/v2/" "$SRC/"
info "rsync -a --delete v2/ -> $SRC/"
run_timed export2 "$FERRY_OUT" --state "$OUT_STATE" export --config "$CONFIG" --to "$BENCH_DIR/media2" "${VOL_ARGS[@]}"
CURRENT_STEP="measure-media2"
n=$(find "$BENCH_DIR/media2" -mindepth 1 -maxdepth 1 -type d -name 'bundle-*' | wc -l)
(( n == 1 )) || die "expected exactly one bundle-* dir in media2, found $n"
B2=$(bytes_of "$BENCH_DIR/media2")
metric bundle2_bytes "$B2"
metric bundle2_volumes "$(find "$BENCH_DIR/media2" -name 'volume-*.ferry' | wc -l)"
info "bundle: $(basename "$(ls -d "$BENCH_DIR"/media2/bundle-*)"), $B2 bytes ($(mib "$B2")), $(find "$BENCH_DIR/media2" -name 'volume-*.ferry' | wc -l) volume(s)"

section "Ferry: import media2"
run_timed import2 "$FERRY_IN" --state "$IN_STATE" import "$BENCH_DIR/media2"
verify_tree "$DATA/v2" "$INSIDE_TREE" v2
CURRENT_STEP="status"
if "$FERRY_IN" --state "$IN_STATE" status --json >"$BENCH_DIR/logs/status.json" 2>"$BENCH_DIR/logs/status.err"; then
    info "status --json saved to logs/status.json"
else
    info "warning: ferry-in status --json failed (see logs/status.err)"
fi

# ------------------------------------------------------------------ 5. baselines
section "Baseline: tar | zstd -T0 -3 (whole tree)"
run_timed tar_v1 bash -c 'set -o pipefail; tar -C "$1" -cf - v1 | zstd -T0 -3 -q -c >"$2"' _ "$DATA" "$BENCH_DIR/cmp/v1.tar.zst"
run_timed tar_v2 bash -c 'set -o pipefail; tar -C "$1" -cf - v2 | zstd -T0 -3 -q -c >"$2"' _ "$DATA" "$BENCH_DIR/cmp/v2.tar.zst"
metric tar_v1_bytes "$(stat -c %s "$BENCH_DIR/cmp/v1.tar.zst")"
metric tar_v2_bytes "$(stat -c %s "$BENCH_DIR/cmp/v2.tar.zst")"
info "v1.tar.zst $(mib "$(stat -c %s "$BENCH_DIR/cmp/v1.tar.zst")"), v2.tar.zst $(mib "$(stat -c %s "$BENCH_DIR/cmp/v2.tar.zst")")"
section "Baseline: zstd -d | tar x, then sha256sum of every file (the import's comparator)"
run_timed untar_v1 bash -c 'set -o pipefail; mkdir -p "$2" && zstd -d -q -c "$1" | tar -C "$2" -xf - && find "$2" -type f -print0 | xargs -0 sha256sum >/dev/null' _ "$BENCH_DIR/cmp/v1.tar.zst" "$BENCH_DIR/cmp/untar"
rm -rf "$BENCH_DIR/cmp/untar"
rm -f "$BENCH_DIR"/cmp/v{1,2}.tar.zst

section "Baseline: rsync --write-batch v1 -> v2"
CURRENT_STEP="rsync-prepare"
cp -a "$DATA/v1" "$BENCH_DIR/cmp/inside_copy"   # what the inside holds (a real copy, no hard links)
info "inside_copy = cp -a v1"
run_timed rsync_batch rsync -a --delete --no-whole-file --write-batch="$BENCH_DIR/cmp/rsync.batch" "$DATA/v2/" "$BENCH_DIR/cmp/inside_copy/"
CURRENT_STEP="rsync-measure"
RB=$(stat -c %s "$BENCH_DIR/cmp/rsync.batch")
metric rsync_batch_bytes "$RB"
zstd -T0 -3 -q -c "$BENCH_DIR/cmp/rsync.batch" >"$BENCH_DIR/cmp/rsync.batch.zst"
metric rsync_batch_zst_bytes "$(stat -c %s "$BENCH_DIR/cmp/rsync.batch.zst")"
info "batch $RB bytes ($(mib "$RB")); with zstd -3: $(stat -c %s "$BENCH_DIR/cmp/rsync.batch.zst") bytes"
diff -r "$DATA/v2" "$BENCH_DIR/cmp/inside_copy" >/dev/null || die "rsync did not reproduce v2 (sanity check)"
rm -rf "$BENCH_DIR/cmp/inside_copy"

if (( HAVE_CASYNC )); then
    section "Baseline: casync make (v1, then v2 into the same chunk store)"
    STORE=$BENCH_DIR/cmp/casync.store
    run_timed casync_v1 casync make --store="$STORE" "$BENCH_DIR/cmp/v1.caidx" "$DATA/v1"
    CURRENT_STEP="casync-measure"
    S1=$(bytes_of "$STORE")
    metric casync_v1_bytes "$(( S1 + $(stat -c %s "$BENCH_DIR/cmp/v1.caidx") ))"
    run_timed casync_v2 casync make --store="$STORE" "$BENCH_DIR/cmp/v2.caidx" "$DATA/v2"
    CURRENT_STEP="casync-measure"
    S2=$(bytes_of "$STORE")
    metric casync_v2_bytes "$(( S2 - S1 + $(stat -c %s "$BENCH_DIR/cmp/v2.caidx") ))"
    info "v1: store $(mib "$S1") + index;  v2: new chunks $(mib $(( S2 - S1 ))) + index $(stat -c %s "$BENCH_DIR/cmp/v2.caidx") B"
    rm -rf "$STORE"
fi

# ------------------------------------------------------------------ 6. report
section "Results"
CURRENT_STEP="report"
metric total_seconds "$(( $(date +%s) - T_START ))"
python3 "$SCRIPT_DIR/report.py" --bench-dir "$BENCH_DIR"
info "JSON: $BENCH_DIR/results.json   logs: $BENCH_DIR/logs/"
