#!/usr/bin/env bash
# Drives caje's HTML admin dashboard in a real headless Chromium.
#
#   bash scripts/browser-test.sh
#
# Builds caje, starts the demo origin and one caje node on ephemeral ports in
# a temp dir, stores two pages and empties the file cache (so the manifest
# lists them as "missing"), then runs scripts/browser/dashboard.mjs: log in,
# check the overview's charts and regions (and that nothing is loaded from
# elsewhere), check that "Clear manifest" asks first, check the tables, press
# "Populate now", wait for the pages to arrive, log out.
# Installs Debian's chromium (apt) and playwright-core (npm, pinned in
# scripts/browser/package-lock.json) when missing; never downloads a browser
# through playwright.
#
# Environment (all optional):
#   CHROMIUM          browser binary (default /usr/bin/chromium)
#   CAJE_SCREENSHOT   where to save the final dashboard PNG
#                     (default ${TMPDIR:-/tmp}/caje-browser-dashboard.png);
#                     the overview's charts go to <name>-overview.png beside it
#   KEEP_TMP=1        keep the temp dir (logs, config, cache) after the run
#
# Exits 0 only when every check passes; the last line is
# "browser: N passed, M failed".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BROWSER_DIR="$ROOT/scripts/browser"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
SCREENSHOT="${CAJE_SCREENSHOT:-${TMPDIR:-/tmp}/caje-browser-dashboard.png}"
WAIT_SECONDS=30
CURL=(curl -sS --max-time 10)

PASSED=0
FAILED=0
STARTED_AT=$SECONDS
TMP=""
PIDS=()

log() { printf 'browser-test: %s\n' "$*" >&2; }
ok() { PASSED=$((PASSED + 1)); printf 'ok - %s\n' "$*"; }
SUMMARY_DONE=""
summary() {
    SUMMARY_DONE=1
    printf 'browser checks took %d s\n' "$((SECONDS - STARTED_AT))"
    printf 'browser: %d passed, %d failed\n' "$PASSED" "$FAILED"
}

# A failed check: shows what the servers said, then stops.
fail() {
    FAILED=$((FAILED + 1))
    printf 'not ok - %s\n' "$*"
    stop "$*"
}

# Stops with a clear message (the failures are already counted).
stop() {
    if [[ -n "$TMP" ]]; then
        local f
        for f in "$TMP"/origin.out "$TMP"/origin.err "$TMP"/caje.out "$TMP"/caje.err; do
            [[ -s "$f" ]] || continue
            printf -- '--- last lines of %s ---\n' "$(basename "$f")" >&2
            # Without the terminal colours of caje's text logs.
            tail -n 15 "$f" | sed -e 's/\x1b\[[0-9;]*m//g' >&2
        done
    fi
    summary
    printf 'browser-test: FAILED: %s\n' "$*" >&2
    exit 1
}

cleanup() {
    local status=$?
    local pid
    # A second signal must not cut the cleanup short.
    trap '' INT TERM HUP
    if [[ -z "$SUMMARY_DONE" ]]; then
        # Stopped by set -e or a signal rather than by fail: say so.
        FAILED=$((FAILED + 1))
        if [[ -n "$STOPPED_BY" ]]; then
            printf 'not ok - interrupted by SIG%s\n' "$STOPPED_BY"
        else
            printf 'not ok - unexpected error (status %d) at line %s: %s\n' "$status" "$ERR_LINE" "$ERR_CMD"
        fi
        summary
        ((status != 0)) || status=1
    fi
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # Give each a moment to stop, then force it.
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "$TMP" && -d "$TMP" ]]; then
        if [[ "${KEEP_TMP:-}" == 1 ]]; then
            log "kept $TMP"
        else
            rm -rf "$TMP"
        fi
    fi
    exit "$status"
}
STOPPED_BY=""
ERR_LINE="?"
ERR_CMD="?"
trap 'ERR_LINE=$LINENO; ERR_CMD=$BASH_COMMAND' ERR
trap cleanup EXIT
trap 'STOPPED_BY=INT; exit 130' INT
trap 'STOPPED_BY=TERM; exit 143' TERM
trap 'STOPPED_BY=HUP; exit 129' HUP

# Waits (bounded) for a line matching $2 in file $1 while process $3 lives;
# sets LINE to the first match. (Not run in $(...), so fail stops the script.)
LINE=""
wait_for_line() {
    local file=$1 pattern=$2 pid=$3 what=$4
    local deadline=$((SECONDS + WAIT_SECONDS))
    while ((SECONDS < deadline)); do
        if LINE=$(grep -m1 -E "$pattern" "$file" 2>/dev/null); then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || fail "$what exited before announcing its port"
        sleep 0.1
    done
    fail "$what did not print /$pattern/ within $WAIT_SECONDS s"
}

# Reads a number out of JSON on stdin: json_get manifest.total
json_get() {
    node -e '
        let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
            let v = JSON.parse(s);
            for (const k of process.argv[1].split(".")) v = v == null ? undefined : v[k];
            process.stdout.write(v === undefined ? "" : String(v));
        });' "$1"
}

# --- tools -----------------------------------------------------------------

command -v cargo >/dev/null || fail "cargo is not on PATH"
command -v node >/dev/null || fail "node is not on PATH"
command -v npm >/dev/null || fail "npm is not on PATH"
command -v curl >/dev/null || fail "curl is not on PATH"

if [[ ! -x "$CHROMIUM" ]]; then
    [[ "$CHROMIUM" == /usr/bin/chromium ]] || fail "CHROMIUM=$CHROMIUM is not an executable"
    command -v apt-get >/dev/null || fail "$CHROMIUM is missing and there is no apt-get to install it"
    log "installing Debian's chromium with apt-get (once)"
    # Wait for another apt/dpkg run instead of failing on its lock.
    apt_get=(apt-get -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
    if ((EUID != 0)); then
        command -v sudo >/dev/null || fail "$CHROMIUM is missing; install it as root: apt-get install chromium"
        apt_get=(sudo "${apt_get[@]}")
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${apt_get[@]}" update -qq >&2 || fail "apt-get update failed"
    "${apt_get[@]}" install -y -qq --no-install-recommends chromium >&2 \
        || fail "apt-get install chromium failed"
    [[ -x "$CHROMIUM" ]] || fail "apt-get installed chromium but $CHROMIUM is missing"
fi

# playwright-core, pinned by package-lock.json; reinstalled when the pin moves.
wanted=$(node -p 'require(process.argv[1]).dependencies["playwright-core"]' "$BROWSER_DIR/package.json")
have=$(node -p 'try { require(process.argv[1]).version } catch { "" }' \
    "$BROWSER_DIR/node_modules/playwright-core/package.json")
if [[ "$have" != "$wanted" ]]; then
    log "installing playwright-core $wanted into scripts/browser/node_modules"
    # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: belt and braces, playwright-core has no
    # install script anyway.
    if [[ -f "$BROWSER_DIR/package-lock.json" ]]; then
        (cd "$BROWSER_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2) \
            || fail "npm ci in scripts/browser failed"
    else
        (cd "$BROWSER_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error >&2) \
            || fail "npm install in scripts/browser failed"
    fi
fi

log "building caje"
(cd "$ROOT" && cargo build --quiet --bin caje >&2) || fail "cargo build failed"
CAJE="$ROOT/target/debug/caje"
[[ -x "$CAJE" ]] || fail "$CAJE was not built"
ok "tools ready: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM (version unknown)"), playwright-core $wanted, $("$CAJE" --version)"

# --- servers ---------------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/caje-browser.XXXXXX")
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')

"$CAJE" demo-origin --listen 127.0.0.1:0 >"$TMP/origin.out" 2>"$TMP/origin.err" &
PIDS+=("$!")
wait_for_line "$TMP/origin.out" '^demo origin listening on port [0-9]+$' "${PIDS[0]}" "the demo origin"
ORIGIN_PORT=${LINE##* }

cat >"$TMP/caje.toml" <<EOF
listen = "127.0.0.1:0"
cache_dir = "$TMP/cache"
database = "$TMP/manifest.db"
litefs = "off"
# Only "Populate now" may fetch: a timed run before the click, or the
# manifest watch warming the pages it sees stored once the file cache is
# cleared (seen in CI: the watch saw the rows only after clear_fs), would
# leave nothing to queue.
populate_interval = "1h"
sync_interval = "0s"

[[origin]]
host = "localhost"
upstream = "http://127.0.0.1:$ORIGIN_PORT"
timeout = "10s"
EOF

CAJE_ADMIN_TOKEN="$TOKEN" "$CAJE" --config "$TMP/caje.toml" >"$TMP/caje.out" 2>"$TMP/caje.err" &
PIDS+=("$!")
wait_for_line "$TMP/caje.out" '^caje listening on port [0-9]+$' "${PIDS[1]}" "caje"
CAJE_PORT=${LINE##* }
BASE="http://127.0.0.1:$CAJE_PORT"
ok "demo origin on port $ORIGIN_PORT, caje on port $CAJE_PORT"

# --- state: two pages in the manifest, none in this node's file cache ------

for path in / /fast; do
    headers=$("${CURL[@]}" -o /dev/null -D - -H 'Host: localhost' "$BASE$path") \
        || fail "GET $path through caje failed"
    status=${headers%%$'\r'*}
    cache_status=$(printf '%s' "$headers" | tr -d '\r' | grep -i '^cache-status:' || true)
    [[ "$status" =~ ^HTTP/[0-9.]+\ 200 ]] || fail "GET $path through caje answered '$status'"
    [[ "$cache_status" =~ \;[[:space:]]*stored ]] \
        || fail "GET $path was not stored: '${cache_status:-no Cache-Status header}'"
done
ok "GET / and /fast through caje: 200, Cache-Status says stored"

# Hits too, for the overview's hit ratio.
for _ in 1 2; do
    cache_status=$("${CURL[@]}" -o /dev/null -D - -H 'Host: localhost' "$BASE/" | tr -d '\r' | grep -i '^cache-status:' || true)
    [[ "$cache_status" =~ \;[[:space:]]*hit ]] || fail "GET / again was not a hit: '${cache_status:-no Cache-Status header}'"
done
ok "GET / twice more: hits"

list_json() {
    "${CURL[@]}" -f -H 'Accept: application/json' -H "Authorization: Bearer $TOKEN" "$BASE/_caje/list"
}
deadline=$((SECONDS + WAIT_SECONDS))
total=""
while :; do
    total=$(list_json | json_get manifest.total) || total=""
    [[ "$total" == 2 ]] && break
    ((SECONDS < deadline)) || fail "the manifest lists ${total:-?} page(s), not 2, after $WAIT_SECONDS s"
    sleep 0.2
done
ok "the manifest lists 2 pages"

cleared=$("${CURL[@]}" -f -X POST -H "Authorization: Bearer $TOKEN" "$BASE/_caje/clear_fs") \
    || fail "POST /_caje/clear_fs failed"
state=$(list_json) || fail "GET /_caje/list (JSON) failed after clear_fs"
cache_total=$(printf '%s' "$state" | json_get cache.total)
manifest_total=$(printf '%s' "$state" | json_get manifest.total)
[[ "$cache_total" == 0 && "$manifest_total" == 2 ]] \
    || fail "after clear_fs ($cleared) expected cache 0 / manifest 2, got cache $cache_total / manifest $manifest_total"
ok "POST /_caje/clear_fs: file cache empty, manifest still lists 2 pages"

# --- the browser -----------------------------------------------------------

rm -f "$SCREENSHOT"
# In the background so that a signal to this script runs cleanup at once
# (which stops the browser too) instead of after the run.
CAJE_BASE="$BASE" CAJE_ADMIN_TOKEN="$TOKEN" CAJE_SCREENSHOT="$SCREENSHOT" CHROMIUM="$CHROMIUM" \
    CAJE_COUNTS_FILE="$TMP/dashboard.counts" \
    timeout --kill-after=5 120 node "$BROWSER_DIR/dashboard.mjs" &
PIDS+=("$!")
node_status=0
wait "$!" || node_status=$?
# "<passed> <failed>", written by dashboard.mjs as it finishes.
counts=""
[[ -s "$TMP/dashboard.counts" ]] && counts=$(<"$TMP/dashboard.counts")
if [[ "$counts" =~ ^([0-9]+)\ ([0-9]+)$ ]]; then
    PASSED=$((PASSED + BASH_REMATCH[1]))
    FAILED=$((FAILED + BASH_REMATCH[2]))
else
    counts=""
fi
if ((node_status != 0)); then
    ((node_status == 124 || node_status == 137)) && fail "dashboard.mjs took longer than 120 s"
    [[ -n "$counts" ]] || fail "dashboard.mjs exited with status $node_status before reporting"
    ((FAILED > 0)) || fail "dashboard.mjs exited with status $node_status but reported no failure"
    stop "the dashboard checks failed (see the 'not ok' lines above)"
fi
((FAILED == 0)) || fail "dashboard.mjs exited 0 but reported failures"
summary
