#!/usr/bin/env bash
# QUIC push throughput over loopback against a plain copy of the same volume files.
#
#   tests/bench/quic.sh            # ~512 MiB of incompressible data
#   BENCH_QUIC_MB=64 tests/bench/quic.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
mb=${BENCH_QUIC_MB:-512}
dir=${BENCH_DIR:-/tmp/ferry-quic-bench}
port=${BENCH_QUIC_PORT:-17543}

echo "== building release binaries"
cargo build --release --quiet -p agent-outside -p agent-inside
out="$root/target/release/ferry-out"
in="$root/target/release/ferry-in"

rm -rf "$dir"; mkdir -p "$dir/src"; cd "$dir"
echo "== generating ${mb} MiB of incompressible data"
for i in $(seq 1 $(( (mb + 63) / 64 ))); do head -c $((64 << 20)) /dev/urandom > "src/f$i.bin"; done
printf '[[source]]\nname = "data"\ntype = "files"\npath = "%s/src"\n' "$dir" > ferry-out.toml
"$out" --state out keygen >/dev/null 2>&1
"$in" --state in trust add out/signing.pub --stream "$("$out" --state out status | awk '/^stream:/{print $2}')" >/dev/null
"$out" --state out export --config ferry-out.toml --to media | head -1
bundle=$(ls -d out/bundles/bundle-*)
bytes=$(du -sb "$bundle" | cut -f1)

echo "== plain copy of the bundle's files (cp, then sync)"
sync; t0=$(date +%s.%N); cp -r "$bundle" copy; sync; t1=$(date +%s.%N)
cp_s=$(echo "$t1 - $t0" | awk '{printf "%.3f", $1 - $3}')

echo "== QUIC push over loopback"
"$out" --state out cert >/dev/null 2>&1
"$in" --state in cert >/dev/null 2>&1
"$in" --state in listen --quic "127.0.0.1:$port" --peer-cert out/quic.crt 2> listen.log &
srv=$!; trap 'kill $srv 2>/dev/null || true' EXIT
sleep 0.5
/usr/bin/env time -f '%e %M %U %S' -o push.time "$out" --state out push "quic://127.0.0.1:$port" --peer-cert in/quic.crt | tee push.log
read -r wall rss usr sys < push.time
xfer=$(sed -nE 's/.* in ([0-9.]+)s \(([0-9.]+) MB\/s\).*/\1/p' push.log)
# A generation is an index over objects: written out as a tree to compare.
"$in" --state in export-tree served >/dev/null
diff -r src served/files/data >/dev/null && echo "inside tree identical to the source"

mbs() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / 1e6 / s }'; }
echo
printf '%-40s %10s %10s\n' "" "seconds" "MB/s"
printf '%-40s %10s %10s\n' "cp of the bundle files (+sync)" "$cp_s" "$(mbs "$bytes" "$cp_s")"
printf '%-40s %10s %10s\n' "QUIC push, transfer only" "$xfer" "$(mbs "$bytes" "$xfer")"
printf '%-40s %10s %10s\n' "QUIC push, with the inside's apply" "$wall" "$(mbs "$bytes" "$wall")"
printf 'bundle %s bytes; push client peak RSS %s KiB, CPU %ss user %ss system; ratio push transfer / cp: %s\n' \
  "$bytes" "$rss" "$usr" "$sys" "$(awk -v a="$xfer" -v b="$cp_s" 'BEGIN { printf "%.2f", a / b }')"
