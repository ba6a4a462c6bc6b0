#!/usr/bin/env bash
# Go module proxies: a go.sum of a few hundred modules carried exactly, then a
# go.sum update; the bundle bytes of both exports, and the time `go mod
# download` takes from ferry-in against the same download from a local copy of
# upstream (a file:// GOPROXY), each with a fresh module cache.
#
#   tests/bench/go.sh                       # release binaries, up to 300 modules
#   BENCH_PROFILE=debug BENCH_GO_MODULES=100 tests/bench/go.sh
#
# There is no network to proxy.golang.org here, so upstream is a stand-in:
# each module is one package directory of Go's own source tree
# (/usr/lib/go-1.19/src/<pkg>, its non-test .go files: real code of real
# sizes), zipped by golang.org/x/mod/zip (tests/go-helper, the go command's
# own zip code) into a GOPROXY tree served by python3 -m http.server. The
# update moves every tenth module to a v1.1.0 with one comment line added.
# Needs golang-go and golang-golang-x-mod-dev.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
profile=${BENCH_PROFILE:-release}
n=${BENCH_GO_MODULES:-300}
dir=${BENCH_DIR:-/tmp/ferry-go-bench}
goroot_src=$(go env GOROOT)/src
. tests/bench/lib.sh
bench_build
rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
export GOFLAGS= GOTOOLCHAIN=local GONOSUMDB= GOPRIVATE= GONOPROXY= GO111MODULE=on
mkdir helper && cp "$root/tests/go-helper/main.go" helper/
(cd helper && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$dir/gocache-helper" go build -o helper main.go)
helper="$dir/helper/helper"

# The modules: the first $n package directories with non-test .go files.
mapfile -t pkgs < <(cd "$goroot_src" && find . -name '*.go' ! -name '*_test.go' ! -path '*/testdata/*' \
  ! -path './cmd/*' ! -path '*/vendor/*' -printf '%h\n' | sed 's|^\./||' | sort -u | head -n "$n")
n=${#pkgs[@]}   # Go 1.19's tree has 232 such directories
publish() { # $1 pkg, $2 version, $3 extra line or empty
  local m="example.com/std/$1" src="src/$1@$2"
  mkdir -p "$src"
  find "$goroot_src/$1" -maxdepth 1 -name '*.go' ! -name '*_test.go' -exec cp {} "$src/" \;
  printf 'module %s\n\ngo 1.19\n' "$m" > "$src/go.mod"
  [ -n "$3" ] && echo "$3" >> "$(ls "$src"/*.go | head -1)"
  "$helper" pack "$dir/up" "$m" "$2" "$src"
}
app() { # $1 dir, $2 "update" or empty: a module requiring every module, and its go.sum
  mkdir -p "$1"; printf 'module example.com/app\n\ngo 1.19\n\nrequire (\n' > "$1/go.mod"; : > "$1/go.sum"
  local i=0
  for p in "${pkgs[@]}"; do
    local v=v1.0.0; [ -n "$2" ] && [ $((i % 10)) -eq 0 ] && v=v1.1.0
    printf '\texample.com/std/%s %s\n' "$p" "$v" >> "$1/go.mod"
    "$helper" sum "$dir/up" "example.com/std/$p" "$v" >> "$1/go.sum"
    i=$((i + 1))
  done
  echo ')' >> "$1/go.mod"
}
for p in "${pkgs[@]}"; do publish "$p" v1.0.0 ""; done
app before ""
i=0
for p in "${pkgs[@]}"; do
  [ $((i % 10)) -eq 0 ] && publish "$p" v1.1.0 "// updated"
  i=$((i + 1))
done
app after update
echo "== $n modules ($(du -sb up | cut -f1) bytes of proxy tree); the update moves $(( (n + 9) / 10 )) to v1.1.0"

python3 -m http.server --bind 127.0.0.1 0 --directory up > http.log 2>&1 & bench_pids=$!
trap 'kill $bench_pids 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q 'port' http.log 2>/dev/null && break; sleep 0.1; done
up_url=$(grep -o 'http://[0-9.:]*' http.log | head -1)
config() {
  printf '[[source]]\nname = "gomods"\ntype = "go"\nproxy = "%s"\nsumdb = "off"\ngosum = ["%s"]\n' \
    "$up_url" "$dir/$1/go.sum" > ferry-out.toml
}
bench_trust
config before; bench_export m1; first=$bytes; first_t=$secs
config after; bench_export m2; delta=$bytes; delta_t=$secs
bench_serve
download() { # $1 GOPROXY, $2 label
  rm -rf "modcache-$2"
  (cd after && GOPROXY="$1" GOSUMDB=off GOMODCACHE="$dir/modcache-$2" GOCACHE="$dir/gocache" \
    go mod download) || return 1
  chmod -R u+w "modcache-$2"
}
bench_time from_in download "$addr/go/gomods/" in || { echo "go mod download from ferry-in failed" >&2; exit 1; }
bench_time from_up download "file://$dir/up" up || { echo "go mod download from upstream failed" >&2; exit 1; }

echo
printf 'first export (%s modules): %s bytes on media, %s s\n' "$n" "$first" "$first_t"
printf 'delta export (%s modules moved): %s bytes on media, %s s\n' "$(( (n + 9) / 10 ))" "$delta" "$delta_t"
printf 'go mod download of the updated go.sum: %s s from ferry-in, %s s from a file:// copy of upstream\n' \
  "$from_in" "$from_up"
