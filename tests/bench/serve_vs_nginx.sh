#!/usr/bin/env bash
# Serve throughput (issue 15): `ferry-in serve` and nginx side by side on the
# same generation, GETs of random small files of a scale.sh tree (wrk, keep-alive).
#
#   tests/bench/serve_vs_nginx.sh STATE [FILES]
#
# STATE is an inside state a scale.sh run left (SCALE_DIR/in); FILES the number
# of files of its tree (default 200000). Environment: FERRY_IN (default
# target/release/ferry-in), SERVE_SECS (default 10), SERVE_CONNS (default 16).
# Prints requests/s, transfer/s and the server's CPU time a request of each,
# after a warm-up pass of the same length (the page cache for both). serve
# checks each file's SHA-256 the first time it sends it: with FILES at the
# tree's size most files of the timed pass are sent for the first time (the
# warm-up reaches a few percent of 200,000), so it measures first sends; a
# FILES of 10000 (the first 10,000 files) measures files already checked. nginx serves the
# generation written out by `ferry-in export-tree` (hard links to the objects;
# a generation of an older ferry-in: its own tree).
set -Eeuo pipefail
STATE=${1:?usage: serve_vs_nginx.sh STATE [FILES]}
FILES=${2:-200000}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FERRY_IN=${FERRY_IN:-$SCRIPT_DIR/../../target/release/ferry-in}
SECS=${SERVE_SECS:-10}
CONNS=${SERVE_CONNS:-16}
for t in nginx wrk; do
    command -v $t >/dev/null || { echo "serve_vs_nginx.sh: needs $t (apt-get install nginx wrk)" >&2; exit 1; }
done
WORK=$(mktemp -d /tmp/ferry-serve-bench.XXXXXX)
FERRY_PORT=18081 NGINX_PORT=18082
if [[ -d $STATE/store/current/files ]]; then
    ROOT=$(readlink -f "$STATE/store/current")/files
else
    "$FERRY_IN" --state "$STATE" export-tree "$WORK/tree" >/dev/null
    ROOT=$WORK/tree/files
fi
cat >"$WORK/nginx.conf" <<CONF
user root;
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/tmp;
    proxy_temp_path $WORK/tmp; fastcgi_temp_path $WORK/tmp; uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;
    server { listen 127.0.0.1:$NGINX_PORT; root $ROOT; }
}
CONF
mkdir -p "$WORK/tmp"
cat >"$WORK/random.lua" <<LUA
math.randomseed(42)
request = function()
  local i = math.random(0, $FILES - 1)
  return wrk.format("GET", string.format(prefix .. "/mirror/d%04d/f%07d.txt", math.floor(i / 1000), i))
end
LUA
"$FERRY_IN" --state "$STATE" serve --listen "127.0.0.1:$FERRY_PORT" >"$WORK/serve.log" 2>&1 &
FERRY_PID=$!
nginx -c "$WORK/nginx.conf"
cleanup() {
    kill "$FERRY_PID" 2>/dev/null || true
    [[ -f $WORK/nginx.pid ]] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    sleep 0.5; rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$FERRY_PORT/healthz" >/dev/null && break; sleep 0.2; done
# CPU seconds (user + system) the server's processes used so far: the figure
# to compare on a loaded machine, where requests/s mostly measures the load.
cpu_of() { # PID...
    local t=0 p
    for p in "$@"; do
        t=$(( t + $(awk '{print $14 + $15}' "/proc/$p/stat") ))
    done
    awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", t / hz}'
}
one() { # NAME URL-PREFIX PORT PID...
    local name=$1 prefix=$2 port=$3 lua=$WORK/$1.lua out c0 c1
    shift 3
    sed "s|prefix ..|\"$prefix\" ..|" "$WORK/random.lua" >"$lua"
    wrk -t2 -c"$CONNS" -d"$SECS"s -s "$lua" "http://127.0.0.1:$port" >/dev/null  # warm-up
    c0=$(cpu_of "$@")
    out=$(wrk -t2 -c"$CONNS" -d"$SECS"s -s "$lua" "http://127.0.0.1:$port")
    c1=$(cpu_of "$@")
    awk -v n="$name" -v cpu="$(awk -v a="$c0" -v b="$c1" 'BEGIN{print b - a}')" '
        /Requests\/sec/ {r=$2} /Transfer\/sec/ {t=$2} /Non-2xx/ {bad=$NF}
        /requests in/ {reqs=$1}
        END {printf "%-8s %10s req/s %10s/s  server CPU %.2f s = %.1f us a request%s\n",
             n, r, t, cpu, reqs ? cpu * 1e6 / reqs : 0, bad ? "  NON-2xx: " bad : ""}' <<<"$out"
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $CONNS connections, ${SECS}s, random files of $FILES"
one ferry /files 18081 "$FERRY_PID"
one nginx "" 18082 $(pgrep -P "$(cat "$WORK/nginx.pid")")
