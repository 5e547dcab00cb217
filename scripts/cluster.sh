#!/usr/bin/env bash
# A local three-node caje cluster, to watch a page spread between nodes.
#
#   scripts/cluster.sh              # origin on :3000, nodes A, B, C on :3001-3003
#   CAJE_CLUSTER_PORT=4000 scripts/cluster.sh   # origin on :4000, nodes on :4001-4003
#
# It builds caje in release mode, then starts the demo's slow origin and three
# caje nodes in front of it. Each node has its own cache directory; all three
# open the same manifest database, as LiteFS presents one database on every
# machine of a real cluster. Every node's populator runs every 5 s, so a page
# stored through one node is fetched by the others without clicking anything.
#
# Everything lives in ./.caje/cluster/ (emptied at start): <node>.toml,
# <node>/cache, manifest.db and one <name>.log per process. The admin token
# is $CAJE_ADMIN_TOKEN, or a fresh random one printed at start.
# The first Ctrl-C (or SIGTERM, or SIGHUP) to the script stops all four
# processes, waits for them and exits 130 (143 on SIGTERM, 129 on SIGHUP).

set -euo pipefail

cd "$(dirname "$0")/.."

base=${CAJE_CLUSTER_PORT:-3000}
if ! [[ $base =~ ^[0-9]+$ ]] || ((base < 1 || base > 65532)); then
    echo "CAJE_CLUSTER_PORT must be a port number from 1 to 65532, got '$base'" >&2
    exit 2
fi
for tool in cargo curl; do
    command -v "$tool" >/dev/null || { echo "cluster.sh needs $tool" >&2; exit 2; }
done

# Fails early, before the build, when one of the four ports is taken.
for port in "$base" $((base + 1)) $((base + 2)) $((base + 3)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is already in use; stop what listens there, or pick other ports:" >&2
        echo "  CAJE_CLUSTER_PORT=4000 $0" >&2
        exit 2
    fi
done

dir=./.caje/cluster
bin=./target/release/caje
names=(origin a b c)
declare -A pids=()

stopping=
stop_all() {
    [[ -n $stopping ]] && return
    stopping=1
    ((${#pids[@]})) || return 0
    echo
    echo "stopping the cluster..."
    for name in "${names[@]}"; do
        pid=${pids[$name]:-}
        [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null || true
    done
    # caje shuts down gracefully on SIGTERM; anything still up after 10 s is killed.
    for _ in $(seq 1 50); do
        alive=
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [[ -z $alive ]] && break
        sleep 0.2
    done
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    echo "stopped; logs are in $dir/"
}
trap stop_all EXIT
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all; exit 129' HUP

# Each process runs in a session of its own, so Ctrl-C in the terminal
# reaches only this script, which stops them: were they to get it too, the
# first to exit would look like a crash to the loop at the end.
detach=()
command -v setsid >/dev/null && detach=(setsid)

# Says why a process that should be running is not, and gives up.
died() {
    local name=$1
    echo "$name stopped unexpectedly; the end of $dir/$name.log:" >&2
    tail -n 20 "$dir/$name.log" >&2 || true
    exit 1
}

echo "building caje (cargo build --release)..."
cargo build --release

rm -rf "$dir"
mkdir -p "$dir"

if [[ -n ${CAJE_ADMIN_TOKEN:-} ]]; then
    token=$CAJE_ADMIN_TOKEN
    token_note="(from CAJE_ADMIN_TOKEN)"
elif command -v openssl >/dev/null; then
    token=$(openssl rand -hex 24)
    token_note=
else
    token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    token_note=
fi

# The file configures each node: no CAJE_* override from this shell may
# send three nodes to one address or one cache.
clean_env=(env -u CAJE_LISTEN -u CAJE_CACHE_DIR -u CAJE_DATABASE -u CAJE_LITEFS -u CAJE_WORKERS
    NO_COLOR=1)

origin_port=$base
"${detach[@]}" "${clean_env[@]}" "$bin" demo-origin --listen "127.0.0.1:$origin_port" >"$dir/origin.log" 2>&1 &
pids[origin]=$!
for _ in $(seq 1 100); do
    grep -q "demo origin listening on port" "$dir/origin.log" 2>/dev/null && break
    kill -0 "${pids[origin]}" 2>/dev/null || died origin
    sleep 0.1
done
grep -q "demo origin listening on port" "$dir/origin.log" || {
    echo "the demo origin did not start within 10 s; see $dir/origin.log" >&2
    exit 1
}

declare -A ports=()
i=1
for node in a b c; do
    port=$((base + i))
    ports[$node]=$port
    i=$((i + 1))
    cat >"$dir/$node.toml" <<EOF
# Node ${node^^} of the local cluster started by scripts/cluster.sh.
listen = "127.0.0.1:$port"
cache_dir = "$dir/$node/cache"
database = "$dir/manifest.db"
litefs = "off"
workers = 2
populate_interval = "5s"

[[origin]]
host = "localhost"
upstream = "http://127.0.0.1:$origin_port"
timeout = "30s"
EOF
    "$bin" check-config "$dir/$node.toml" >/dev/null
done

# One node after the other, each healthy before the next, so a failure
# points at one node and its log.
for node in a b c; do
    CAJE_ADMIN_TOKEN=$token "${detach[@]}" "${clean_env[@]}" "$bin" --config "$dir/$node.toml" \
        >"$dir/$node.log" 2>&1 &
    pids[$node]=$!
    up=
    for _ in $(seq 1 150); do
        if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:${ports[$node]}/_caje/health" 2>/dev/null; then
            up=1
            break
        fi
        kill -0 "${pids[$node]}" 2>/dev/null || died "$node"
        sleep 0.2
    done
    [[ -n $up ]] || {
        echo "node ${node^^} is not healthy after 30 s; see $dir/$node.log" >&2
        exit 1
    }
done

a=${ports[a]} b=${ports[b]} c=${ports[c]}
cat <<EOF

caje cluster is up: the slow origin on http://127.0.0.1:$origin_port (/ at once, /fast in 1 s, /slow in 5 s)
  node A  http://localhost:$a
  node B  http://localhost:$b
  node C  http://localhost:$c
all three share $dir/manifest.db; each populates what it lacks every 5 s.

admin token: $token $token_note

1. Ask node A, which fetches from the origin (1 s) and stores the page:
     curl -i http://localhost:$a/fast        # Cache-Status: caje; fwd=uri-miss; ...; stored

2. Watch the page reach the other nodes within ~5 s. In a browser, log in
   with the token on each (each node keeps its own session cookie):
     http://localhost:$b/_caje/list
     http://localhost:$c/_caje/list
   or with curl:
     curl -s -H 'Accept: application/json' -H "Authorization: Bearer $token" http://localhost:$b/_caje/list

3. Ask node B: it answers at once from its own cache.
     curl -i http://localhost:$b/fast        # Cache-Status: caje; hit; ttl=...

Logs: $dir/{origin,a,b,c}.log.  Ctrl-C stops everything.
EOF

# Runs until Ctrl-C, or until one of the processes stops on its own.
while :; do
    wait -n || true
    for name in "${names[@]}"; do
        kill -0 "${pids[$name]}" 2>/dev/null || died "$name"
    done
done
