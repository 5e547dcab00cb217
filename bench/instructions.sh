#!/usr/bin/env bash
# User-space instructions a request, counted by callgrind: caje against bare
# actix-web for a 1 KiB hit and a no-store miss (bare relays it with awc),
# and caje's hit again with its access line on (`caje+log`).
# Requests go one after another over one kept-alive connection, so the
# figure is the same from run to run on a noisy machine, where CPU time is
# not. It leaves out the kernel (the same sends and receives for both) and
# says nothing of concurrency: a step, not a benchmark (see BENCHMARKS.md).
#   bash bench/instructions.sh          2,000 requests a scenario
# Environment: CAJE_BIN (default: this tree's release build, built), BARE_BIN
# (default: its bench_bare example, built), INSTR_N (requests a scenario).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${INSTR_N:-2000}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
if [[ -z ${CAJE_BIN:-} ]]; then
  (cd "$ROOT" && cargo build --release)
  CAJE_BIN=$ROOT/target/release/caje
fi
if [[ -z ${BARE_BIN:-} ]]; then
  (cd "$ROOT" && cargo build --release --example bench_bare)
  BARE_BIN=$ROOT/target/release/examples/bench_bare
fi
T=$(mktemp -d /tmp/caje-instr.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT


port() { python3 "$ROOT/bench/tools.py" freeport 1; }

# The origin: nginx serving the bodies, /nostore marked no-store (bench_bare
# reads all three bodies at start, though only 1k is asked for here).
mkdir -p "$T/www" "$T/origin"
head -c 1024 /dev/urandom >"$T/www/1k"
head -c 102400 /dev/urandom >"$T/www/100k"
head -c 10485760 /dev/urandom >"$T/www/10m"
ORIGIN_PORT=$(port)
cat >"$T/origin/nginx.conf" <<CONF
user root; worker_processes 1; daemon off; pid $T/origin/nginx.pid; error_log $T/origin/error.log warn;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $T/origin/b; proxy_temp_path $T/origin/p;
  fastcgi_temp_path $T/origin/f; uwsgi_temp_path $T/origin/u; scgi_temp_path $T/origin/s;
  server { listen 127.0.0.1:$ORIGIN_PORT; root $T/www;
    location / { add_header Cache-Control "public, max-age=3600"; }
    location = /nostore { alias $T/www/1k; add_header Cache-Control "no-store"; } } }
CONF
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
"$NGINX" -p "$T/origin" -c "$T/origin/nginx.conf" -e "$T/origin/error.log" &
PIDS+=($!)

# count NAME PATH COMMAND...: starts COMMAND under callgrind on $PORT, warms
# PATH, then counts N requests for it.
count() {
  local name=$1 path=$2; shift 2
  valgrind --tool=callgrind --callgrind-out-file="$T/$name.out" "$@" >"$T/$name.log" 2>&1 &
  local pid=$!
  PIDS+=($pid)
  for _ in $(seq 1 120); do
    curl -s -o /dev/null -H 'Host: bench.local' "http://127.0.0.1:$PORT$path" && break
    sleep 0.5
  done
  for _ in 1 2 3 4 5; do curl -s -o /dev/null -H 'Host: bench.local' "http://127.0.0.1:$PORT$path"; done
  callgrind_control -z "$pid" >/dev/null 2>&1
  python3 "$ROOT/bench/tools.py" sequential "$PORT" "$path" "$N"
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local total
  total=$(awk '/^summary:/{print $2; exit}' "$T/$name.out.1")
  printf '%-14s %-8s %8d\n' "$path" "$name" $((total / N))
}

printf '%-14s %-8s %8s\n' scenario contender "instr/req"
for path in /1k /nostore; do
  PORT=$(port)
  cat >"$T/caje.toml" <<CONF
listen = "127.0.0.1:$PORT"
cache_dir = "$T/cache-$PORT"
database = "$T/manifest-$PORT.db"
litefs = "off"
workers = 1
[[origin]]
host = "bench.local"
upstream = "http://127.0.0.1:$ORIGIN_PORT"
CONF
  CAJE_ADMIN_TOKEN=instructions RUST_LOG=warn count caje "$path" "$CAJE_BIN" --config "$T/caje.toml"
  if [[ $path == /1k ]]; then
    # The same hit with the default access line: its cost is the difference.
    CAJE_ADMIN_TOKEN=instructions RUST_LOG=info count caje+log "$path" "$CAJE_BIN" --config "$T/caje.toml"
  fi
  PORT=$(port)
  count bare "$path" "$BARE_BIN" "127.0.0.1:$PORT" "$T/www" "http://127.0.0.1:$ORIGIN_PORT"
done
