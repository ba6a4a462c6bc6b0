#!/usr/bin/env bash
# Memory and time of one large object's update, on real consecutive releases:
# Ferry's second export (the patch) and its import, each alone under
# /usr/bin/time (wall clock, peak RSS), the bundle's bytes, and in the same
# run `rsync --write-batch` (as tests/bench/compressed.py runs it) and
# `zstd --patch-from -19 --long=31` on the compressed files, and for a deb
# the same zstd on the decompressed data.tar (the bound).
#
#   tests/bench/large_objects.sh                 # every pair, at high
#   PAIRS="openjdk" DELTA=fast tests/bench/large_objects.sh
#
# Pairs (fetched with the ordinary clients into $WORK_DIR/fetch, kept):
#   firefox   firefox-esr, Debian bookworm and bookworm-security (two majors apart; 80 MB debs)
#   openjdk   openjdk-17-jdk-headless, the same (72 MB debs)
#   nccl      nvidia-nccl-cu12 2.20.5 and 2.21.5 from PyPI (180 MiB wheels)
# Environment: WORK_DIR (default /tmp/ferry-large), BIN (a directory holding
# ferry-out and ferry-in; default: a release build of this tree), DELTA
# (fast or high, default high), COMPARE (0 to skip the zstd comparators).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK_DIR=${WORK_DIR:-/tmp/ferry-large}
PAIRS=${PAIRS:-"firefox openjdk nccl"}
DELTA=${DELTA:-high}
COMPARE=${COMPARE:-1}

need=()
for tool in rsync:rsync zstd:zstd xz:xz-utils pip3:python3-pip /usr/bin/time:time ar:binutils; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ -z "${BIN:-}" ]; then
  (cd "$REPO" && cargo build --release --quiet -p agent-outside --bin ferry-out \
     -p agent-inside --bin ferry-in)
  BIN=$REPO/target/release
fi
mkdir -p "$WORK_DIR/fetch"

# fetch PAIR: leaves $old and $new (paths) and $name (the file name both get).
fetch() {
  local d="$WORK_DIR/fetch/$1" versions
  mkdir -p "$d"
  case $1 in
    firefox|openjdk)
      local pkg=firefox-esr
      [ "$1" = openjdk ] && pkg=openjdk-17-jdk-headless
      name="${pkg}_amd64.deb"
      # The oldest and the newest version the configured suites hold.
      mapfile -t versions < <(apt-cache madison "$pkg" | awk '{print $3}' | sort -uV)
      if [ ${#versions[@]} -lt 2 ]; then
        echo "skipped: fewer than two versions of $pkg in the apt sources"; return 1
      fi
      old="$d/old.deb"; new="$d/new.deb"
      if [ ! -s "$old" ] || [ ! -s "$new" ]; then
        (cd "$d" && apt-get download -q "$pkg=${versions[0]}" "$pkg=${versions[-1]}" >/dev/null 2>&1)
        mv "$d/${pkg}_$(echo "${versions[0]}" | sed 's/:/%3a/')_amd64.deb" "$old"
        mv "$d/${pkg}_$(echo "${versions[-1]}" | sed 's/:/%3a/')_amd64.deb" "$new"
      fi
      echo "$pkg ${versions[0]} -> ${versions[-1]}" ;;
    nccl)
      name="nvidia_nccl_cu12-py3-none-manylinux1_x86_64.whl"
      old="$d/old.whl"; new="$d/new.whl"
      for v in 2.20.5:old 2.21.5:new; do
        [ -s "$d/${v#*:}.whl" ] && continue
        rm -rf "$d/dl" && mkdir -p "$d/dl"
        pip3 download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
          --platform manylinux_2_17_x86_64 --platform manylinux1_x86_64 \
          --python-version 3.11 -d "$d/dl" "nvidia-nccl-cu12==${v%%:*}" >/dev/null 2>&1 \
          || { echo "skipped: pip could not download nvidia-nccl-cu12"; return 1; }
        mv "$d"/dl/*.whl "$d/${v#*:}.whl"
      done
      echo "nvidia-nccl-cu12 2.20.5 -> 2.21.5" ;;
  esac
}

# timed LOG CMD...: runs CMD under /usr/bin/time; prints wall seconds and peak MiB.
timed() {
  local log=$1; shift
  /usr/bin/time -v "$@" > "$log" 2>&1 || { tail -5 "$log"; return 1; }
  awk -F': ' '/Elapsed/{t=$2} /Maximum resident/{m=$2} END{printf "%s, %.1f MiB", t, m/1024}' "$log"
}

for pair in $PAIRS; do
  echo "== $pair"
  fetch "$pair" || continue
  w="$WORK_DIR/$pair"; rm -rf "$w"; mkdir -p "$w/src"
  printf '[[source]]\nname = "large"\ntype = "files"\npath = "%s/src"\n' "$w" > "$w/cfg.toml"
  "$BIN/ferry-out" --state "$w/out" keygen >/dev/null 2>&1
  "$BIN/ferry-in" --state "$w/in" trust add "$w/out/signing.pub" --first-use >/dev/null 2>&1
  cp "$old" "$w/src/$name"
  "$BIN/ferry-out" --state "$w/out" export --config "$w/cfg.toml" --to "$w/media1" \
    --delta "$DELTA" >/dev/null 2>&1
  "$BIN/ferry-in" --state "$w/in" import "$w/media1" >/dev/null 2>&1
  cp "$new" "$w/src/$name"
  printf '  export (--delta %s): %s' "$DELTA" "$(timed "$w/export.log" "$BIN/ferry-out" \
    --state "$w/out" export --config "$w/cfg.toml" --to "$w/media2" --delta "$DELTA")"
  bundle=$(du -sb "$w/media2" | cut -f1)
  size=$(stat -c %s "$new")
  echo "; bundle $bundle bytes, $(awk -v b="$bundle" -v s="$size" 'BEGIN{printf "%.1f", 100*b/s}')% of $size"
  printf '  import: %s' "$(timed "$w/import.log" "$BIN/ferry-in" --state "$w/in" import "$w/media2")"
  "$BIN/ferry-in" --state "$w/in" export-tree "$w/tree" >/dev/null 2>&1
  served=$(find "$w/tree" -name "$name" | head -1)
  if [ -n "$served" ] && cmp -s "$served" "$new"; then echo "; served byte for byte"; else echo "; NOT SERVED RIGHT"; exit 1; fi
  rm -rf "$w/tree"
  [ "$COMPARE" = 1 ] || continue
  rm -rf "$w/r-old" "$w/r-new" && mkdir -p "$w/r-old" "$w/r-new"
  cp "$old" "$w/r-old/$name" && cp "$new" "$w/r-new/$name"
  rsync -a --delete-after --fuzzy --no-whole-file --write-batch="$w/rsync.batch" \
    "$w/r-new/" "$w/r-old/" >/dev/null
  echo "  rsync --write-batch: $(stat -c %s "$w/rsync.batch") bytes"
  rm -rf "$w/r-old" "$w/r-new" "$w/rsync.batch" "$w/rsync.batch.sh"
  zstd -q -f -19 --long=31 --patch-from="$old" "$new" -o "$w/comp.zst" 2>/dev/null
  echo "  zstd --patch-from -19 --long=31, compressed files: $(stat -c %s "$w/comp.zst") bytes"
  case $pair in firefox|openjdk)
    mkdir -p "$w/o" "$w/n"
    (cd "$w/o" && ar x "$old" && xz -dc data.tar.xz > data.tar)
    (cd "$w/n" && ar x "$new" && xz -dc data.tar.xz > data.tar)
    zstd -q -f -19 --long=31 --patch-from="$w/o/data.tar" "$w/n/data.tar" -o "$w/bound.zst" 2>/dev/null
    echo "  the bound (the same on the decompressed data.tar): $(stat -c %s "$w/bound.zst") bytes"
    rm -rf "$w/o" "$w/n" ;;
  esac
done
