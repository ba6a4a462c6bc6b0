#!/usr/bin/env bash
# Delta benchmark on real compressed releases (wheels, debs, crates, a gzip layer):
# bytes Ferry ships for an update, beside rsync --write-batch, casync,
# zstd --patch-from on the compressed files, and the bound (zstd --patch-from on
# the decompressed content). See tests/bench/corpus.py for the corpus.
#
#   tests/bench/compressed.sh             # corpus in /tmp/ferry-corpus (kept), work in /tmp/ferry-compressed
#
# Environment: CORPUS_DIR, WORK_DIR, FERRY_OUT (default: a release build of this tree;
# ferry-in is taken from the same directory), BENCH_SKIP (comparators to leave out),
# BENCH_FERRY (Ferry settings to measure, default "off fast high"), BENCH_ECOS (the
# ecosystems to measure, default all: e.g. "layer charts").
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CORPUS_DIR=${CORPUS_DIR:-/tmp/ferry-corpus}
WORK_DIR=${WORK_DIR:-/tmp/ferry-compressed}

need=()
for tool in rsync:rsync casync:casync zstd:zstd xz:xz-utils pip3:python3-pip dpkg-deb:dpkg; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ -z "${FERRY_OUT:-}" ]; then
  (cd "$REPO" && cargo build --release --quiet -p agent-outside --bin ferry-out \
     -p agent-inside --bin ferry-in)
  FERRY_OUT=$REPO/target/release/ferry-out
fi

python3 "$REPO/tests/bench/corpus.py" "$CORPUS_DIR"
rm -rf "$WORK_DIR"
python3 "$REPO/tests/bench/compressed.py" "$CORPUS_DIR" "$WORK_DIR" "$FERRY_OUT"
