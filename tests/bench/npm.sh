#!/usr/bin/env bash
# npm registries: a real project's package-lock.json carried exactly from the
# npm registry (network), then a lockfile update; the bundle bytes of both
# exports, and the time `npm ci` takes from ferry-in against the same `npm ci`
# from a local copy of upstream (the lockfile's tarballs, fetched from the
# registry beforehand and served by python3 -m http.server on loopback, as
# ferry-in is) and from the registry itself (each with a fresh cache).
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
. tests/bench/lib.sh
bench_build
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
bench_trust
config before; bench_export m1; first=$bytes; first_t=$secs
config after; bench_export m2; delta=$bytes; delta_t=$secs

# The local copy of upstream: every tarball the lockfile resolves, at its
# registry path (npm ci with a complete lockfile reads only those, with the
# registry's host replaced by --registry).
python3 - "$dir/after/package-lock.json" "$registry" "$dir/local" <<'PY'
import json, os, sys, urllib.request
lock, registry, local = sys.argv[1], sys.argv[2].rstrip("/") + "/", sys.argv[3]
for k, p in json.load(open(lock))["packages"].items():
    url = p.get("resolved")
    if not k or not url or not url.startswith(registry):
        continue
    dest = os.path.join(local, url[len(registry):])
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with urllib.request.urlopen(url) as r, open(dest, "wb") as f:
        f.write(r.read())
PY
python3 -m http.server --bind 127.0.0.1 0 --directory local > http.log 2>&1 & bench_pids=$!
for _ in $(seq 50); do grep -q 'port' http.log 2>/dev/null && break; sleep 0.1; done
local_url=$(grep -o 'http://[0-9.:]*' http.log | head -1)/
bench_serve

ci() { # $1: registry, $2: label
  rm -rf "after/node_modules" "cache-$2"
  (cd after && npm ci --ignore-scripts --cache "$dir/cache-$2" --registry "$1" >/dev/null)
}
bench_time from_in ci "$addr/npm/js/" in || { echo "npm ci from ferry-in failed" >&2; exit 1; }
bench_time from_local ci "$local_url" local || { echo "npm ci from the local copy failed" >&2; exit 1; }
bench_time from_up ci "$registry" up || { echo "npm ci from the registry failed" >&2; exit 1; }

echo
printf 'first export (%s lockfile): %s bytes on media, %s s\n' "$from" "$first" "$first_t"
printf 'delta export (%s lockfile): %s bytes on media, %s s\n' "$to" "$delta" "$delta_t"
printf 'npm ci --ignore-scripts of the %s lockfile: %s s from ferry-in, %s s from a local copy of upstream, %s s from %s\n' \
  "$to" "$from_in" "$from_local" "$from_up" "$registry"
