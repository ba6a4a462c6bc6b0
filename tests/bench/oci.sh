#!/usr/bin/env bash
# Container images: pull throughput from `ferry-in serve` against the same image
# pulled from Debian's docker-registry on this machine, and the bytes of a
# tag-bump delta against the full image size.
#
#   tests/bench/oci.sh                  # a 256 MiB layer plus small ones
#   BENCH_OCI_MB=64 tests/bench/oci.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
mb=${BENCH_OCI_MB:-256}
dir=${BENCH_DIR:-/tmp/ferry-oci-bench}
for t in skopeo docker-registry; do
  command -v "$t" >/dev/null || { apt-get update -qq; apt-get install -y -qq skopeo docker-registry >/dev/null; break; }
done
cargo build --release --quiet -p agent-outside -p agent-inside
out="$root/target/release/ferry-out"; in="$root/target/release/ferry-in"
rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/reg\nhttp:\n  addr: 127.0.0.1:%s\n' "$dir" "$port" > reg.yml
srv=""
docker-registry serve reg.yml >reg.log 2>&1 & reg=$!
trap 'kill $reg $srv 2>/dev/null || true' EXIT
sleep 1

# An image: one big layer (random) and one small layer; v2 changes only the small one.
make_image() { # tag salt
  local d="layout-$1"; mkdir -p "$d/blobs/sha256" "src-$1"
  put() { local h; h=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$d/blobs/sha256/$h"; echo "$h $(stat -c%s "$1")"; }
  [ -f big.tar ] || { mkdir -p big && head -c $((mb << 20)) /dev/urandom > big/data.bin && tar --sort=name --mtime=@0 -C big -cf big.tar .; }
  echo "$1 $2" > "src-$1/version.txt"; tar --sort=name --mtime=@0 -C "src-$1" -cf "small-$1.tar" .
  read -r bh bs < <(put big.tar); read -r sh ss < <(put "small-$1.tar")
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s"]},"config":{}}' "$bh" "$sh" > "cfg-$1.json"
  read -r ch cs < <(put "cfg-$1.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s},{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' "$ch" "$cs" "$bh" "$bs" "$sh" "$ss" > "man-$1.json"
  read -r mh ms < <(put "man-$1.json")
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' "$mh" "$ms" "$1" > "$d/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$d/oci-layout"
  skopeo copy -q --dest-tls-verify=false "oci:$d:$1" "docker://127.0.0.1:$port/bench/app:$1"
}
echo "== building and pushing a ${mb} MiB image to docker-registry"
make_image v1 1
printf '[[source]]\nname = "up"\ntype = "oci"\nregistry = "http://127.0.0.1:%s"\nimages = ["bench/app:v1"]\n' "$port" > ferry-out.toml
"$out" --state out keygen >/dev/null 2>&1; "$in" --state in trust add out/signing.pub --stream "$("$out" --state out status | awk '/^stream:/{print $2}')" >/dev/null
"$out" --state out export --config ferry-out.toml --to m1 > last.log; head -1 last.log
"$in" --state in import m1 > last.log; head -1 last.log
"$in" --state in serve --listen 127.0.0.1:0 2> serve.log & srv=$!
sleep 0.5; inside=$(sed -nE 's/.*http:\/\/([^ ]+).*/\1/p' serve.log | head -1)

pull() { # from dest
  rm -rf "$2"; local t0 t1; t0=$(date +%s.%N)
  skopeo copy -q --src-tls-verify=false "docker://$1/bench/app:v1" "dir:$2"; t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}'
}
image=$(du -sb layout-v1/blobs | cut -f1)
for i in 1 2 3; do r[$i]=$(pull "127.0.0.1:$port" "from-reg"); f[$i]=$(pull "$inside" "from-ferry"); done
best() { printf '%s\n' "$@" | sort -n | head -1; }
rt=$(best "${r[@]}"); ft=$(best "${f[@]}")
cmp -s <(cd from-reg && sha256sum * | sort) <(cd from-ferry && sha256sum * | sort) && echo "pulled blobs identical"

echo "== tag bump: v2 shares the big layer, changes a small one"
make_image v2 2
printf '[[source]]\nname = "up"\ntype = "oci"\nregistry = "http://127.0.0.1:%s"\nimages = ["bench/app:v1", "bench/app:v2"]\n' "$port" > ferry-out.toml
"$out" --state out export --config ferry-out.toml --to m2 > last.log; head -1 last.log
delta=$(du -sb m2 | cut -f1)

mbs() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / 1e6 / s }'; }
echo
printf '%-44s %10s %10s\n' "pull of bench/app:v1 with skopeo (best of 3)" "seconds" "MB/s"
printf '%-44s %10s %10s\n' "from docker-registry" "$rt" "$(mbs "$image" "$rt")"
printf '%-44s %10s %10s\n' "from ferry-in serve" "$ft" "$(mbs "$image" "$ft")"
printf 'throughput ratio ferry-in / docker-registry: %s\n' "$(awk -v a="$rt" -v b="$ft" 'BEGIN { printf "%.2f", a / b }')"
printf 'image %s bytes; tag-bump delta bundle %s bytes (%s of the image)\n' "$image" "$delta" "$(awk -v d="$delta" -v i="$image" 'BEGIN { printf "%.4f", d / i }')"
