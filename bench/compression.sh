#!/usr/bin/env bash
# Compression at the edge on a real static site (the Rust book installed
# with the toolchain's docs, or SITE=<dir>): nginx serves its files as the
# origin (max-age=3600, no compression of its own), one caje in front with
# two hosts, on.test (compress = true, the default) and off.test
# (compress = false). Prints the bytes a browser receives through each, and
# the hit throughput (wrk, every file in turn) with compression on and off.
# See BENCHMARKS.md.   DUR=<seconds> per wrk run (default 10); ROUNDS (2);
# MEMORY, caje's memory_cache_size (256 MiB); CAJE_BIN.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/bench/compression.py"
SITE=${SITE:-$(ls -d ~/.rustup/toolchains/*/share/doc/rust/html/book 2>/dev/null | head -1)}
[[ -d $SITE ]] || { echo "no site: set SITE=<a directory of HTML/CSS/JS>" >&2; exit 2; }
DUR=${DUR:-10}
ROUNDS=${ROUNDS:-2}
MEMORY=${MEMORY:-256 MiB}
BROWSER="gzip, deflate, br, zstd"
T=$(mktemp -d /tmp/caje-compress.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [[ -n $p ]] && kill "$p" 2>/dev/null || true; done; rm -rf "$T"; }
trap cleanup EXIT
export PATH="$PATH:/usr/sbin:/sbin"

if [[ -n ${CAJE_BIN:-} ]]; then CAJE=$CAJE_BIN; else
  (cd "$ROOT" && cargo build --release -q); CAJE="$ROOT/target/release/caje"; fi
read -r P_ORIGIN P_CAJE <<<"$(python3 "$ROOT/bench/tools.py" freeport 2)"
# A copy nginx's workers may read (the toolchain lives under a private home).
cp -r "$SITE" "$T/site"; chmod -R a+rX "$T"; SITE_SRC=$SITE; SITE="$T/site"

cat >"$T/nginx.conf" <<NGINX
worker_processes 1; daemon off; pid $T/nginx.pid; error_log $T/nginx.err;
events {}
http {
  include /etc/nginx/mime.types; access_log off; gzip off;
  server { listen 127.0.0.1:$P_ORIGIN; root $SITE; add_header Cache-Control "max-age=3600"; }
}
NGINX
cat >"$T/caje.toml" <<TOML
listen = "127.0.0.1:$P_CAJE"
cache_dir = "$T/cache"
database = "$T/manifest.db"
litefs = "off"
workers = 1
# Room for every coding of every file: the throughput compared is that of
# memory-tier hits, not of a tier too small for the set (see BENCHMARKS.md).
memory_cache_size = "$MEMORY"
[[origin]]
host = "on.test"
upstream = "http://127.0.0.1:$P_ORIGIN"
[[origin]]
host = "off.test"
upstream = "http://127.0.0.1:$P_ORIGIN"
compress = false
TOML
nginx -c "$T/nginx.conf" >"$T/nginx.log" 2>&1 & PIDS+=($!)
CAJE_ADMIN_TOKEN=bench RUST_LOG=warn "$CAJE" --config "$T/caje.toml" >"$T/caje.log" 2>&1 & PIDS+=($!)
for p in $P_ORIGIN $P_CAJE; do
  for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.05; done
done

python3 "$PY" paths "$SITE" >"$T/paths"
N=$(wc -l <"$T/paths")
echo "site: $SITE_SRC ($N files, $(du -sh "$SITE" | cut -f1))"
echo
echo "| host, Accept-Encoding | pass | files | bytes received | codings | hits | seconds |"
echo "|---|---|---|---|---|---|---|"
row() { # host ae pass
  local j; j=$(python3 "$PY" fetch "$P_CAJE" "$1" "$2" "$T/paths" "$SITE")
  python3 -c "import json,sys; t=json.loads(sys.argv[1]); print(f\"| $1, \\\"$2\\\" | $3 | {t['files']} | {t['bytes']:,} of {t['identity_bytes']:,} | {t['by_coding']} | {t['hits']} | {t['seconds']} |\")" "$j"
}
row off.test "$BROWSER" "miss"
row off.test "$BROWSER" "hit"
for ae in "$BROWSER" "zstd, gzip" "gzip" ""; do
  row on.test "$ae" "first"
  row on.test "$ae" "again"
done
echo
echo "caje's cache after both hosts: $(du -sh "$T/cache" | cut -f1)"
echo
echo "| hits, every file in turn ($DUR s, 16 connections, 1 caje worker, memory tier $MEMORY) | requests/s | transfer/s |"
echo "|---|---|---|"
SPECS=()
for _ in $(seq 1 "$ROUNDS"); do SPECS+=("off.test|$BROWSER" "on.test|$BROWSER" "on.test|gzip" "on.test|"); done
for spec in "${SPECS[@]}"; do
  host=${spec%%|*}; ae=${spec#*|}
  python3 "$PY" lua "$T/paths" "$host" "$ae" "$T/cycle.lua"
  out=$(wrk -t 1 -c 16 -d "${DUR}s" -s "$T/cycle.lua" "http://127.0.0.1:$P_CAJE/" 2>&1)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  tps=$(awk '/Transfer\/sec/ {print $2}' <<<"$out")
  echo "| $host, \"$ae\" | $rps | $tps |"
done
