#!/usr/bin/env python3
"""Helpers of bench/compression.sh (standard library only).

  paths SITE                      every file of the site, as URL paths
  fetch PORT HOST AE PATHS [SITE] GET every path through caje with that
                                  Accept-Encoding, one at a time; prints JSON
                                  totals: files, bytes received, by
                                  Content-Encoding, hits, seconds taken, and
                                  (with SITE) the identity and gzip answers
                                  checked against the files
  lua PATHS HOST AE OUT           a wrk script cycling over the paths
"""
import gzip
import http.client
import json
import os
import sys
import time


def paths(site):
    out = []
    for d, _, files in os.walk(site):
        for f in sorted(files):
            rel = os.path.relpath(os.path.join(d, f), site)
            out.append("/" + rel.replace(os.sep, "/"))
    for p in sorted(out):
        print(p)


def fetch(port, host, ae, paths_file, site=None):
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
    started = time.monotonic()
    total = {"files": 0, "bytes": 0, "identity_bytes": 0, "by_coding": {}, "hits": 0, "gzip_checked": 0}
    for p in open(paths_file).read().split():
        headers = {"Host": host}
        if ae:
            headers["Accept-Encoding"] = ae
        conn.request("GET", p, headers=headers)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise SystemExit(f"{p}: {r.status}")
        coding = r.getheader("content-encoding") or "identity"
        total["files"] += 1
        total["bytes"] += len(body)
        total["by_coding"][coding] = total["by_coding"].get(coding, 0) + 1
        if (r.getheader("cache-status") or "").startswith("caje; hit"):
            total["hits"] += 1
        if site:
            original = open(os.path.join(site, p.lstrip("/")), "rb").read()
            total["identity_bytes"] += len(original)
            if coding == "gzip":
                assert gzip.decompress(body) == original, p
                total["gzip_checked"] += 1
            elif coding == "identity":
                assert body == original, p
    total["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(total))


def lua(paths_file, host, ae, out):
    ps = open(paths_file).read().split()
    with open(out, "w") as f:
        f.write("paths = {\n")
        for p in ps:
            f.write(f'  "{p}",\n')
        f.write("}\n")
        f.write(f'wrk.headers["Host"] = "{host}"\n')
        if ae:
            f.write(f'wrk.headers["Accept-Encoding"] = "{ae}"\n')
        f.write("i = 0\n")
        f.write("request = function()\n  i = i % #paths + 1\n  return wrk.format(\"GET\", paths[i])\nend\n")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "paths":
        paths(*args)
    elif cmd == "fetch":
        fetch(*args)
    elif cmd == "lua":
        lua(*args)
    else:
        raise SystemExit(__doc__)
