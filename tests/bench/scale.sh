#!/usr/bin/env bash
# Scale benchmark (issue 15): costs that should grow with the change, not with
# the mirror. Builds a tree of many small files, exports and imports it once,
# then runs several small deltas (a few changed files each) and prints, for
# every step: wall seconds, peak RSS, bundle bytes, and the sizes of the outside
# ledger and the inside database afterwards.
#
#   tests/bench/scale.sh                          # 200,000 files, 8 deltas of 10 files
#   SCALE_FILES=20000 SCALE_DELTAS=3 tests/bench/scale.sh
#   SCALE_SHAPE=mirror SCALE_FILES=1000000 SCALE_OUTSIDE_ONLY=1 SCALE_DELTAS=2 \
#       tests/bench/scale.sh                      # the outside at a million objects
#
# Environment:
#   SCALE_DIR      work dir (default /tmp/ferry-scale); wiped at start (marker file)
#   SCALE_FILES    files in the tree (default 200000), in directories of 1,000
#   SCALE_DELTAS   how many delta exports (default 8)
#   SCALE_CHANGED  files changed by each delta (default 10)
#   SCALE_SHAPE    flat (default: small text files) or mirror (gen.py --mirror:
#                  mostly small files, a few large ones, a package-mirror tree
#                  with its indices)
#   SCALE_OUTSIDE_ONLY  1: export only (no ferry-in import; the inside's
#                  columns print "-")
#   SCALE_TREE     with mirror: a pristine tree of SCALE_FILES objects to link
#                  in (cp -al), generated there first if missing
#   SCALE_SCAN_REPEATS  after the deltas, how many times to time the scan of the
#                  unchanged tree (an export that finds nothing changed) against
#                  `find SRC -printf '%s %T@\n'`, warm cache (default 3; 0: skip)
#   SCALE_STRACE   1: after the deltas, one more delta imported under
#                  `strace -f -c` (not timed), printing the file-system calls
#                  it made (links, unlinks, mkdirs, renames, opens)
#   SCALE_MANIFEST_ZSTD  0: skip the `zstd -19` of the first manifest (minutes
#                  of CPU at a million objects; default 1)
#   SCALE_PRUNE_KEEP  after everything, `ferry-out prune --keep N`: its time,
#                  what it compacted, and the ledger before and after (with
#                  SCALE_DELTAS over 64, the catalog history has a checkpoint
#                  to cut at)
#   FERRY_OUT / FERRY_IN  binaries (default target/release/*; built unless
#                  SCALE_SKIP_BUILD=1)
set -Eeuo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
DIR=${SCALE_DIR:-/tmp/ferry-scale}
FILES=${SCALE_FILES:-200000}
DELTAS=${SCALE_DELTAS:-8}
CHANGED=${SCALE_CHANGED:-10}
FERRY_OUT=${FERRY_OUT:-$REPO/target/release/ferry-out}
FERRY_IN=${FERRY_IN:-$REPO/target/release/ferry-in}

[[ -x /usr/bin/time ]] || { echo "scale.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
if [[ ${SCALE_SKIP_BUILD:-0} != 1 ]]; then
    (cd "$REPO" && cargo build --release -q -p agent-outside -p agent-inside --bins)
fi
mkdir -p "$DIR"
if [[ -n $(ls -A "$DIR") && ! -f $DIR/.ferry-scale ]]; then
    echo "scale.sh: $DIR is not empty and not a previous scale dir; refusing to wipe it" >&2
    exit 1
fi
find "$DIR" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
touch "$DIR/.ferry-scale"
SRC=$DIR/src OUT=$DIR/out IN=$DIR/in
mkdir -p "$SRC" "$DIR/media" "$DIR/times"

SHAPE=${SCALE_SHAPE:-flat}
OUTSIDE_ONLY=${SCALE_OUTSIDE_ONLY:-0}
SCAN_REPEATS=${SCALE_SCAN_REPEATS:-3}
echo "== generating $FILES files ($SHAPE)"
if [[ $SHAPE == mirror ]]; then
    rmdir "$SRC"
    if [[ -n ${SCALE_TREE:-} ]]; then
        # A pristine tree generated once, linked in (deltas write new files,
        # so the pristine tree is never changed).
        [[ -d $SCALE_TREE ]] || python3 "$SCRIPT_DIR/gen.py" --mirror "$FILES" --out "$SCALE_TREE" --stats "$SCALE_TREE.json"
        cp -al "$SCALE_TREE" "$SRC"
        cp "$SCALE_TREE.json" "$DIR/gen.json"
    else
        python3 "$SCRIPT_DIR/gen.py" --mirror "$FILES" --out "$SRC" --stats "$DIR/gen.json"
    fi
    # changed files: small/dNNNN/fNNNNNNN.txt, as the flat shape's dNNNN/fNNNNNNN.txt
    SMALL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["small"])' "$DIR/gen.json")
    CHANGE_ROOT=$SRC/small
else
python3 - "$SRC" "$FILES" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i // 1000:04d}")
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:07d}.txt"), "w") as f:
        f.write(f"object {i}\n" * (1 + i % 50))
EOF
    SMALL=$FILES
    CHANGE_ROOT=$SRC
fi
cat >"$DIR/ferry-out.toml" <<EOF
[[source]]
name = "mirror"
type = "files"
path = "$SRC"
EOF

"$FERRY_OUT" --state "$OUT" keygen >/dev/null
STREAM=$("$FERRY_OUT" --state "$OUT" status | awk '/^stream:/{print $2}')
if [[ $OUTSIDE_ONLY != 1 ]]; then
    "$FERRY_IN" --state "$IN" trust add "$OUT/signing.pub" --stream "$STREAM" >/dev/null
fi

# timed NAME CMD...: prints wall seconds, CPU seconds (user + system) and
# peak RSS of CMD.
timed() {
    local name=$1; shift
    /usr/bin/time -f '%e %M %U %S' -o "$DIR/times/$name" "$@" >"$DIR/times/$name.log" 2>&1 || {
        echo "scale.sh: $name failed:" >&2; tail -n 20 "$DIR/times/$name.log" >&2; exit 1; }
    read -r wall rss user sys < <(tail -n 1 "$DIR/times/$name")
    printf '%6.2fs %6.2fcpu %6.1fMiB' "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')" \
        "$(awk -v k="$rss" 'BEGIN{print k/1024}')"
}
size() { du -sb "$1" | awk '{printf "%.3f MB", $1/1e6}'; }

# The manifest of the bundle in media dir $1: bytes, and bytes an object of
# the catalog (and zstd -19 of the file: what a generic compressor finds).
manifest_figures() {
    local m
    m=$(echo "$1"/*/manifest.ferry)
    local bytes z
    bytes=$(stat -c %s "$m")
    if [[ ${SCALE_MANIFEST_ZSTD:-1} == 0 ]]; then
        printf 'manifest %d bytes = %.1f B/object of %d' \
            "$bytes" "$(awk -v b="$bytes" -v n="$FILES" 'BEGIN{print b/n}')" "$FILES"
        return
    fi
    z=$(zstd -19 -c "$m" 2>/dev/null | wc -c)
    printf 'manifest %d bytes = %.1f B/object of %d (zstd -19 of the file: %.1f B/object)' \
        "$bytes" "$(awk -v b="$bytes" -v n="$FILES" 'BEGIN{print b/n}')" "$FILES" \
        "$(awk -v b="$z" -v n="$FILES" 'BEGIN{print b/n}')"
}

printf '%-6s %-30s %-30s %-10s %-10s %-10s\n' step 'export (wall cpu rss)' 'import (wall cpu rss)' bundle ledger inside-db
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for n in $(seq 0 "$DELTAS"); do
    if (( n > 0 )); then
        for k in $(seq 1 "$CHANGED"); do
            i=$(( (n * 7919 + k * 104729) % SMALL ))
            f=$CHANGE_ROOT/d$(printf %04d $((i / 1000)))/f$(printf %07d "$i").txt
            # a new file (never the linked inode of SCALE_TREE)
            { cat "$f"; echo "changed by delta $n"; } >"$f.new" && mv "$f.new" "$f"
        done
    fi
    media=$DIR/media/$n
    e=$(timed "export-$n" "$FERRY_OUT" --state "$OUT" export --config "$DIR/ferry-out.toml" --to "$media")
    if [[ $OUTSIDE_ONLY == 1 ]]; then
        i=-
    else
        i=$(timed "import-$n" "$FERRY_IN" --state "$IN" import "$media")
    fi
    indb=-
    [[ -e $IN/ferry-in.redb ]] && indb=$(size "$IN/ferry-in.redb")
    printf '%-6s %-30s %-30s %-10s %-10s %-10s\n' "$n" "$e" "$i" "$(size "$media")" \
        "$(size "$OUT/ferry-out.redb")" "$indb"
    if (( n == 0 )); then echo "       $(manifest_figures "$media")"; fi
    rm -rf "$media"
done
if [[ $OUTSIDE_ONLY != 1 ]]; then
    # A generation has no tree (older ferry-in: its own): written out to compare.
    if [[ -d $IN/store/current/files ]]; then
        served=$IN/store/current/files/mirror
    else
        "$FERRY_IN" --state "$IN" export-tree "$DIR/served" >/dev/null
        served=$DIR/served/files/mirror
    fi
    diff -r "$SRC" "$served" >/dev/null && echo "== the inside serves the source tree exactly"
    rm -rf "$DIR/served"
    # du counts a hard-linked file once: the inside's disk against the bytes
    # it serves (the source tree's apparent size).
    printf '== inside disk %s (du -sb of the state dir) against %s served\n' \
        "$(size "$IN")" "$(du -sb "$SRC" | awk '{printf "%.3f MB", $1/1e6}')"
fi
if [[ ${SCALE_STRACE:-0} == 1 && $OUTSIDE_ONLY != 1 ]]; then
    command -v strace >/dev/null || { echo "scale.sh: SCALE_STRACE needs strace" >&2; exit 1; }
    n=$((DELTAS + 1))
    for k in $(seq 1 "$CHANGED"); do
        i=$(( (n * 7919 + k * 104729) % SMALL ))
        f=$CHANGE_ROOT/d$(printf %04d $((i / 1000)))/f$(printf %07d "$i").txt
        { cat "$f"; echo "changed by delta $n"; } >"$f.new" && mv "$f.new" "$f"
    done
    "$FERRY_OUT" --state "$OUT" export --config "$DIR/ferry-out.toml" --to "$DIR/media/$n" >/dev/null 2>&1
    strace -f -c -o "$DIR/times/strace" "$FERRY_IN" --state "$IN" import "$DIR/media/$n" >/dev/null 2>&1
    echo "== file-system calls of one more $CHANGED-file delta import (strace -f -c):"
    awk '$NF ~ /^(link|linkat|unlink|unlinkat|mkdir|mkdirat|rename|renameat|renameat2|openat|newfstatat|statx|syncfs|fsync)$/ {printf "  %-12s %s\n", $NF, ($4 ~ /^[0-9]+$/ ? $4 : $3)}' "$DIR/times/strace"
    rm -rf "$DIR/media/$n"
fi

# The scan of the unchanged tree: an export that finds nothing changed (it
# writes no bundle) against find's stat of every file, warm cache, in turns.
if (( SCAN_REPEATS > 0 )); then
    echo "== scan of the unchanged tree ($SCAN_REPEATS repeats, warm cache; wall cpu rss)"
    find "$SRC" -printf '%s %T@\n' >/dev/null
    for r in $(seq 1 "$SCAN_REPEATS"); do
        f=$(timed "find-$r" find "$SRC" -printf '%s %T@\n')
        e=$(timed "scan-$r" "$FERRY_OUT" --state "$OUT" export --config "$DIR/ferry-out.toml" --to "$DIR/media/scan")
        printf '  find %s   ferry-out export (nothing changed) %s\n' "$f" "$e"
    done
fi

# Forgetting old bundles: their kept copies and the ledger's catalog history.
if [[ -n ${SCALE_PRUNE_KEEP:-} ]]; then
    before=$(size "$OUT/ferry-out.redb")
    p=$(timed prune "$FERRY_OUT" --state "$OUT" prune --keep "$SCALE_PRUNE_KEEP")
    echo "== prune --keep $SCALE_PRUNE_KEEP: $p; ledger $before -> $(size "$OUT/ferry-out.redb")"
    sed 's/^/  /' "$DIR/times/prune.log"
fi
