#!/usr/bin/env bash
# apt: the bytes of a delta export after a realistic upstream update (new
# versions of several packages) against the total size of the new files and
# against `rsync --write-batch` of the repository tree, and the apply time.
#
# A reprepro repository of BENCH_APT_PKGS (20) packages of BENCH_APT_MB (3) MiB
# each, signed with a throwaway gpg key and served by python's http.server;
# then BENCH_APT_NEW (5) of them get a new version.
#
#   tests/bench/apt.sh
#   BENCH_APT_PKGS=40 BENCH_APT_MB=1 tests/bench/apt.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
n=${BENCH_APT_PKGS:-20}; mb=${BENCH_APT_MB:-3}; upd=${BENCH_APT_NEW:-5}
dir=${BENCH_DIR:-/tmp/ferry-apt-bench}
for t in reprepro:reprepro gpg:gnupg rsync:rsync dpkg-deb:dpkg; do
  command -v "${t%%:*}" >/dev/null || { apt-get update -qq; apt-get install -y -qq "${t##*:}" >/dev/null; }
done
cargo build --release --quiet -p agent-outside -p agent-inside
out="$root/target/release/ferry-out"; in="$root/target/release/ferry-in"
rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
srv=""
trap 'kill $srv 2>/dev/null || true' EXIT

export GNUPGHOME="$dir/gnupg"; mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key "Bench <bench@example.org>" ed25519 sign never
fpr=$(gpg --with-colons --list-keys | awk -F: '/^fpr:/ {print $10; exit}')
gpg --export "$fpr" > upstream.gpg
mkdir -p repo/conf debs
printf 'Origin: Bench\nCodename: stable\nArchitectures: amd64\nComponents: main\nSignWith: %s\n' "$fpr" > repo/conf/distributions

deb() { # name version
  local b="build/$1-$2"; mkdir -p "$b/DEBIAN" "$b/usr/share/$1"
  printf 'Package: %s\nVersion: %s\nArchitecture: amd64\nMaintainer: Bench <bench@example.org>\nSection: misc\nPriority: optional\nDescription: bench package\n' "$1" "$2" > "$b/DEBIAN/control"
  # Half random, half text-like: new versions share nothing byte-wise with old ones.
  head -c $((mb << 19)) /dev/urandom > "$b/usr/share/$1/blob.bin"
  head -c $((mb << 19)) /dev/urandom | base64 > "$b/usr/share/$1/text.txt"
  dpkg-deb --root-owner-group -Zxz --build "$b" "debs/$1_$2_amd64.deb" >/dev/null
  reprepro --silent -b repo includedeb stable "debs/$1_$2_amd64.deb"
}
echo "== building $n packages of ~${mb} MiB"
for i in $(seq 1 "$n"); do deb "pkg$i" 1.0; done
python3 -u -m http.server --bind 127.0.0.1 0 --directory repo > http.log 2>/dev/null & srv=$!
for _ in $(seq 50); do grep -q port http.log && break; sleep 0.1; done
port=$(sed -nE 's/.* port ([0-9]+).*/\1/p' http.log | head -1)
printf '[[source]]\nname = "deb"\ntype = "apt"\nurl = "http://127.0.0.1:%s"\nsuites = ["stable"]\ncomponents = ["main"]\narchitectures = ["amd64"]\nkeyring = "%s/upstream.gpg"\n' "$port" "$dir" > ferry-out.toml
"$out" --state out keygen >/dev/null 2>&1; "$in" --state in trust add out/signing.pub --stream "$("$out" --state out status | awk '/^stream:/{print $2}')" >/dev/null
"$out" --state out export --config ferry-out.toml --to m1 >/dev/null
"$in" --state in import m1 >/dev/null
cp -a repo repo-v1

echo "== upstream update: new versions of $upd packages"
for i in $(seq 1 "$upd"); do deb "pkg$i" 2.0; done
new_files=0
for i in $(seq 1 "$upd"); do new_files=$((new_files + $(stat -c%s "debs/pkg${i}_2.0_amd64.deb"))); done
idx=$(find repo/dists -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
t0=$(date +%s.%N)
"$out" --state out export --config ferry-out.toml --to m2 >/dev/null
t1=$(date +%s.%N)
delta=$(du -sb m2 | cut -f1)
rsync -a --delete --exclude=/db --exclude=/conf --write-batch=batch repo/ repo-v1/ >/dev/null
rs=$(stat -c%s batch)
t2=$(date +%s.%N)
"$in" --state in import m2 >/dev/null
t3=$(date +%s.%N)
repo_total=$(du -sb --exclude=db --exclude=conf repo | cut -f1)

mib() { awk -v b="$1" 'BEGIN {printf "%.2f MiB", b / 1048576}'; }
echo "repository now:             $(mib "$repo_total") ($n packages)"
echo "new debs (full size):       $(mib "$new_files") ($upd packages)"
echo "indices and release files:  $(mib "$idx")"
echo "ferry delta bundle:         $(mib "$delta")  ($(awk -v a="$delta" -v b="$((new_files + idx))" 'BEGIN {printf "%.3f", a / b}')x new files + indices)"
echo "rsync --write-batch:        $(mib "$rs")  ($(awk -v a="$delta" -v b="$rs" 'BEGIN {printf "%.3f", a / b}')x ferry/rsync)"
echo "export time:                $(echo "$t0 $t1" | awk '{printf "%.2f s", $2 - $1}')"
echo "apply (import) time:        $(echo "$t2 $t3" | awk '{printf "%.2f s", $2 - $1}')"
