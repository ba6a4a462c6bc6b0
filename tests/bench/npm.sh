#!/usr/bin/env bash
# npm registries: a real project's package-lock.json carried exactly from the
# npm registry (network), then a lockfile update; the bundle bytes of both
# exports, and the time `npm ci` takes from ferry-in against the same `npm ci`
# from the registry itself (each with a fresh cache).
#
#   tests/bench/npm.sh                           # express 4.18.2 -> 4.21.2
#   BENCH_NPM_FROM=jest@29.6.4 BENCH_NPM_TO=jest@29.7.0 tests/bench/npm.sh
#   BENCH_PROFILE=debug tests/bench/npm.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
profile=${BENCH_PROFILE:-release}
from=${BENCH_NPM_FROM:-express@4.18.2}
to=${BENCH_NPM_TO:-express@4.21.2}
registry=${BENCH_NPM_REGISTRY:-https://registry.npmjs.org/}
dir=${BENCH_DIR:-/tmp/ferry-npm-bench}
if [ "$profile" = release ]; then
  cargo build --release --quiet -p agent-outside -p agent-inside
else
  cargo build --quiet -p agent-outside -p agent-inside
fi
out="$root/target/$profile/ferry-out"; in="$root/target/$profile/ferry-in"
rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

lock() { # $1: package spec, $2: directory
  mkdir -p "$2"; echo '{"name":"app","version":"1.0.0"}' > "$2/package.json"
  (cd "$2" && npm install --package-lock-only --ignore-scripts --cache "$dir/cache-lock" \
    --registry "$registry" "$1" >/dev/null)
}
lock "$from" before; lock "$to" after
count() { python3 -c 'import json,sys; print(sum(1 for k in json.load(open(sys.argv[1]))["packages"] if k))' "$1/package-lock.json"; }
echo "== $from: $(count before) packages; $to: $(count after) packages"

config() {
  printf '[[source]]\nname = "js"\ntype = "npm"\nregistry = "%s"\nlockfiles = ["%s"]\n' "$registry" "$dir/$1/package-lock.json" > ferry-out.toml
}
"$out" --state out keygen >/dev/null 2>&1
"$in" --state in trust add out/signing.pub --stream "$("$out" --state out status | awk '/^stream:/{print $2}')" >/dev/null
config before
t0=$(date +%s.%N); "$out" --state out export --config ferry-out.toml --to m1 > last.log; t1=$(date +%s.%N)
head -2 last.log
first=$(du -sb m1 | cut -f1); first_t=$(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}')
"$in" --state in import m1 > last.log
config after
t0=$(date +%s.%N); "$out" --state out export --config ferry-out.toml --to m2 > last.log; t1=$(date +%s.%N)
head -4 last.log
delta=$(du -sb m2 | cut -f1); delta_t=$(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}')
"$in" --state in import m2 > last.log

"$in" --state in serve --listen 127.0.0.1:0 2> serve.log & srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q http:// serve.log 2>/dev/null && break; sleep 0.1; done
addr=$(grep -o 'http://[0-9.:]*' serve.log | head -1)
ci() { # $1: registry, $2: label
  rm -rf "after/node_modules" "cache-$2"
  local t0 t1; t0=$(date +%s.%N)
  (cd after && npm ci --ignore-scripts --cache "$dir/cache-$2" --registry "$1" >/dev/null) || exit 1
  t1=$(date +%s.%N); echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}'
}
from_in=$(ci "$addr/npm/js/" in) || { echo "npm ci from ferry-in failed" >&2; exit 1; }
from_up=$(ci "$registry" up) || { echo "npm ci from the registry failed" >&2; exit 1; }

echo
printf 'first export (%s lockfile): %s bytes on media, %s s\n' "$from" "$first" "$first_t"
printf 'delta export (%s lockfile): %s bytes on media, %s s\n' "$to" "$delta" "$delta_t"
printf 'npm ci --ignore-scripts of the %s lockfile: %s s from ferry-in, %s s from %s\n' \
  "$to" "$from_in" "$from_up" "$registry"
