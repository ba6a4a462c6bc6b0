#!/usr/bin/env bash
# PyPI mirroring: the bytes of an update bundle (5 new versions of 20 wheels
# of a few MiB) against the new files' size and an rsync batch of the same
# upstream change, and the time the inside takes to apply it.
#
#   tests/bench/pypi.sh                       # 20 wheels of 4 MiB content (~1.9 MiB zipped)
#   BENCH_PYPI_MB=1 tests/bench/pypi.sh
#
# Wheels are written directly (zip with METADATA, WHEEL and RECORD, as a build
# backend does); a new version keeps most of its modules and changes one, as
# real releases do. Upstream is a static PEP 503 tree under python3 -m http.server.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
mb=${BENCH_PYPI_MB:-4}
dir=${BENCH_DIR:-/tmp/ferry-pypi-bench}
command -v rsync >/dev/null || { apt-get update -qq; apt-get install -y -qq rsync >/dev/null; }
cargo build --release --quiet -p agent-outside -p agent-inside
out="$root/target/release/ferry-out"; in="$root/target/release/ferry-in"
rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"

cat > gen.py <<'EOF'
import base64, hashlib, os, random, sys, zipfile
up, stage, mb = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
pkgs = os.path.join(up, "packages"); os.makedirs(pkgs, exist_ok=True)
def wheel(name, version, seed):
    rnd = random.Random(seed)
    files = {}
    # ~60% compressible source, ~40% random data, in 16 modules.
    for i in range(16):
        r = random.Random(f"{name}-{i}-{seed if i == 0 else 0}")
        words = [r.choice(["def", "return", "self", "import", "class", name, "value", "x"]) for _ in range(int(mb * 2**20 * 0.6 / 16 / 6))]
        files[f"{name}/mod{i}.py"] = " ".join(words).encode()
        files[f"{name}/data{i}.bin"] = random.Random(f"{name}-data-{i}-{seed if i == 0 else 0}").randbytes(int(mb * 2**20 * 0.4 / 16))
    di = f"{name}-{version}.dist-info"
    files[f"{di}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nRequires-Python: >=3.8\n".encode()
    files[f"{di}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    rec = [f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}" for n, d in files.items()]
    files[f"{di}/RECORD"] = ("\n".join(rec + [f"{di}/RECORD,,"]) + "\n").encode()
    path = os.path.join(pkgs, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in files.items():
            z.writestr(zipfile.ZipInfo(n, (2020, 1, 1, 0, 0, 0)), d, zipfile.ZIP_DEFLATED)
for i in range(20):
    wheel(f"p{i:02d}", "1.0", 1)
    if stage == 2 and i < 5:
        wheel(f"p{i:02d}", "1.1", 2)
os.makedirs(os.path.join(up, "simple"), exist_ok=True)
by = {}
for fn in sorted(os.listdir(pkgs)):
    by.setdefault(fn.split("-")[0], []).append(fn)
for p, fns in by.items():
    d = os.path.join(up, "simple", p); os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "index.html"), "w") as f:
        for fn in fns:
            h = hashlib.sha256(open(os.path.join(pkgs, fn), "rb").read()).hexdigest()
            f.write(f'<a href="../../packages/{fn}#sha256={h}" data-requires-python="&gt;=3.8">{fn}</a><br/>\n')
EOF

echo "== writing 20 wheels of ${mb} MiB content"
python3 gen.py up 1 "$mb"
cp -a up mirror-v1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 "$port" --directory up >/dev/null 2>&1 & web=$!
trap 'kill $web 2>/dev/null || true' EXIT
sleep 1
reqs=$(python3 -c 'print(", ".join(f"\"p{i:02d}\"" for i in range(20)))')
printf '[[source]]\nname = "py"\ntype = "pypi"\nindex = "http://127.0.0.1:%s/simple/"\nrequirements = [%s]\npython = ["3.11"]\nversions = "all"\n' "$port" "$reqs" > ferry-out.toml
"$out" --state out keygen >/dev/null 2>&1; "$in" --state in trust add out/signing.pub --stream "$("$out" --state out status | awk '/^stream:/{print $2}')" >/dev/null
t0=$(date +%s.%N); "$out" --state out export --config ferry-out.toml --to m1 > last.log; t1=$(date +%s.%N)
head -1 last.log
"$in" --state in import m1 > last.log; head -1 last.log
full=$(du -sb m1 | cut -f1); first_export=$(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}')

echo "== 5 new versions upstream"
python3 gen.py up 2 "$mb"
new_files=0
for i in 0 1 2 3 4; do new_files=$((new_files + $(stat -c%s "up/packages/p0$i-1.1-py3-none-any.whl"))); done
t0=$(date +%s.%N); "$out" --state out export --config ferry-out.toml --to m2 > last.log; t1=$(date +%s.%N)
head -1 last.log
export2=$(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}')
delta=$(du -sb m2 | cut -f1)
t0=$(date +%s.%N); "$in" --state in import m2 > last.log; t1=$(date +%s.%N)
apply=$(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}')
rsync -a --delete --write-batch=rsync.batch up/ mirror-v1/ >/dev/null
rbatch=$(stat -c%s rsync.batch)

echo
printf 'first bundle (20 wheels): %s bytes, export %s s\n' "$full" "$first_export"
printf '%-44s %12s\n' "update: 5 new wheel versions" "bytes"
printf '%-44s %12s\n' "new files' size" "$new_files"
printf '%-44s %12s\n' "ferry delta bundle" "$delta"
printf '%-44s %12s\n' "rsync --write-batch of the upstream tree" "$rbatch"
printf 'delta / new files: %s; delta / rsync batch: %s\n' \
  "$(awk -v a="$delta" -v b="$new_files" 'BEGIN { printf "%.3f", a / b }')" \
  "$(awk -v a="$delta" -v b="$rbatch" 'BEGIN { printf "%.3f", a / b }')"
printf 'update export %s s; inside apply (ferry-in import) %s s\n' "$export2" "$apply"
