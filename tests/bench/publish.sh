#!/usr/bin/env bash
# Publish benchmark (issue 15, docs/publish.md): `ferry-in publish` of a
# generation of many small files to a local S3 server (moto), after the first
# import and after each small delta. Prints, for every publish: wall seconds,
# CPU seconds (user + system) and peak RSS of ferry-in, and from its report
# the keys changed, objects uploaded, PUT requests and bytes sent.
#
#   tests/bench/publish.sh                       # 20,000 files, 2 deltas of 10 files
#   PUB_FILES=200000 PUB_DELTAS=3 tests/bench/publish.sh
#
# Environment:
#   PUB_DIR      work dir (default /tmp/ferry-publish); wiped at start (marker file)
#   PUB_FILES    files in the tree (default 20000), in directories of 1,000
#   PUB_DELTAS   how many deltas (default 2)
#   PUB_CHANGED  files changed by each delta (default 10)
#   PUB_JOBS     ferry-in publish --jobs (default 4)
#   FERRY_OUT / FERRY_IN  binaries (default target/release/*; built unless
#                PUB_SKIP_BUILD=1)
# Needs python3 with moto (`python3 -m pip install 'moto[server]'`): moto
# answers each request in Python, so wall time is mostly moto's; ferry-in's
# CPU seconds are the figure that is ours.
set -Eeuo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
DIR=${PUB_DIR:-/tmp/ferry-publish}
FILES=${PUB_FILES:-20000}
DELTAS=${PUB_DELTAS:-2}
CHANGED=${PUB_CHANGED:-10}
JOBS=${PUB_JOBS:-4}
FERRY_OUT=${FERRY_OUT:-$REPO/target/release/ferry-out}
FERRY_IN=${FERRY_IN:-$REPO/target/release/ferry-in}

[[ -x /usr/bin/time ]] || { echo "publish.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
python3 -c 'import moto.server' 2>/dev/null \
    || { echo "publish.sh: needs moto (python3 -m pip install 'moto[server]')" >&2; exit 1; }
if [[ ${PUB_SKIP_BUILD:-0} != 1 ]]; then
    (cd "$REPO" && cargo build --release -q -p agent-outside -p agent-inside --bins)
fi
mkdir -p "$DIR"
if [[ -n $(ls -A "$DIR") && ! -f $DIR/.ferry-publish ]]; then
    echo "publish.sh: $DIR is not empty and not a previous publish dir; refusing to wipe it" >&2
    exit 1
fi
find "$DIR" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
touch "$DIR/.ferry-publish"
SRC=$DIR/src OUT=$DIR/out IN=$DIR/in
mkdir -p "$SRC" "$DIR/media" "$DIR/times"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$PORT" >"$DIR/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
    sleep 0.1
done
curl -sf -X PUT "http://127.0.0.1:$PORT/mirror" >/dev/null
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
S3=(--endpoint "http://127.0.0.1:$PORT" --bucket mirror)

echo "== generating $FILES files"
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
cat >"$DIR/ferry-out.toml" <<EOF
[[source]]
name = "mirror"
type = "files"
path = "$SRC"
EOF
"$FERRY_OUT" --state "$OUT" keygen >/dev/null
STREAM=$("$FERRY_OUT" --state "$OUT" status | awk '/^stream:/{print $2}')
"$FERRY_IN" --state "$IN" trust add "$OUT/signing.pub" --stream "$STREAM" >/dev/null

# timed NAME CMD...: wall, CPU (user + system), peak RSS of CMD; its stdout
# stays in times/NAME.out.
timed() {
    local name=$1; shift
    /usr/bin/time -f '%e %M %U %S' -o "$DIR/times/$name" "$@" >"$DIR/times/$name.out" 2>"$DIR/times/$name.log" || {
        echo "publish.sh: $name failed:" >&2; tail -n 20 "$DIR/times/$name.log" >&2; exit 1; }
    read -r wall rss user sys < <(tail -n 1 "$DIR/times/$name")
    printf '%7.2fs %6.2fcpu %6.1fMiB' "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')" \
        "$(awk -v k="$rss" 'BEGIN{print k/1024}')"
}
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$DIR/times/$1.out" "$2"; }

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-32s %-8s %-9s %-6s %-12s\n' step 'publish (wall cpu rss)' changed uploaded PUTs bytes
for n in $(seq 0 "$DELTAS"); do
    if (( n > 0 )); then
        for k in $(seq 1 "$CHANGED"); do
            i=$(( (n * 7919 + k * 104729) % FILES ))
            f=$SRC/d$(printf %04d $((i / 1000)))/f$(printf %07d "$i").txt
            echo "changed by delta $n" >>"$f"
        done
    fi
    "$FERRY_OUT" --state "$OUT" export --config "$DIR/ferry-out.toml" --to "$DIR/media/$n" >/dev/null 2>&1
    "$FERRY_IN" --state "$IN" import "$DIR/media/$n" >/dev/null 2>&1
    rm -rf "$DIR/media/$n"
    p=$(timed "publish-$n" "$FERRY_IN" --state "$IN" publish "${S3[@]}" --jobs "$JOBS" --json)
    printf '%-6s %-32s %-8s %-9s %-6s %-12s\n' "$n" "$p" "$(field "publish-$n" changed_keys)" \
        "$(field "publish-$n" objects_uploaded)" "$(field "publish-$n" puts)" "$(field "publish-$n" put_bytes)"
done
# One path through the bucket, checked against the source.
f=d0000/f0000007.txt
"$FERRY_IN" --state "$IN" publish-get "${S3[@]}" "mirror/$f" -o "$DIR/got" 2>/dev/null
cmp -s "$DIR/got" "$SRC/$f" && echo "== mirror/$f resolves through the bucket to the source's bytes"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
