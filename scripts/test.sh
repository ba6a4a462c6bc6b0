#!/usr/bin/env bash
# Runs Ferry's whole test suite on a fresh Debian machine with a Rust toolchain:
# installs what the tests need, checks formatting and lints, builds, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in curl:curl zstd:zstd rsync:rsync skopeo:skopeo docker-registry:docker-registry \
    htpasswd:apache2-utils openssl:openssl xz:xz-utils ar:binutils \
    gpg:gnupg reprepro:reprepro rpmbuild:rpm rpmsign:rpm createrepo_c:createrepo-c dnf:dnf \
    python3:python3 pip3:python3-pip systemd-analyze:systemd npm:npm go:golang-go; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
# `dnf download` (tests/tests/yum.rs) is a plugin, not a command of its own.
dpkg -s dnf-plugins-core >/dev/null 2>&1 || need+=(dnf-plugins-core)
# `pip wheel --no-build-isolation` (recipe/tests/artifacts.rs) builds with the system's.
# golang.org/x/mod (tests/tests/go.rs builds its module zips and checksum database with it).
# klauspost/compress and klauspost/pgzip: the Go helper recipe/tests/kpflate/ (encoders 5
# and 7 against the real thing) is built against them in GOPATH mode.
# python3-venv: zlib-ng's tests (encoder 6) install the real zlib-ng from PyPI into a venv.
for pkg in python3-setuptools python3-wheel python3-venv xz-utils golang-golang-x-mod-dev \
    golang-github-klauspost-compress-dev golang-github-klauspost-pgzip-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
# moto: a local S3 server (PyPI) for `ferry-in publish` (tests/tests/publish.rs).
python3 -c 'import moto.server' 2>/dev/null || python3 -m pip install -q 'moto[server]' 2>/dev/null \
  || python3 -m pip install -q --break-system-packages 'moto[server]'

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo build"
cargo build --workspace --quiet
echo "== fuzz targets: 50,000 inputs each from a fixed seed (recipe 10,000, streamed 5,000: slow ones; scripts/fuzz.sh SECONDS for a campaign)"
FUZZ_RUNS=50000 FUZZ_RUNS_recipe=10000 FUZZ_RUNS_streamed=5000 FUZZ_SEED=1 bash scripts/fuzz.sh
echo "== cargo test"
# This machine reaches Debian's, PyPI's and crates.io's registries: run the tests that
# mirror real packages from them too.
export FERRY_TEST_REAL_DEBIAN=1 FERRY_TEST_PYPI=1 FERRY_TEST_CARGO=1
# Every tool above is installed and this runs as root, so a test that would
# skip (tests/lib.rs `skip`) fails instead; any skip still lands in the log.
export FERRY_REQUIRE_TOOLS=1
log=$(mktemp)
skips=$(mktemp)
export FERRY_SKIP_LOG="$skips"
set +e
t0=$SECONDS
# The end-to-end binary spends most of its time waiting on the processes it
# drives, the crates' own tests (recipe's encoder searches above all) keep
# the cores busy: the two run side by side, each with its own log.
cargo test --workspace --no-run --quiet >"$log" 2>&1
status=$?
if [ "$status" -eq 0 ]; then
  e2e_log=$(mktemp)
  # Four at a time: most of an end-to-end test is waiting on the agents,
  # clients and servers it drives (the diode tests, which must not be
  # starved, still run one at a time: tests/lib.rs `alone`).
  cargo test -p ferry-e2e --no-fail-fast -- --test-threads 4 >"$e2e_log" 2>&1 &
  e2e_pid=$!
  cargo test --workspace --exclude ferry-e2e --no-fail-fast >>"$log" 2>&1
  status=$?
  wait "$e2e_pid"
  e2e_status=$?
  cat "$e2e_log" >>"$log"
  rm -f "$e2e_log"
  [ "$status" -ne 0 ] || status=$e2e_status
fi
took=$((SECONDS - t0))
set -e
grep -E "^(test |failures:|---- )|panicked|^test result" "$log" || true
# Each failure's whole message (backtrace frames left out), so the log says why.
awk '/^---- .* stdout ----$/{f=1} /^failures:$/{f=0} f && !/^ +[0-9]+: |^ +at /' "$log"
# Sum the per-binary results into one closing line, and fail if any failed.
sum() { grep -E '^test result' "$log" | awk -v k="$1" '{for (i=1;i<NF;i++) if ($(i+1) ~ "^"k) s+=$i} END {print s+0}'; }
passed=$(sum passed); failed=$(sum failed); ignored=$(sum ignored)
# A test that skipped returned early and counts as passed in cargo's tally.
skipped_early=$(grep -c '^SKIP ' "$skips" || true)
cat "$skips"
rm -f "$skips"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  echo "cargo test did not run to completion:"; tail -40 "$log"; exit 1
fi
echo "cargo test took ${took} s (wall, builds included)"
echo "$((passed - skipped_early)) passed, ${failed} failed, $((ignored + skipped_early)) skipped"
[ "$failed" -eq 0 ]
