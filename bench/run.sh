#!/usr/bin/env bash
# caje vs bare actix-web vs nginx proxy_cache vs Varnish, same box, one run.  See BENCHMARKS.md.
#   bash bench/run.sh           15 s runs, 3 rounds, cold start over 100,000 entries
#   bash bench/run.sh --quick    5 s runs, 1 round,  cold start over  10,000 entries
#   bash bench/run.sh --cold-only   only the cold start (100,000 entries; with --quick 10,000)
# Environment: CAJE_RUST_LOG (default "warn": no per-request log line, like
# nginx with access_log off; the contender "caje-info" is a second caje at
# "info", its default, writing its log to a file; "caje-mem" a third whose
# memory tier holds bodies up to 16 MiB, for the 10 MiB hit); CAJE_BIN, a caje binary to
# measure instead of this tree's release build (an A/B of two commits: build
# each, run the script once per binary); BENCH_DURATION and BENCH_ROUNDS
# override the run length (s) and the number of rounds, BENCH_COLD_N the
# cold-start size.
set -euo pipefail

QUICK=0
COLD_ONLY=0
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    --cold-only) COLD_ONLY=1 ;; # only the cold-start scenario (at the chosen size)
    -h|--help) sed -n 2,8p "$0"; exit 0 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done
if [[ $QUICK == 1 ]]; then DUR=5; ROUNDS=1; COLD_N=10000; else DUR=15; ROUNDS=3; COLD_N=100000; fi
DUR=${BENCH_DURATION:-$DUR}
ROUNDS=${BENCH_ROUNDS:-$ROUNDS}
COLD_N=${BENCH_COLD_N:-$COLD_N}
SLOW_MS=200
CONNS=64
CAJE_RUST_LOG=${CAJE_RUST_LOG:-warn}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
TOOLS="$BENCH/tools.py"
T=$(mktemp -d /tmp/caje-bench.XXXXXX)
PIDS=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
  local p
  for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 20); do
    local alive=0
    for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill -9 "$p" 2>/dev/null || true; done
  # varnishd -F's child (cache worker) follows its manager; nginx workers follow their master.
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ install
need=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
command -v varnishd >/dev/null || [[ -x /usr/sbin/varnishd ]] || need+=(varnish)
command -v wrk >/dev/null || need+=(wrk)
command -v taskset >/dev/null || need+=(util-linux)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  before_nginx=$(pgrep -x nginx || true); before_varnish=$(pgrep -x varnishd || true)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # stop whatever the packages auto-started (only processes that were not there before)
  for p in $(pgrep -x nginx || true); do grep -qx "$p" <<<"$before_nginx" || kill "$p" 2>/dev/null || true; done
  for p in $(pgrep -x varnishd || true); do grep -qx "$p" <<<"$before_varnish" || kill "$p" 2>/dev/null || true; done
  command -v systemctl >/dev/null && systemctl disable --now nginx varnish >/dev/null 2>&1 || true
fi
export PATH="$PATH:/usr/sbin:/sbin"

if [[ -n ${CAJE_BIN:-} ]]; then
  CAJE="$CAJE_BIN"
else
  log "cargo build --release"
  (cd "$ROOT" && cargo build --release -q)
  CAJE="${CARGO_TARGET_DIR:-$ROOT/target}/release/caje"
fi
# the bare actix-web contender: the framework's own floor, for hits and for a
# relayed miss (examples/bench_bare.rs)
log "cargo build --release --example bench_bare"
(cd "$ROOT" && cargo build --release -q --example bench_bare)
BARE="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench_bare"

# -------------------------------------------------------------------- ports
read -r P_ORIGIN P_SLOW P_CAJE P_NGINX P_NGINXNL P_VARNISH P_CEIL P_COLD P_BARE P_CAJELOG P_CAJEMEM \
  <<<"$(python3 "$TOOLS" freeport 11)"
HOST=bench.local

# -------------------------------------------------------------------- files
mkdir -p "$T/www"
head -c 1024 /dev/urandom >"$T/www/1k"
head -c $((100 * 1024)) /dev/urandom >"$T/www/100k"
head -c $((10 * 1024 * 1024)) /dev/urandom >"$T/www/10m"
BODY1K=$(head -c 1024 /dev/zero | tr '\0' 'x')

nginx_common() { # $1 = dir
  cat <<EOF
user root;
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 8192; }
EOF
}
nginx_temps() {
  cat <<EOF
  client_body_temp_path $1/tmp-body;
  proxy_temp_path $1/tmp-proxy;
  fastcgi_temp_path $1/tmp-fcgi;
  uwsgi_temp_path $1/tmp-uwsgi;
  scgi_temp_path $1/tmp-scgi;
  access_log off;
  keepalive_requests 100000;
  default_type application/octet-stream;
EOF
}

# origin: static files (Cache-Control public, max-age=3600), /nostore, and /slow via the Python server
mkdir -p "$T/origin"
{
  nginx_common "$T/origin"
  echo "http {"
  nginx_temps "$T/origin"
  cat <<EOF
  sendfile on;
  upstream slow { server 127.0.0.1:$P_SLOW; keepalive 256; }
  server {
    listen 127.0.0.1:$P_ORIGIN backlog=4096;
    root $T/www;
    location / { add_header Cache-Control "public, max-age=3600"; }
    location = /nostore { alias $T/www/1k; add_header Cache-Control "no-store"; }
    location /slow { proxy_pass http://slow; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location = /count { proxy_pass http://slow; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
} >"$T/origin/nginx.conf"

# nginx proxy_cache contenders: lock on / lock off
mk_nginx_cache() { # name port lock
  local d="$T/$1"
  mkdir -p "$d/cache"
  {
    nginx_common "$d"
    echo "http {"
    nginx_temps "$d"
    cat <<EOF
  sendfile off;
  output_buffers 2 256k;
  proxy_cache_path $d/cache levels=1:2 keys_zone=c:64m max_size=4g inactive=1h use_temp_path=off;
  upstream origin { server 127.0.0.1:$P_ORIGIN; keepalive 64; }
  server {
    listen 127.0.0.1:$2 backlog=4096;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_cache c;
      proxy_cache_lock $3;
      proxy_cache_lock_timeout 10s;
      add_header X-Cache-Status \$upstream_cache_status;
    }
  }
}
EOF
  } >"$d/nginx.conf"
}
mk_nginx_cache nginx "$P_NGINX" on
mk_nginx_cache nginx-nolock "$P_NGINXNL" off

# ceiling: bare nginx, return 200 with a 1 KiB body
mkdir -p "$T/ceiling"
{
  nginx_common "$T/ceiling"
  echo "http {"
  nginx_temps "$T/ceiling"
  cat <<EOF
  sendfile off;
  server { listen 127.0.0.1:$P_CEIL backlog=4096; location / { return 200 "$BODY1K"; } }
}
EOF
} >"$T/ceiling/nginx.conf"

mk_caje() { # dir port [top-level settings]
  mkdir -p "$1"
  cat >"$1/caje.toml" <<EOF
listen = "127.0.0.1:$2"
cache_dir = "$1/cache"
database = "$1/manifest.db"
litefs = "off"
workers = 1
${3:-}
[[origin]]
host = "$HOST"
upstream = "http://127.0.0.1:$P_ORIGIN"
EOF
}
mk_caje "$T/caje" "$P_CAJE"
mk_caje "$T/cold" "$P_COLD"
mk_caje "$T/caje-info" "$P_CAJELOG"
# large bodies from the memory tier, as Varnish's malloc storage serves them
mk_caje "$T/caje-mem" "$P_CAJEMEM" $'memory_cache_size = "256 MiB"\nmemory_cache_max_object = "16 MiB"'

# ------------------------------------------------------------------- start
wait_port() { # port name
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  log "$2 did not open port $1"; for f in "$T"/*/error.log "$T"/*.log; do [[ -f $f ]] && tail -5 "$f" >&2; done
  exit 1
}
start_bg() { # logfile cmd...   (pinned to core 0)
  local lf=$1; shift
  taskset -c 0 "$@" >"$lf" 2>&1 &
  PIDS+=($!)
}

declare -A PID_OF # contender -> the process whose CPU time (its children's included) is reported
start_bg "$T/slow.log" python3 "$TOOLS" slow-origin "$P_SLOW" "$SLOW_MS"
for n in origin nginx nginx-nolock ceiling; do
  start_bg "$T/$n.log" nginx -p "$T/$n" -c "$T/$n/nginx.conf" -e "$T/$n/error.log"
  PID_OF[$n]=${PIDS[-1]}
done
mkdir -p "$T/varnish"
start_bg "$T/varnish.log" varnishd -F -a "127.0.0.1:$P_VARNISH" -b "127.0.0.1:$P_ORIGIN" \
  -s malloc,256m -n "$T/varnish" -p thread_pools=1
PID_OF[varnish]=${PIDS[-1]}
# bare relays /nostore to the origin with awc: the floor of a miss
start_bg "$T/bare.log" "$BARE" "127.0.0.1:$P_BARE" "$T/www" "http://127.0.0.1:$P_ORIGIN"
PID_OF[bare]=${PIDS[-1]}
start_caje() { # dir logfile [RUST_LOG]
  CAJE_ADMIN_TOKEN=bench RUST_LOG=${3:-$CAJE_RUST_LOG} start_bg "$2" "$CAJE" --config "$1/caje.toml"
}
start_caje "$T/caje" "$T/caje.log"
CAJE_PID=${PIDS[-1]}
PID_OF[caje]=$CAJE_PID
start_caje "$T/caje-info" "$T/caje-info.log" info
PID_OF[caje-info]=${PIDS[-1]}
start_caje "$T/caje-mem" "$T/caje-mem.log"
PID_OF[caje-mem]=${PIDS[-1]}
wait_port "$P_SLOW" slow-origin; wait_port "$P_ORIGIN" origin; wait_port "$P_NGINX" nginx
wait_port "$P_NGINXNL" nginx-nolock; wait_port "$P_CEIL" ceiling; wait_port "$P_VARNISH" varnish
wait_port "$P_CAJE" caje; wait_port "$P_BARE" bare; wait_port "$P_CAJELOG" caje-info; wait_port "$P_CAJEMEM" caje-mem
grep -q "caje listening on port $P_CAJE" "$T/caje.log" || { log "caje did not print its port"; cat "$T/caje.log" >&2; exit 1; }

port_of() {
  case $1 in
    caje) echo "$P_CAJE" ;; nginx) echo "$P_NGINX" ;; nginx-nolock) echo "$P_NGINXNL" ;;
    varnish) echo "$P_VARNISH" ;; ceiling) echo "$P_CEIL" ;; origin) echo "$P_ORIGIN" ;;
    bare) echo "$P_BARE" ;; caje-info) echo "$P_CAJELOG" ;; caje-mem) echo "$P_CAJEMEM" ;;
  esac
}

# ------------------------------------------------------------------ machine
GITREV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
GITDIRTY=$(cd "$ROOT" && git status --porcelain -- src Cargo.toml 2>/dev/null | wc -l)
NGINX_V=$(nginx -v 2>&1)
VARNISH_V=$(varnishd -V 2>&1 | head -1)
WRK_V=$(wrk -v 2>&1 | head -1 || true)
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "machine: $(nproc) cores, $CPU, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r)"
echo "versions: $NGINX_V | $VARNISH_V | $WRK_V | caje $GITREV$([[ $GITDIRTY != 0 ]] && echo ' (src modified)')"
echo "run: $0 $* — ${DUR}s runs, $ROUNDS round(s), wrk -t1 -c$CONNS pinned to core 1, servers pinned to core 0, cold start over $COLD_N entries, caje RUST_LOG=$CAJE_RUST_LOG"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
export GITREV NGINX_V VARNISH_V WRK_V CPU DUR ROUNDS COLD_N SLOW_MS CONNS QUICK CAJE_RUST_LOG
python3 - "$T/meta.json" "$*" <<'EOF'
import json, os, sys, platform, datetime
e = os.environ
json.dump({
  "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
  "command": "bash bench/run.sh " + sys.argv[2],
  "nproc": os.cpu_count(), "cpu": e["CPU"], "kernel": platform.release(),
  "nginx": e["NGINX_V"], "varnish": e["VARNISH_V"], "wrk": e["WRK_V"], "caje_git_rev": e["GITREV"],
  "duration_s": int(e["DUR"]), "rounds": int(e["ROUNDS"]), "connections": int(e["CONNS"]),
  "cold_start_entries": int(e["COLD_N"]), "slow_delay_ms": int(e["SLOW_MS"]), "quick": e["QUICK"] == "1",
  "caje_rust_log": e["CAJE_RUST_LOG"],
}, open(sys.argv[1], "w"), indent=2)
EOF

RAW="$T/raw.jsonl"
: >"$RAW"

# -------------------------------------------------------------------- warm
is_hit() { # contender headers-file
  case $1 in
    caje|caje-info|caje-mem) grep -qi '^cache-status:.*hit' "$2" ;;
    nginx|nginx-nolock) grep -qi '^x-cache-status: *hit' "$2" ;;
    varnish) grep -Eqi '^x-varnish: *[0-9]+ [0-9]+' "$2" ;;
    *) return 0 ;;
  esac
}
warm() { # contender path
  local port; port=$(port_of "$1")
  curl -s -o /dev/null -m 30 -H "Host: $HOST" "http://127.0.0.1:$port$2" || true
  for _ in $(seq 1 20); do
    curl -s -D "$T/h" -o /dev/null -m 30 -H "Host: $HOST" "http://127.0.0.1:$port$2" || true
    is_hit "$1" "$T/h" && return 0
    sleep 0.1
  done
  log "WARNING: $1 $2 not a hit after warming:"; cat "$T/h" >&2
  return 1
}
for c in caje nginx varnish; do
  for p in /1k /100k /10m; do warm "$c" "$p"; done
done
warm caje-info /1k
warm caje-mem /10m
# check the no-store path is a miss everywhere
for c in caje nginx varnish; do
  curl -s -o /dev/null -H "Host: $HOST" "http://127.0.0.1:$(port_of $c)/nostore"
  curl -s -D "$T/h" -o /dev/null -H "Host: $HOST" "http://127.0.0.1:$(port_of $c)/nostore"
  if is_hit "$c" "$T/h"; then log "WARNING: $c served /nostore from cache"; fi
done

# --------------------------------------------------------------------- wrk
run_wrk() { # scenario contender path round [wrk script]
  local port; port=$(port_of "$2")
  local pid=${PID_OF[$2]:-} script=()
  [[ -n ${5:-} ]] && script=(-s "$5")
  # Written back now, not during the run: a cold crawl leaves 80,000 new
  # files whose writeback (30 s later) fell in the next round's first runs.
  sync
  local cpu0; cpu0=$(python3 "$TOOLS" cputime "$pid")
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" --timeout 10s --latency -H "Host: $HOST" "${script[@]}" \
    "http://127.0.0.1:$port$3" >"$T/wrk.out" 2>&1 || true
  local cpu1; cpu1=$(python3 "$TOOLS" cputime "$pid")
  python3 "$TOOLS" wrkparse "$T/wrk.out" "$1" "$2" "$4" "$cpu0" "$cpu1" | tee -a "$RAW" | python3 -c '
import json,sys; d=json.loads(sys.stdin.read())
print("  %-13s %-9s r%d  %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  %8.1f MiB/s  %7.1f us cpu/req%s" % (d["scenario"], d["contender"], d["round"],
  d.get("rps",0), d.get("p50",0), d.get("p99",0), d.get("mib_s",0), d.get("cpu_us") or 0, ("  non2xx=%d" % d["non2xx"]) if d.get("non2xx") else ""))' >&2
  sleep 1
}

# paced: the 1 KiB hit at the same load for every contender, each
# connection waiting 2 ms between an answer and its next request (about
# 20,000 req/s in all, within every contender's reach). At full speed a
# faster server's p99 grows with its load, wrk's own queueing and the
# VM's stalls (the nginx ceiling's p99 is at times behind nginx
# proxy_cache's there); here the contenders' tails compare at one load.
printf 'function delay()\n  return 2\nend\n' >"$T/paced.lua"

# logging: caje (no line) and caje-info (a line per request) loaded at once,
# each by its own wrk with half the connections and a browser's User-Agent
# (logged), both servers on core 0. The scheduler shares the core between
# them, so a slow spell of the VM slows both sides of the ratio of their
# CPU a request; run one after the other that ratio swung by ±10%.
UA="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
log_pair() { # round
  local c cpu0=() cpu1=() i=0 wrks=()
  sync
  for c in caje caje-info; do cpu0+=("$(python3 "$TOOLS" cputime "${PID_OF[$c]}")"); done
  for c in caje caje-info; do
    taskset -c 1 wrk -t1 -c$((CONNS / 2)) -d"${DUR}s" --timeout 10s --latency -H "Host: $HOST" -H "User-Agent: $UA" \
      "http://127.0.0.1:$(port_of "$c")/1k" >"$T/wrk-pair-$c.out" 2>&1 &
    wrks+=($!)
  done
  wait "${wrks[@]}" || true
  for c in caje caje-info; do cpu1+=("$(python3 "$TOOLS" cputime "${PID_OF[$c]}")"); done
  for c in caje caje-info; do
    python3 "$TOOLS" wrkparse "$T/wrk-pair-$c.out" log-pair "$c" "$1" "${cpu0[$i]}" "${cpu1[$i]}" >>"$RAW"
    i=$((i + 1))
  done
  log "  log-pair r$1: $(python3 "$TOOLS" pairline "$RAW" "$1")"
  sleep 1
}

# cold crawl: every request a URL never asked before (storable), over
# kept-alive connections; the origin row asks it the same URLs directly
crawl_script() { # contender round -> script path
  local f="$T/crawl-$1-$2.lua"
  cat >"$f" <<EOF
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "/1k?crawl=$1-$2-" .. counter)
end
EOF
  echo "$f"
}

coalesce() { # contender round
  local port key; port=$(port_of "$1"); key="r=$1-$2-$RANDOM"
  local out; out=$(taskset -c 1 python3 "$TOOLS" coalesce "$port" "/slow?$key" 100 "$HOST")
  sleep 0.3
  local n; n=$(python3 "$TOOLS" count "$P_SLOW" "$key")
  python3 - "$out" "$n" "$1" "$2" <<'EOF' | tee -a "$RAW" >/dev/null
import json, sys
d = json.loads(sys.argv[1]); d.update(scenario="coalesce-slow", contender=sys.argv[3], round=int(sys.argv[4]), origin_requests=int(sys.argv[2]))
print(json.dumps(d))
EOF
  log "  coalesce-slow $1 r$2: origin requests $n, $out"
}

for r in $(seq 1 "$ROUNDS"); do
  [[ $COLD_ONLY == 1 ]] && break
  log "round $r/$ROUNDS"
  for c in caje bare caje-info nginx varnish ceiling; do run_wrk hit-1k "$c" /1k "$r"; done
  log_pair "$r"
  for c in caje bare nginx varnish ceiling; do run_wrk hit-1k-paced "$c" /1k "$r" "$T/paced.lua"; done
  for c in caje bare nginx varnish; do run_wrk hit-100k "$c" /100k "$r"; done
  for c in caje caje-mem bare nginx varnish; do run_wrk hit-10m "$c" /10m "$r"; done
  for c in caje bare nginx varnish origin; do run_wrk nostore-miss "$c" /nostore "$r"; done
  for c in caje origin; do run_wrk cold-crawl "$c" / "$r" "$(crawl_script "$c" "$r")"; done
  for c in caje nginx nginx-nolock varnish origin; do coalesce "$c" "$r"; done
done

# -------------------------------------------------------------- cold start
log "cold start: filling a fresh caje cache with $COLD_N entries"
start_caje "$T/cold" "$T/cold.log"
COLD_PID=${PIDS[-1]}
wait_port "$P_COLD" caje-cold
rss_empty=$(python3 "$TOOLS" rss "$COLD_PID")
cat >"$T/fill.lua" <<EOF
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "/1k?n=" .. (counter % $COLD_N))
end
EOF
taskset -c 1 wrk -t1 -c"$CONNS" -d300s --timeout 10s -s "$T/fill.lua" -H "Host: $HOST" \
  "http://127.0.0.1:$P_COLD/" >"$T/fill.out" 2>&1 &
WRK_PID=$!
PIDS+=("$WRK_PID")
entries=0
fill_start=$(date +%s)
for _ in $(seq 1 600); do # at most ~300 s
  entries=$(curl -s -m 5 -H 'Authorization: Bearer bench' "http://127.0.0.1:$P_COLD/_caje/metrics" |
    awk '/^caje_cache_entries /{print int($2)}')
  entries=${entries:-0}
  ((entries >= COLD_N)) && break
  kill -0 "$WRK_PID" 2>/dev/null || break
  sleep 0.5
done
kill "$WRK_PID" 2>/dev/null || true
wait "$WRK_PID" 2>/dev/null || true
log "  $entries entries after $(($(date +%s) - fill_start)) s"
sleep 1.5 # let the manifest batcher write its last rows
files=$(find "$T/cold/cache" -type f | wc -l)
kill "$COLD_PID"
for _ in $(seq 1 100); do kill -0 "$COLD_PID" 2>/dev/null || break; sleep 0.1; done
kill -9 "$COLD_PID" 2>/dev/null || true
# Restart 1 walks every shard (the snapshot the stop above wrote is
# removed); restart 2 starts from the index snapshot restart 1's graceful
# stop (SIGTERM) wrote.
for attempt in 1 2; do
  if ((attempt == 1)); then how=walk; contender=caje; rm -f "$T/cold/cache/index.snapshot"; else how=snapshot; contender=caje-snapshot; fi
  t0=$(python3 -c 'import time; print(time.time())')
  start_caje "$T/cold" "$T/cold-restart$attempt.log" info
  COLD_PID=${PIDS[-1]}
  out=$(python3 "$TOOLS" coldpoll "$P_COLD" "$HOST" "/1k?n=" "$COLD_N" "$t0" 60)
  rss=$(python3 "$TOOLS" rss "$COLD_PID")
  grep -q "index_from=\"$how\"" "$T/cold-restart$attempt.log" || log "  restart $attempt did not build its index by $how"
  log "  restart $attempt ($how): $out, RSS $rss KiB (empty cache: $rss_empty KiB)"
  python3 - "$out" "$entries" "$files" "$attempt" "$rss" "$rss_empty" "$contender" <<'EOF' >>"$RAW"
import json, sys
d = json.loads(sys.argv[1]); d.update(scenario="cold-start", contender=sys.argv[7], round=int(sys.argv[4]), entries=int(sys.argv[2]), files_in_cache_dir=int(sys.argv[3]))
d.update(rss_kib=int(sys.argv[5]), rss_empty_kib=int(sys.argv[6]))
d["rss_bytes_per_entry"] = (d["rss_kib"] - d["rss_empty_kib"]) * 1024 / max(d["entries"], 1)
print(json.dumps(d))
EOF
  kill "$COLD_PID"
  for _ in $(seq 1 100); do kill -0 "$COLD_PID" 2>/dev/null || break; sleep 0.1; done
done

# ------------------------------------------------------------------ report
[[ -f "$BENCH/.gitignore" ]] || printf 'results.json\n' >"$BENCH/.gitignore"
python3 "$TOOLS" report "$RAW" "$BENCH/results.json" "$T/meta.json"
