#!/usr/bin/env python3
"""Helpers for bench/run.sh and bench/instructions.sh: free ports, the slow origin, the coalescing client,
the cold-start poller, wrk output parsing and the final report.

Subcommands:
  freeport N                        print N free loopback ports
  slow-origin PORT DELAY_MS         asyncio HTTP server: /slow* after DELAY_MS, /count
  coalesce PORT PATH N HOST         N concurrent GETs of PATH, prints JSON {total_s, statuses}
  count PORT KEY                    origin request count for slow URL key (query string)
  coldpoll PORT HOST PREFIX N T0 TIMEOUT
                                    poll PREFIX<i> until a caje hit; prints JSON
  rss PID                           resident set size of PID in KiB
  cputime PID                       CPU seconds (user + system) of PID and its descendants
  wrkparse FILE SCEN CONTENDER ROUND [CPU0 CPU1]
                                    parse wrk output, print one JSON line (with the
                                    CPU microseconds per request when CPU0/CPU1 given)
  report RAW.jsonl OUT.json META.json  medians, table on stdout, JSON to OUT.json
  pairline RAW.jsonl ROUND          the log-pair scenario's round ROUND, in words
  sequential PORT PATH N            N GETs of PATH (Host: bench.local) one after
                                    another over one kept-alive connection
"""
import asyncio
import http.client
import json
import os
import socket
import statistics
import sys
import threading
import time


def freeport(n):
    socks = []
    for _ in range(int(n)):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


# ---------------------------------------------------------------- slow origin
COUNTS = {}


async def handle(reader, writer, delay):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split(" ")
            target = parts[1] if len(parts) > 1 else "/"
            path, _, query = target.partition("?")
            clen = 0
            for h in head.split(b"\r\n")[1:]:
                if h.lower().startswith(b"content-length:"):
                    clen = int(h.split(b":", 1)[1])
            if clen:
                await reader.readexactly(clen)
            if path.startswith("/count"):
                body = json.dumps(COUNTS).encode()
                hdrs = "Cache-Control: no-store\r\nContent-Type: application/json\r\n"
            else:
                COUNTS[query] = COUNTS.get(query, 0) + 1
                await asyncio.sleep(delay)
                body = ("slow " + query + "\n").encode()
                hdrs = "Cache-Control: public, max-age=3600\r\nContent-Type: text/plain\r\n"
            writer.write(
                (
                    "HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n" % (hdrs, len(body))
                ).encode()
                + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


def slow_origin(port, delay_ms):
    delay = int(delay_ms) / 1000.0

    async def main():
        srv = await asyncio.start_server(
            lambda r, w: handle(r, w, delay), "127.0.0.1", int(port), backlog=1024
        )
        print("slow origin listening on port %s" % port, flush=True)
        async with srv:
            await srv.serve_forever()

    asyncio.run(main())


def count(port, key):
    c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=5)
    c.request("GET", "/count")
    d = json.loads(c.getresponse().read())
    print(d.get(key, 0))


# ------------------------------------------------------------ coalescing test
def coalesce(port, path, n, host):
    n = int(n)
    conns = []
    for _ in range(n):  # connect before the clock starts
        c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
        c.connect()
        conns.append(c)
    barrier = threading.Barrier(n + 1)
    done = [None] * n
    statuses = [None] * n
    cache_status = [None] * n

    def worker(i):
        c = conns[i]
        barrier.wait()
        try:
            c.request("GET", path, headers={"Host": host})
            r = c.getresponse()
            r.read()
            statuses[i] = r.status
            cache_status[i] = (
                r.getheader("Cache-Status")
                or r.getheader("X-Cache-Status")
                or ("age=%s" % r.getheader("Age"))
            )
        except Exception as e:  # noqa: BLE001
            statuses[i] = str(e)
        done[i] = time.monotonic()

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    barrier.wait()
    t0 = time.monotonic()
    for t in ts:
        t.join(60)
    ends = [d for d in done if d is not None]
    out = {
        "total_s": (max(ends) - t0) if ends else None,
        "first_s": (min(ends) - t0) if ends else None,
        "completed": len(ends),
        "ok": sum(1 for s in statuses if s == 200),
        "statuses": sorted(set(map(str, statuses))),
        "cache_status_sample": sorted(set(map(str, cache_status)))[:4],
    }
    print(json.dumps(out))


# ------------------------------------------------------------ cold start poll
def coldpoll(port, host, prefix, n, t0, timeout):
    """t0 = time.time() when caje was spawned. Each poll asks a different
    stored URL (prefix + i), so a miss re-stored by one poll cannot make a
    later poll a hit."""
    t0 = float(t0)
    deadline = time.time() + float(timeout)
    i = 0
    first_answer = None
    first_status = None
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=5)
            c.request("GET", prefix + str(i % int(n)), headers={"Host": host})
            r = c.getresponse()
            r.read()
            cs = r.getheader("Cache-Status") or ""
            now = time.time()
            if first_answer is None:
                first_answer = now - t0
                first_status = cs
            c.close()
            if "hit" in cs:
                print(
                    json.dumps(
                        {
                            "first_answer_s": first_answer,
                            "first_answer_cache_status": first_status,
                            "first_hit_s": now - t0,
                            "polls": i + 1,
                        }
                    )
                )
                return
        except OSError:
            pass
        i += 1
        time.sleep(0.002)
    print(json.dumps({"first_answer_s": first_answer, "first_hit_s": None, "polls": i}))


# ------------------------------------------------------------------ cpu time
def _children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%s/task" % pid):
            with open("/proc/%s/task/%s/children" % (pid, tid)) as f:
                out += f.read().split()
    except OSError:
        pass
    return out


def cputime(pid=""):
    """utime + stime of a process (all its threads) and of its descendants
    (nginx's workers, Varnish's child), in seconds; empty when no pid."""
    if not pid:
        print("")
        return
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open("/proc/%s/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except OSError:
            continue
        todo += _children(p)
    print("%.2f" % (total / tick))


def rss(pid):
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                print(line.split()[1])
                return
    print(0)


# ----------------------------------------------------------------- wrk parse
def _lat_ms(s):
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60000.0)):
        if s.endswith(unit):
            return float(s[: -len(unit)]) * f
    return float(s)


def _bytes_mib(s):
    for unit, f in (("GB", 1024.0), ("MB", 1.0), ("KB", 1 / 1024.0), ("B", 1 / 1048576.0)):
        if s.endswith(unit):
            return float(s[: -len(unit)]) * f
    return float(s) / 1048576.0


def wrkparse(path, scen, contender, rnd, cpu0="", cpu1=""):
    d = {"scenario": scen, "contender": contender, "round": int(rnd)}
    txt = open(path).read()
    lat = False
    for line in txt.splitlines():
        w = line.split()
        if not w:
            continue
        if line.startswith("Requests/sec:"):
            d["rps"] = float(w[1])
        elif line.startswith("Transfer/sec:"):
            d["mib_s"] = _bytes_mib(w[1])
        elif "Latency Distribution" in line:
            lat = True
        elif lat and w[0] in ("50%", "75%", "90%", "99%"):
            d["p" + w[0][:-1]] = _lat_ms(w[1])
            if w[0] == "99%":
                lat = False
        elif line.strip().startswith("Non-2xx"):
            d["non2xx"] = int(w[-1])
        elif line.strip().startswith("Socket errors"):
            d["socket_errors"] = line.strip()
        elif "requests in" in line:
            d["requests"] = int(w[0])
    if "rps" not in d:
        d["error"] = txt[-500:]
    if cpu0 and cpu1 and d.get("requests"):
        d["cpu_us"] = (float(cpu1) - float(cpu0)) * 1e6 / d["requests"]
    print(json.dumps(d))


# -------------------------------------------------------------------- report
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=0):
    if x is None:
        return "-"
    return ("%." + str(nd) + "f") % x


def pair_ratio(rows, rnd, key):
    """caje-info over caje in the log-pair scenario's round `rnd`."""
    got = {r["contender"]: r.get(key) for r in rows if r["scenario"] == "log-pair" and r["round"] == rnd}
    a, b = got.get("caje"), got.get("caje-info")
    return (b / a) if (a and b) else None


def pairline(raw, rnd):
    rows = [json.loads(l) for l in open(raw) if l.strip()]
    cpu = {r["contender"]: r.get("cpu_us") for r in rows if r["scenario"] == "log-pair" and r["round"] == int(rnd)}
    print(
        "caje %s, caje-info %s us cpu/req: %sx"
        % (fmt(cpu.get("caje"), 2), fmt(cpu.get("caje-info"), 2), fmt(pair_ratio(rows, int(rnd), "cpu_us"), 3))
    )


def report(raw, out, meta):
    rows = [json.loads(l) for l in open(raw) if l.strip()]
    meta = json.load(open(meta))
    groups = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["contender"]), []).append(r)
    summary = {}
    for (s, c), rs in groups.items():
        keys = set(k for r in rs for k in r) - {"scenario", "contender", "round"}
        m = {}
        for k in sorted(keys):
            vals = [r.get(k) for r in rs]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals if v is not None):
                m[k] = med(vals)
            else:
                m[k] = vals
        m["rounds"] = len(rs)
        summary.setdefault(s, {})[c] = m

    def g(s, c, k):
        return summary.get(s, {}).get(c, {}).get(k)

    def ratio(a, b):
        return (a / b) if (a is not None and b) else None

    # "vs bare" (and "vs origin" for misses and the crawl): the median over
    # rounds of each round's own ratio, so that a round slowed by a noisy
    # neighbour slows both sides of its ratio
    by_round = {}
    for r in rows:
        by_round[(r["scenario"], r["contender"], r["round"])] = r

    def round_ratio(s, c, base):
        xs = []
        for (s2, c2, rnd), r in by_round.items():
            b = by_round.get((s, base, rnd))
            if s2 == s and c2 == c and b and b.get("rps") and r.get("rps"):
                xs.append(r["rps"] / b["rps"])
        return med(xs)

    wrk_scen = ["hit-1k", "hit-1k-paced", "hit-100k", "hit-10m", "nostore-miss", "cold-crawl"]
    print()
    print("%-13s %-10s %10s %8s %9s %9s %10s %10s %7s" % ("scenario", "contender", "req/s", "vs bare", "p50 ms", "p99 ms", "MiB/s", "cpu us/req", "errors"))
    print("-" * 94)
    for s in wrk_scen:
        base = "origin" if s in ("nostore-miss", "cold-crawl") else "bare"
        for c in ["caje", "caje-info", "caje-mem", "bare", "nginx", "varnish", "ceiling", "origin"]:
            if c not in summary.get(s, {}):
                continue
            m = summary[s][c]
            m["vs_" + base] = round_ratio(s, c, base)
            errs = (m.get("non2xx") or 0)
            print(
                "%-13s %-10s %10s %8s %9s %9s %10s %10s %7s"
                % (s, c, fmt(m.get("rps")), fmt(m["vs_" + base], 2) + ("o" if base == "origin" else ""),
                   fmt(m.get("p50"), 2), fmt(m.get("p99"), 2), fmt(m.get("mib_s"), 1), fmt(m.get("cpu_us"), 1), fmt(errs))
            )
    print("(vs bare: median of per-round ratios to bare actix-web; marked o: to the origin direct)")
    rounds = sorted(set(r["round"] for r in rows if r["scenario"] == "log-pair"))
    pair_cpu = [pair_ratio(rows, rnd, "cpu_us") for rnd in rounds]
    pair_rps = [pair_ratio(rows, rnd, "rps") for rnd in rounds]
    if rounds:
        print()
        print("logging, caje and caje-info loaded at once (a browser's User-Agent, %d connections each):" % (meta.get("connections", 64) // 2))
        for c in ["caje", "caje-info"]:
            m = summary["log-pair"].get(c, {})
            print("  %-10s %10s req/s  p99 %s ms  %s us cpu/req" % (c, fmt(m.get("rps")), fmt(m.get("p99"), 2), fmt(m.get("cpu_us"), 2)))
        print("  cpu/req caje-info/caje by round: %s" % ", ".join(fmt(x, 3) for x in pair_cpu))
    print()
    print("%-22s %-14s %10s %10s %10s %9s" % ("scenario", "contender", "origin req", "all done s", "first s", "ok/100"))
    print("-" * 80)
    for c in ["caje", "nginx", "nginx-nolock", "varnish", "origin"]:
        m = summary.get("coalesce-slow", {}).get(c)
        if m:
            print(
                "%-22s %-14s %10s %10s %10s %9s"
                % ("100 cold, 200ms origin", c, fmt(m.get("origin_requests")), fmt(m.get("total_s"), 3), fmt(m.get("first_s"), 3), fmt(m.get("ok")))
            )
    # "caje": every shard walked; "caje-snapshot": from the index snapshot
    # of a graceful stop
    for c, how in (("caje", "walk"), ("caje-snapshot", "snapshot")):
        m = summary.get("cold-start", {}).get(c)
        if m:
            print()
            print(
                "cold start (caje, %s entries, %s): first answer %s s (%s), first hit %s s, RSS %s KiB (%s bytes per entry over an empty cache)"
                % (fmt(m.get("entries")), how, fmt(m.get("first_answer_s"), 3), m.get("first_answer_cache_status"), fmt(m.get("first_hit_s"), 3),
                   fmt(m.get("rss_kib")), fmt(m.get("rss_bytes_per_entry")))
            )
    ratios = {
        "hit-1k rps caje/nginx": ratio(g("hit-1k", "caje", "rps"), g("hit-1k", "nginx", "rps")),
        "hit-1k rps caje/varnish": ratio(g("hit-1k", "caje", "rps"), g("hit-1k", "varnish", "rps")),
        "hit-1k rps caje/ceiling": ratio(g("hit-1k", "caje", "rps"), g("hit-1k", "ceiling", "rps")),
        "hit-1k rps caje/bare": g("hit-1k", "caje", "vs_bare"),
        "hit-1k rps caje-info/caje": ratio(g("hit-1k", "caje-info", "rps"), g("hit-1k", "caje", "rps")),
        "hit-1k cpu/req caje/bare": ratio(g("hit-1k", "caje", "cpu_us"), g("hit-1k", "bare", "cpu_us")),
        "hit-1k cpu/req caje-info/caje": ratio(g("hit-1k", "caje-info", "cpu_us"), g("hit-1k", "caje", "cpu_us")),
        "log-pair cpu/req caje-info/caje": med(pair_cpu),
        "log-pair rps caje-info/caje": med(pair_rps),
        "hit-100k rps caje/bare": g("hit-100k", "caje", "vs_bare"),
        "hit-10m rps caje/bare": g("hit-10m", "caje", "vs_bare"),
        "hit-10m rps caje-mem/bare": g("hit-10m", "caje-mem", "vs_bare"),
        "hit-10m MiB/s caje-mem/varnish": ratio(g("hit-10m", "caje-mem", "mib_s"), g("hit-10m", "varnish", "mib_s")),
        "cold-crawl rps caje/origin": g("cold-crawl", "caje", "vs_origin"),
        "hit-1k p99 caje/nginx": ratio(g("hit-1k", "caje", "p99"), g("hit-1k", "nginx", "p99")),
        "hit-1k p99 caje/varnish": ratio(g("hit-1k", "caje", "p99"), g("hit-1k", "varnish", "p99")),
        "hit-1k-paced p99 caje/nginx": ratio(g("hit-1k-paced", "caje", "p99"), g("hit-1k-paced", "nginx", "p99")),
        "hit-1k-paced p99 caje/bare": ratio(g("hit-1k-paced", "caje", "p99"), g("hit-1k-paced", "bare", "p99")),
        "hit-100k MiB/s caje/nginx": ratio(g("hit-100k", "caje", "mib_s"), g("hit-100k", "nginx", "mib_s")),
        "hit-100k MiB/s caje/varnish": ratio(g("hit-100k", "caje", "mib_s"), g("hit-100k", "varnish", "mib_s")),
        "hit-10m MiB/s caje/nginx": ratio(g("hit-10m", "caje", "mib_s"), g("hit-10m", "nginx", "mib_s")),
        "hit-10m MiB/s caje/varnish": ratio(g("hit-10m", "caje", "mib_s"), g("hit-10m", "varnish", "mib_s")),
        "nostore rps caje/origin": ratio(g("nostore-miss", "caje", "rps"), g("nostore-miss", "origin", "rps")),
        "nostore rps caje/bare": ratio(g("nostore-miss", "caje", "rps"), g("nostore-miss", "bare", "rps")),
        "nostore cpu/req caje/bare": ratio(g("nostore-miss", "caje", "cpu_us"), g("nostore-miss", "bare", "cpu_us")),
        "nostore rps caje/nginx": ratio(g("nostore-miss", "caje", "rps"), g("nostore-miss", "nginx", "rps")),
        "nostore rps caje/varnish": ratio(g("nostore-miss", "caje", "rps"), g("nostore-miss", "varnish", "rps")),
        "coalesce total caje/origin-delay": ratio(g("coalesce-slow", "caje", "total_s"), meta.get("slow_delay_ms", 200) / 1000.0),
    }
    print()
    print("ratios")
    for k, v in ratios.items():
        print("  %-34s %s" % (k, fmt(v, 2)))
    json.dump({"meta": meta, "summary": summary, "ratios": ratios, "raw": rows}, open(out, "w"), indent=2)
    print("\nJSON: %s" % out)


def sequential(port, path, n):
    conn = http.client.HTTPConnection("127.0.0.1", int(port))
    for _ in range(int(n)):
        conn.request("GET", path, headers={"Host": "bench.local"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            sys.exit("sequential: %s answered %d" % (path, response.status))
    conn.close()


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {
        "freeport": freeport,
        "cputime": cputime,
        "rss": rss,
        "slow-origin": slow_origin,
        "count": count,
        "coalesce": coalesce,
        "coldpoll": coldpoll,
        "wrkparse": wrkparse,
        "pairline": pairline,
        "report": report,
        "sequential": sequential,
    }[cmd](*args)
