#!/usr/bin/env bash
# yum update delta: a repository of ~20 RPMs of a few MiB, then 5 new versions and
# `createrepo_c --update`. Prints the bytes of ferry's delta bundle against the new
# files' size and an `rsync --write-batch` of the same update, and the apply time.
#
#   tests/bench/yum.sh                         # 20 packages of 3 MiB
#   BENCH_YUM_N=40 BENCH_YUM_MB=2 tests/bench/yum.sh
#   BENCH_YUM_FRESH=1 tests/bench/yum.sh      # new versions share nothing with the old
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
n=${BENCH_YUM_N:-20}; mb=${BENCH_YUM_MB:-3}
# New versions share their payload with the old one except 64 KiB (a typical update);
# BENCH_YUM_FRESH=1 makes them all new random bytes.
similar=1.0; [ -n "${BENCH_YUM_FRESH:-}" ] && similar=""
dir=${BENCH_DIR:-/tmp/ferry-yum-bench}
for t in rpmbuild:rpm createrepo_c:createrepo-c rsync:rsync; do
  command -v "${t%%:*}" >/dev/null || { apt-get update -qq; apt-get install -y -qq "${t##*:}" >/dev/null; }
done
cargo build --release --quiet -p agent-outside -p agent-inside
out="$root/target/release/ferry-out"; in="$root/target/release/ferry-in"
rm -rf "$dir"; mkdir -p "$dir/repo/Packages" "$dir/work"; cd "$dir"
srv=""
trap 'kill $srv 2>/dev/null || true' EXIT

mkrpm() { # name version [old version: start from its payload, change 64 KiB in the middle]
  local spec="work/$1-$2.spec"
  if [ -n "${3:-}" ]; then
    cp "work/$1-$3.data" "work/$1-$2.data"
    head -c 65536 /dev/urandom | dd of="work/$1-$2.data" bs=65536 seek=$((mb * 8)) conv=notrunc status=none
  else
    head -c $((mb << 20)) /dev/urandom > "work/$1-$2.data"
  fi
  printf 'Name: %s\nVersion: %s\nRelease: 1\nSummary: bench\nLicense: MIT\nBuildArch: noarch\n%%description\nbench\n%%install\nmkdir -p %%{buildroot}/usr/share/%s\ncp %s %%{buildroot}/usr/share/%s/data\n%%files\n/usr/share/%s/data\n' \
    "$1" "$2" "$1" "$dir/work/$1-$2.data" "$1" "$1" > "$spec"
  rpmbuild -bb --define "_topdir $dir/work/rb" --define "_rpmdir $dir/repo/Packages" \
    --define "_build_id_links none" --define "__os_install_post %{nil}" \
    --define "_binary_payload w1.gzdio" "$spec" >/dev/null 2>&1
}
echo "== building $n packages of $mb MiB"
for i in $(seq 1 "$n"); do mkrpm "pkg$i" 1.0; done
createrepo_c --quiet repo
cp -a repo repo-v1
python3 -m http.server --bind 127.0.0.1 0 --directory repo > http.log 2>&1 & srv=$!
for _ in $(seq 50); do grep -q port http.log && break; sleep 0.1; done
port=$(sed -nE 's/.* port ([0-9]+) .*/\1/p' http.log | head -1)
printf '[[source]]\nname = "el"\ntype = "yum"\nbaseurl = "http://127.0.0.1:%s/"\n' "$port" > ferry-out.toml
"$out" --state out keygen >/dev/null 2>&1; "$in" --state in trust add out/signing.pub --stream "$("$out" --state out status | awk '/^stream:/{print $2}')" >/dev/null
"$out" --state out export --config ferry-out.toml --to m1 > last.log; head -1 last.log
"$in" --state in import m1 > last.log; head -1 last.log

echo "== 5 new versions${BENCH_YUM_FRESH:+ (fresh payloads)}, createrepo_c --update"
for i in 1 2 3 4 5; do mkrpm "pkg$i" 1.1 "$similar"; done
createrepo_c --quiet --update repo
new_files=$(comm -13 <(cd repo-v1 && find . -type f | sort) <(cd repo && find . -type f | sort) | (cd repo && xargs stat -c%s) | awk '{s+=$1} END {print s}')
t0=$(date +%s.%N)
"$out" --state out export --config ferry-out.toml --to m2 > last.log; t1=$(date +%s.%N)
cat last.log
bundle=$(du -sb m2 | cut -f1)
"$in" --state in import m2 > last.log; t2=$(date +%s.%N)
head -1 last.log
rsync -a --delete --write-batch=batch repo/ repo-v1/ >/dev/null
rsync_bytes=$(stat -c%s batch)
total=$(du -sb repo | cut -f1)
awk -v b="$bundle" -v nf="$new_files" -v r="$rsync_bytes" -v t="$total" -v t0="$t0" -v t1="$t1" -v t2="$t2" 'BEGIN {
  printf "repository now:          %10.1f MiB\n", t / 1048576
  printf "new files (rpms + repodata): %7.1f MiB\n", nf / 1048576
  printf "ferry delta bundle:      %10.1f MiB  (%.3f x new files)\n", b / 1048576, b / nf
  printf "rsync --write-batch:     %10.1f MiB  (%.3f x new files)\n", r / 1048576, r / nf
  printf "export time:             %10.2f s\n", t1 - t0
  printf "import (apply) time:     %10.2f s\n", t2 - t1
}'
