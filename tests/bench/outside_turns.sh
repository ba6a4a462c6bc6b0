#!/usr/bin/env bash
# Two ferry-out binaries in turns on the same tree (issue 15, the outside):
# each with its own state, a first export, two deltas of 10 small files
# rewritten (the same files for both), then ROUNDS rounds of `find -printf`
# and the two scans of the unchanged tree (exports that find nothing
# changed). Prints wall, CPU (user + system) and peak RSS of each step, the
# delta bundles' bytes and the ledgers' sizes. Export only, no inside.
#
#   BASE_OUT=/tmp/base-bin/ferry-out NEW_OUT=target/release/ferry-out \
#       tests/bench/outside_turns.sh TREE WORKDIR
#
# TREE: a tree made by `gen.py --mirror N --out TREE --stats TREE.json`
# (linked in with cp -al; the deltas write new files, so it is never
# changed). WORKDIR is wiped first, and left for inspection.
set -Eeuo pipefail
TREE=$1; DIR=$2; ROUNDS=${ROUNDS:-3}; shift 2
declare -A BIN=([base]=$BASE_OUT [new]=$NEW_OUT)
[[ ! -e $DIR || -d $DIR/st-new ]] || { echo "outside_turns.sh: $DIR exists and is not an earlier run; refusing to wipe it" >&2; exit 1; }
rm -rf "$DIR"; mkdir -p "$DIR/times"
cp -al "$TREE" "$DIR/src"
cat >"$DIR/out.toml" <<T
[[source]]
name = "mirror"
type = "files"
path = "$DIR/src"
T
timed() { local name=$1; shift
  /usr/bin/time -f '%e %M %U %S' -o "$DIR/times/$name" "$@" >"$DIR/times/$name.log" 2>&1 || { echo "$name failed"; tail "$DIR/times/$name.log"; exit 1; }
  read -r wall rss user sys < <(tail -n1 "$DIR/times/$name")
  printf '%-14s wall %6.2fs cpu %6.2fs rss %6.1fMiB\n' "$name" "$wall" "$(awk -v u=$user -v s=$sys 'BEGIN{print u+s}')" "$(awk -v k=$rss 'BEGIN{print k/1024}')"; }
for b in base new; do "${BIN[$b]}" --state "$DIR/st-$b" keygen >/dev/null; done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
for b in base new; do timed "first-$b" "${BIN[$b]}" --state "$DIR/st-$b" export --config "$DIR/out.toml" --to "$DIR/media-$b-0"; rm -rf "$DIR/media-$b-0"; done
SMALL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["small"])' "$TREE.json")
for n in 1 2; do
  for k in $(seq 1 10); do
    i=$(( (n * 7919 + k * 104729) % SMALL ))
    f=$DIR/src/small/d$(printf %04d $((i / 1000)))/f$(printf %07d "$i").txt
    { cat "$f"; echo "changed by delta $n"; } >"$f.new" && mv "$f.new" "$f"
  done
  for b in base new; do timed "delta$n-$b" "${BIN[$b]}" --state "$DIR/st-$b" export --config "$DIR/out.toml" --to "$DIR/media-$b-$n"; du -sb "$DIR/media-$b-$n" | awk '{print "   bundle", $1}'; rm -rf "$DIR/media-$b-$n"; done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
find "$DIR/src" -printf '%s %T@\n' >/dev/null
for r in $(seq 1 "$ROUNDS"); do
  timed "find-$r" find "$DIR/src" -printf '%s %T@\n'
  for b in base new; do timed "scan$r-$b" "${BIN[$b]}" --state "$DIR/st-$b" export --config "$DIR/out.toml" --to "$DIR/media-scan"; done
done
ls -la "$DIR"/st-*/ferry-out.redb
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
