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

# The local copy of upstream: the packuments of the lockfile's packages
# (tarball URLs pointing at the copy) and the tarball of every version the
# lockfile names, at its registry path, served on loopback as ferry-in is (a packument is
# `<name>/packument.json`, answered for `/<name>`).
mkdir -p local
python3 - "$dir/local" > http.log 2>&1 <<'PY' & bench_pids=$!
import http.server, os, sys
class H(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        p = os.path.join(self.translate_path(self.path), "packument.json")
        if not self.path.endswith("/") and os.path.isfile(p):
            body = open(p, "rb").read()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: H(*a, directory=sys.argv[1]))
print("port http://127.0.0.1:%d" % s.server_address[1], flush=True)
s.serve_forever()
PY
trap 'kill $bench_pids 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q 'port' http.log 2>/dev/null && break; sleep 0.1; done
local_url=$(grep -o 'http://[0-9.:]*' http.log | head -1)/
python3 - "$dir/after/package-lock.json" "$registry" "$dir/local" "$local_url" <<'PY'
import json, os, sys, urllib.request
lock, registry, local, url_here = sys.argv[1], sys.argv[2].rstrip("/") + "/", sys.argv[3], sys.argv[4]
wanted = {}
for k, p in json.load(open(lock))["packages"].items():
    if k and "version" in p and not p.get("link"):
        name = p.get("name") or k.rsplit("node_modules/", 1)[1]
        wanted.setdefault(name, set()).add(p["version"])
for name, versions in sorted(wanted.items()):
    with urllib.request.urlopen(registry + name.replace("/", "%2f")) as r:
        text = r.read().decode()
    doc = json.loads(text)
    for v in versions:
        url = doc["versions"][v]["dist"]["tarball"]
        dest = os.path.join(local, url[len(registry):])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with urllib.request.urlopen(url) as r, open(dest, "wb") as f:
            f.write(r.read())
    os.makedirs(os.path.join(local, name), exist_ok=True)
    open(os.path.join(local, name, "packument.json"), "w").write(text.replace(registry, url_here))
PY
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
