# Shared by the ecosystem benchmarks (go.sh, npm.sh): source it from the
# repository root after setting `profile` (release or debug).
#
#   bench_build                 builds ferry-out and ferry-in; sets $out and $in
#   bench_trust                 keygen outside, trust its key inside (states out/ and in/)
#   bench_export MEDIA          exports ferry-out.toml to MEDIA, imports it; sets
#                               $bytes (bytes on media) and $secs (export time)
#   bench_serve                 starts `ferry-in serve` on a free port; sets $addr,
#                               stops it on exit (with any pids in $bench_pids)
#   bench_time VAR CMD...       runs CMD, sets VAR to its wall-clock seconds (fails if CMD fails)

bench_build() {
  if [ "$profile" = release ]; then
    cargo build --release --quiet -p agent-outside -p agent-inside
  else
    cargo build --quiet -p agent-outside -p agent-inside
  fi
  out="$(pwd)/target/$profile/ferry-out"; in="$(pwd)/target/$profile/ferry-in"
}

bench_trust() {
  "$out" --state out keygen >/dev/null 2>&1
  "$in" --state in trust add out/signing.pub \
    --stream "$("$out" --state out status | awk '/^stream:/{print $2}')" >/dev/null
}

bench_time() {
  local var=$1 t0 t1
  shift
  t0=$(date +%s.%N)
  "$@" || return 1
  t1=$(date +%s.%N)
  printf -v "$var" '%s' "$(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}')"
}

bench_export() {
  bench_time secs "$out" --state out export --config ferry-out.toml --to "$1" > last.log
  head -4 last.log
  bytes=$(du -sb "$1" | cut -f1)
  "$in" --state in import "$1" > last.log
}

bench_pids=""
bench_serve() {
  "$in" --state in serve --listen 127.0.0.1:0 2> serve.log & bench_pids="$bench_pids $!"
  trap 'kill $bench_pids 2>/dev/null || true' EXIT
  for _ in $(seq 50); do grep -q http:// serve.log 2>/dev/null && break; sleep 0.1; done
  addr=$(grep -o 'http://[0-9.:]*' serve.log | head -1)
}
