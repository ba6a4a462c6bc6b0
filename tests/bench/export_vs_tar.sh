#!/usr/bin/env bash
# A first export against `tar -cf - | zstd -q -T2 -3` on the same tree, in
# turns (issue 11: "the whole export at least as fast as tar | zstd on data
# with nothing to analyse").
#
#   BINS="base=/tmp/base18-bin/ferry-out new=target/release/ferry-out" \
#       ROUNDS=2 tests/bench/export_vs_tar.sh WORKDIR
#
# The tree (`gen.py --seed 42 --size-mb ${SIZE_MB:-512}`, its v1: 17,033
# files at 512 MiB) is generated once into WORKDIR/tree and kept between
# runs (delete WORKDIR when done). Each round runs every binary of BINS
# then tar | zstd; each export from a fresh state, its media directory on
# the same filesystem (WORKDIR), removed after (then `settle`, below).
# `/usr/bin/time` gives
# wall, CPU (user + system) and peak RSS; each line also prints the ratio
# of its wall and CPU to the same round's tar | zstd, and the load average
# before it. LINK=1 exports with `link_copies = true` (docs/sources/files.md).
# Set PERF=NAME to record `perf record -g` of binary NAME's
# export in the first round (WORKDIR/perf-NAME.data).
set -Eeuo pipefail
DIR=${1:?usage: export_vs_tar.sh WORKDIR}
ROUNDS=${ROUNDS:-2}
SIZE_MB=${SIZE_MB:-512}
BINS=${BINS:-"base=/tmp/base18-bin/ferry-out"}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

mkdir -p "$DIR/times"
if [[ ! -d $DIR/tree/data ]]; then
    rm -rf "$DIR/tree" "$DIR/gen"
    python3 "$SCRIPT_DIR/gen.py" --seed 42 --size-mb "$SIZE_MB" \
        --v1 "$DIR/gen/v1" --v2 "$DIR/gen/v2" >/dev/null
    mkdir -p "$DIR/tree"
    mv "$DIR/gen/v1" "$DIR/tree/data"
    rm -rf "$DIR/gen"
fi
echo "tree: $(find "$DIR/tree/data" -type f | wc -l) files, $(du -sb "$DIR/tree/data" | cut -f1) bytes"
cat >"$DIR/out.toml" <<T
[[source]]
name = "data"
type = "files"
path = "$DIR/tree/data"
T
# LINK=1: the copies kept for the next patch as links to the tree's files.
[[ ${LINK:-0} == 1 ]] && echo 'link_copies = true' >>"$DIR/out.toml"

# timed NAME CMD...: runs CMD under /usr/bin/time; sets WALL CPU RSS.
timed() {
    local name=$1; shift
    local tf="$DIR/times/$name"
    /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"$tf.log" 2>&1 ||
        { echo "$name failed:"; tail "$tf.log"; exit 1; }
    local user sys
    read -r WALL RSS user sys < <(tail -n1 "$tf")
    CPU=$(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u+s}')
    RSS=$(awk -v k="$RSS" 'BEGIN{printf "%.1f", k/1024}')
    USER_SYS="$user + $sys"
}

# After removing a state (17,000 copies): its writes flushed, and a pause.
# On an ext4 without a journal, a new inode is not taken from those freed
# in the last 5-10 s (`recently_deleted`, a scan of the inode table per
# file created): the export right after another's removal paid for it
# (16% of its CPU in a profile).
settle() { sync; sleep "${SETTLE:-10}"; }

# Warm the page cache alike for everyone.
tar -cf - -C "$DIR/tree" data | cat >/dev/null  # (GNU tar reads nothing when writing to /dev/null itself)
for r in $(seq 1 "$ROUNDS"); do
    declare -A W=() C=() M=() U=() L=() B=()
    for pair in $BINS; do
        name=${pair%%=*} bin=${pair#*=}
        rm -rf "$DIR/st-$name" "$DIR/media-$name"
        "$bin" --state "$DIR/st-$name" keygen >/dev/null
        L[$name]=$(cut -d' ' -f1 /proc/loadavg)
        cmd=("$bin" --state "$DIR/st-$name" export --config "$DIR/out.toml" --to "$DIR/media-$name")
        if [[ ${PERF:-} == "$name" && $r == 1 ]]; then
            cmd=(perf record -g -o "$DIR/perf-$name.data" -- "${cmd[@]}")
        fi
        timed "r$r-$name" "${cmd[@]}"
        W[$name]=$WALL C[$name]=$CPU M[$name]=$RSS U[$name]=$USER_SYS
        B[$name]=$(du -sb "$DIR/media-$name" | cut -f1)
        rm -rf "$DIR/st-$name" "$DIR/media-$name"
        settle
    done
    L[tar]=$(cut -d' ' -f1 /proc/loadavg)
    timed "r$r-tar" bash -c 'set -o pipefail; tar -cf - -C "$1" data | zstd -q -T2 -3 >"$2"' _ "$DIR/tree" "$DIR/x.tar.zst"
    W[tar]=$WALL C[tar]=$CPU M[tar]=$RSS U[tar]=$USER_SYS
    B[tar]=$(stat -c %s "$DIR/x.tar.zst")
    rm -f "$DIR/x.tar.zst"
    settle
    for name in $(for p in $BINS; do echo "${p%%=*}"; done) tar; do
        printf 'round %d %-8s wall %6.2f s  cpu %6.2f s (%s)  rss %6.1f MiB  wall/tar %5.2f  cpu/tar %5.2f  cores %4.2f  bytes %s  load %s\n' \
            "$r" "$name" "${W[$name]}" "${C[$name]}" "${U[$name]}" "${M[$name]}" \
            "$(awk -v a="${W[$name]}" -v b="${W[tar]}" 'BEGIN{printf "%.2f", a/b}')" \
            "$(awk -v a="${C[$name]}" -v b="${C[tar]}" 'BEGIN{printf "%.2f", a/b}')" \
            "$(awk -v a="${C[$name]}" -v b="${W[$name]}" 'BEGIN{printf "%.2f", a/b}')" \
            "${B[$name]}" "${L[$name]}"
    done
done
