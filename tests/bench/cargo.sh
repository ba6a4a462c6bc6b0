#!/usr/bin/env bash
# Crate registries: a realistic lockfile (this workspace's own Cargo.lock, a
# few hundred crates) carried exactly, then a lockfile update; the bundle
# bytes of both exports, and the time `cargo fetch` takes from ferry-in
# against the same fetch from a local copy of upstream.
#
#   tests/bench/cargo.sh                    # release binaries
#   BENCH_PROFILE=debug tests/bench/cargo.sh
#
# Upstream is a stand-in sparse registry made of the real `.crate` files and
# index lines in this machine's cargo caches (CARGO_HOME/registry, filled by
# building the workspace), served by python3 -m http.server. The "before"
# lockfile is the workspace's with every crate of which the cache holds an
# older version moved back to it (what a `cargo update` later moves forward).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
profile=${BENCH_PROFILE:-release}
dir=${BENCH_DIR:-/tmp/ferry-cargo-bench}
cargo_home=${CARGO_HOME:-$HOME/.cargo}
if [ "$profile" = release ]; then
  cargo build --release --quiet -p agent-outside -p agent-inside
else
  cargo build --quiet -p agent-outside -p agent-inside
fi
out="$root/target/$profile/ferry-out"; in="$root/target/$profile/ferry-in"
rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"

cat > gen.py <<'EOF'
import json, os, re, sys, tomllib
cargo_home, lockfile, up, port = sys.argv[1:5]
reg = os.path.join(cargo_home, "registry")
def index_path(name):
    n = name.lower()
    return {1: "1/" + n, 2: "2/" + n, 3: f"3/{n[0]}/{n}"}.get(len(n), f"{n[:2]}/{n[2:4]}/{n}")
def cached_lines(name):
    out = {}
    for r in os.listdir(os.path.join(reg, "index")):
        p = os.path.join(reg, "index", r, ".cache", index_path(name))
        if os.path.isfile(p):
            parts = open(p, "rb").read()[5:].split(b"\0")[1:]
            for v, line in zip(parts[0::2], parts[1::2]):
                out[v.decode()] = line.decode()
    return out
crates = {}  # name -> {version: (file, line)}
for r in os.listdir(os.path.join(reg, "cache")):
    d = os.path.join(reg, "cache", r)
    for fn in os.listdir(d):
        if not fn.endswith(".crate"):
            continue
        stem = fn[:-6]
        for m in re.finditer(r"-(?=\d)", stem):
            name, version = stem[:m.start()], stem[m.end():]
            line = cached_lines(name).get(version)
            if line:
                crates.setdefault(name, {})[version] = (os.path.join(d, fn), line)
                break
os.makedirs(up, exist_ok=True)
with open(os.path.join(up, "config.json"), "w") as f:
    json.dump({"dl": f"http://127.0.0.1:{port}/crates/{{crate}}/{{crate}}-{{version}}.crate"}, f)
def vkey(v):
    core = v.split("+")[0].split("-")[0]
    return tuple(int(x) for x in core.split(".")), "-" not in v.split("+")[0]
for name, versions in crates.items():
    p = os.path.join(up, index_path(name))
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        for v in sorted(versions, key=vkey):
            f.write(versions[v][1] + "\n")
            dest = os.path.join(up, "crates", name, f"{name}-{v}.crate")
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.link(versions[v][0], dest) if os.stat(versions[v][0]).st_dev == os.stat(up).st_dev else open(dest, "wb").write(open(versions[v][0], "rb").read())
lock = tomllib.load(open(lockfile, "rb"))
after, before, moved = [], [], 0
for p in lock["package"]:
    if not p.get("source", "").startswith(("registry+", "sparse+")):
        continue
    have = crates.get(p["name"], {})
    if p["version"] not in have:
        continue
    after.append((p["name"], p["version"], json.loads(have[p["version"]][1])["cksum"]))
    older = [v for v in have if vkey(v) < vkey(p["version"])]
    if older:
        v = max(older, key=vkey); moved += 1
        before.append((p["name"], v, json.loads(have[v][1])["cksum"]))
    else:
        before.append(after[-1])
def write(path, pkgs):
    with open(path, "w") as f:
        f.write("version = 4\n")
        for n, v, c in pkgs:
            f.write(f'\n[[package]]\nname = "{n}"\nversion = "{v}"\n'
                    f'source = "registry+https://github.com/rust-lang/crates.io-index"\nchecksum = "{c}"\n')
write("before.lock", before); write("after.lock", after)
print(f"{sum(len(v) for v in crates.values())} crate files of {len(crates)} crates upstream; "
      f"lockfile: {len(after)} registry packages, {moved} moved by the update")
EOF
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 gen.py "$cargo_home" "$root/Cargo.lock" up "$port"
python3 -m http.server --bind 127.0.0.1 "$port" --directory up >/dev/null 2>&1 & web=$!
trap 'kill $web 2>/dev/null || true; kill $srv 2>/dev/null || true' EXIT
srv=
sleep 1
config() {
  printf '[[source]]\nname = "rs"\ntype = "cargo"\nindex = "http://127.0.0.1:%s/"\nlockfiles = ["%s"]\n' "$port" "$dir/$1" > ferry-out.toml
}
"$out" --state out keygen >/dev/null 2>&1
"$in" --state in trust add out/signing.pub --stream "$("$out" --state out status | awk '/^stream:/{print $2}')" >/dev/null
config before.lock
t0=$(date +%s.%N); "$out" --state out export --config ferry-out.toml --to m1 > last.log; t1=$(date +%s.%N)
head -2 last.log
first=$(du -sb m1 | cut -f1); first_t=$(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}')
"$in" --state in import m1 > last.log
config after.lock
t0=$(date +%s.%N); "$out" --state out export --config ferry-out.toml --to m2 > last.log; t1=$(date +%s.%N)
head -4 last.log
delta=$(du -sb m2 | cut -f1); delta_t=$(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}')
"$in" --state in import m2 > last.log
new_crates=$(python3 -c '
import sys, tomllib
b = {(p["name"], p["version"]) for p in tomllib.load(open("before.lock", "rb"))["package"]}
print(sum(1 for p in tomllib.load(open("after.lock", "rb"))["package"] if (p["name"], p["version"]) not in b))')
new_bytes=$(python3 -c '
import os, tomllib
b = {(p["name"], p["version"]) for p in tomllib.load(open("before.lock", "rb"))["package"]}
new = [(p["name"], p["version"]) for p in tomllib.load(open("after.lock", "rb"))["package"]]
print(sum(os.path.getsize("up/crates/%s/%s-%s.crate" % (n, n, v)) for n, v in new if (n, v) not in b))')

# The client: this workspace, fetched for Linux with its own lockfile.
git -C "$root" archive --format=tar HEAD | (mkdir -p app && tar -x -C app)
"$in" --state in serve --listen 127.0.0.1:0 2> serve.log & srv=$!
for _ in $(seq 50); do grep -q http:// serve.log 2>/dev/null && break; sleep 0.1; done
addr=$(grep -o 'http://[0-9.:]*' serve.log | head -1)
fetch() { # $1: registry URL, $2: label
  rm -rf "home-$2" app/target; mkdir -p "home-$2"
  printf '[source.crates-io]\nreplace-with = "m"\n[source.m]\nregistry = "sparse+%s"\n' "$1" > "home-$2/config.toml"
  local t0 t1; t0=$(date +%s.%N)
  (cd app && CARGO_HOME="$dir/home-$2" CARGO_NET_RETRY=0 cargo fetch --locked --target x86_64-unknown-linux-gnu -q) >&2 || exit 1
  t1=$(date +%s.%N); echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}'
}
from_up=$(fetch "http://127.0.0.1:$port/" up) || { echo "cargo fetch from the local upstream failed" >&2; exit 1; }
from_in=$(fetch "$addr/cargo/rs/" in) || { echo "cargo fetch from ferry-in failed" >&2; exit 1; }

echo
printf 'first export (lockfile before the update): %s bytes on media, %s s\n' "$first" "$first_t"
printf 'update: %s new crate versions, %s bytes of new .crate files\n' "$new_crates" "$new_bytes"
printf 'delta export: %s bytes on media (%.3f of the new files), %s s\n' "$delta" \
  "$(awk -v a="$delta" -v b="$new_bytes" 'BEGIN { print a / b }')" "$delta_t"
printf 'cargo fetch --locked (Linux) of this workspace: %s s from the local upstream, %s s from ferry-in\n' \
  "$from_up" "$from_in"
