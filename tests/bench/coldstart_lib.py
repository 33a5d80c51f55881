#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Helpers of the cold-start benchmark (tests/bench/coldstart.sh).

  coldstart_lib.py layout TAR DIR TAG CMD_JSON
      An OCI image layout in DIR with one gzip layer (gzip -6 -n of TAR)
      and a config running CMD_JSON (a JSON array), tagged TAG.
  coldstart_lib.py watch --regex RE --timeout S [--control H:P]
                         [--metrics URL] [--pid PID] --out FILE -- CMD...
      Runs CMD, copies its output lines to FILE.log, and when a line matches
      RE writes FILE (JSON: seconds from start to the line, the proxy's
      counters and the snapshotter's metrics and peak RSS at that moment).
      Exits 0 when the line came (CMD is left running: the caller kills the
      container), 1 when CMD ended or S passed first.
  coldstart_lib.py workset RECORD TOC_JSON TOC_OFFSET
      Compressed working set of an optimised layer: the sum of the
      compressed sizes of the gzip members holding the recorded files'
      chunks (a member shared by several small files counted once).
      Prints JSON {"files", "members", "bytes"}.
  coldstart_lib.py report RESULTS_DIR
      (modes base-lazy and base-lazy-opt: the same as lazy and lazy-opt
      with the LAZYPULL_BASE binary's snapshotter, and their ratio;
      lazy-index: the unconverted gzip image through its gzip index, with
      the index's size over the layer's and its build rate on one core;
      lazy-index-signed: the same through an index signed by a key the
      snapshotter trusts (index_trusted_keys))
      runs.jsonl + meta.json -> results.md, results.json, chart.dat/.gp/.png.
      One table per image x workload x profile, with the eager bound (the
      gzip image's bytes over the link bandwidth measured before the runs)
      and each mode's ratio to the full pull and to that bound.
  coldstart_lib.py trace FILE [MBIT]
      Reads a delay_proxy.py timeline (coldstart.sh with LP_TRACE=1 writes
      one per run: logs/*.trace) and prints where the link time went: each
      request (when it reached the proxy, its range, first and last byte
      handed back, the idle time of its connection before it), the bytes
      per 250 ms, and the time the link carried less than half of MBIT
      (default: the fastest 250 ms seen) between the first and last byte.
"""
import hashlib
import json
import os
import re
import select
import statistics
import subprocess
import sys
import time
import urllib.request


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def cmd_layout(tar, root, tag, cmd_json):
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)

    def put(path_or_bytes):
        if isinstance(path_or_bytes, bytes):
            data = path_or_bytes
            d = sha(data)
            with open(os.path.join(root, "blobs", "sha256", d[7:]), "wb") as f:
                f.write(data)
            return d, len(data)
        h = hashlib.sha256()
        with open(path_or_bytes, "rb") as f:
            for b in iter(lambda: f.read(1 << 20), b""):
                h.update(b)
        d = "sha256:" + h.hexdigest()
        os.rename(path_or_bytes, os.path.join(root, "blobs", "sha256", d[7:]))
        return d, os.path.getsize(os.path.join(root, "blobs", "sha256", d[7:]))

    h = hashlib.sha256()
    with open(tar, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    diff_id = "sha256:" + h.hexdigest()
    gz = os.path.join(root, "layer.tmp")
    with open(gz, "wb") as out:
        subprocess.run(["gzip", "-6", "-n", "-c", tar], stdout=out, check=True)
    ldig, lsize = put(gz)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": json.loads(cmd_json)},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }, sort_keys=True).encode()
    cdig, csize = put(config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": cdig, "size": csize},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": ldig, "size": lsize}],
    }, sort_keys=True).encode()
    mdig, msize = put(manifest)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": mdig, "size": msize,
            "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)
    print(json.dumps({"layer_bytes": lsize, "uncompressed_bytes": os.path.getsize(tar)}))


def proxy_stats(control):
    import socket
    h, _, p = control.rpartition(":")
    with socket.create_connection((h, int(p)), timeout=5) as s:
        s.sendall(b"stats\n")
        f = s.makefile("rb")
        return json.loads(f.readline())


def peak_rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def metrics(url):
    """Sums of lazypull's metrics over their series (name -> value), and
    each labelled series by its own name (name{labels} -> value)."""
    out = {}
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        parts = line.rsplit(" ", 1)
        if len(parts) != 2:
            continue
        name = parts[0].split("{", 1)[0]
        try:
            out[name] = out.get(name, 0) + float(parts[1])
            if name != parts[0]:
                out[parts[0]] = float(parts[1])
        except ValueError:
            pass
    return out


def cmd_watch(argv):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--regex", required=True)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--control")
    ap.add_argument("--metrics")
    ap.add_argument("--pid", type=int, action="append", default=[])
    ap.add_argument("--out", required=True)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    rx = re.compile(a.regex)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
    log = open(a.out + ".log", "wb")
    buf = b""
    fd = p.stdout.fileno()
    while True:
        left = a.timeout - (time.monotonic() - t0)
        if left <= 0:
            log.write(b"[watch] timeout\n")
            return 1
        r, _, _ = select.select([fd], [], [], min(left, 1.0))
        if not r:
            continue
        data = os.read(fd, 65536)
        now = time.monotonic()
        if not data:
            log.write(b"[watch] command ended before the ready line\n")
            p.wait()
            return 1
        log.write(data)
        log.flush()
        buf += data
        lines = buf.split(b"\n")
        buf = lines.pop()
        for line in lines:
            if rx.search(line.decode(errors="replace")):
                res = {"seconds": now - t0}
                if a.control:
                    res["proxy"] = proxy_stats(a.control)
                if a.metrics:
                    res["metrics"] = metrics(a.metrics)
                res["peak_rss_kb"] = [peak_rss_kb(x) for x in a.pid]
                with open(a.out, "w") as f:
                    json.dump(res, f)
                # keep draining output in the background: the caller kills it
                if os.fork() == 0:
                    try:
                        while os.read(fd, 65536):
                            pass
                    finally:
                        os._exit(0)
                return 0


def cmd_workset(record, toc_path, toc_offset):
    toc = json.load(open(toc_path))
    toc_offset = int(toc_offset)
    norm = lambda n: n[2:] if n.startswith("./") else n.lstrip("/")
    want = set()
    for line in open(record):
        line = line.strip()
        if line:
            want.add(norm(json.loads(line)["path"]))
    starts, owner, name = set(), {}, None
    links = {}
    for e in toc["entries"]:
        if e["type"] != "chunk":
            name = norm(e["name"])
        if e["type"] == "hardlink":
            links[name] = norm(e.get("linkName", ""))
        if e["type"] in ("reg", "chunk") and e.get("offset", 0) > 0:
            starts.add(e["offset"])
            owner.setdefault(name, set()).add(e["offset"])
    want |= {links[n] for n in want if n in links}
    order = sorted(starts) + [toc_offset]
    nxt = {order[i]: order[i + 1] for i in range(len(order) - 1)}
    members = set()
    for n in want:
        members |= owner.get(n, set())
    print(json.dumps({"files": len(want), "members": len(members),
                      "bytes": sum(nxt[m] - m for m in members)}))


# --- report ------------------------------------------------------------------

MODES = [("overlay", "full pull (overlayfs)"), ("base-lazy", "lazypull base, eStargz"),
         ("base-lazy-opt", "lazypull base, optimised"), ("lazy", "lazypull, eStargz"),
         ("lazy-opt", "lazypull, optimised"), ("lazy-index", "lazypull, gzip + index"),
         ("lazy-index-signed", "lazypull, gzip + signed index"),
         ("lazy-index-opt", "lazypull, gzip + index + profile"),
         ("lazy-index-signed-opt", "lazypull, gzip + signed index + profile"),
         ("reference", "reference stargz, eStargz"),
         ("reference-opt", "reference stargz, optimised")]


def med(xs):
    return statistics.median(xs) if xs else None


def fmt(x, d=2):
    return "-" if x is None else ("%.*f" % (d, x))


def case_label(img, wl):
    return img if wl == "start" else "%s %s" % (img, wl)


def cmd_report(rdir):
    runs = [json.loads(l) for l in open(os.path.join(rdir, "runs.jsonl")) if l.strip()]
    meta = json.load(open(os.path.join(rdir, "meta.json")))
    groups = {}
    for r in runs:
        r.setdefault("workload", "start")
        groups.setdefault((r["image"], r["workload"], r["profile"], r["mode"]), []).append(r)
    cases = [(i, w) for i in meta["images"] for w in meta.get("workloads", ["start"])
             if any(k[:2] == (i, w) for k in groups)]
    profiles = [p for p in meta["profiles"] if any(k[2] == p for k in groups)]
    summary = []
    md = []
    md.append("Machine: %s; %s; lazypull %s; %s." % (
        meta["cpus"], meta["kernel"], meta["commit"], meta["date"]))
    md.append("Command: `%s`; %d repetition(s): median, spread = min–max of total." % (
        meta["command"], meta["reps"]))
    loads = [r["loadavg"][0] for r in runs if r.get("loadavg")]
    if loads:
        md.append("Load average (1 min) at the end of each run: %.2f–%.2f (median %.2f)." % (
            min(loads), max(loads), med(loads)))
    if meta.get("lazypull"):
        md.append("Binary: %s." % meta["lazypull"])
    md.append("")
    for img, wl in cases:
        im = meta["image_info"].get(img, {})
        for prof in profiles:
            pm = meta["profile_info"][prof]
            md.append("**%s, %s, %s** (gzip image %.1f MB, eStargz %.1f MB%s)" % (
                img, "workload " + wl, pm["label"],
                im.get("gzip_bytes", 0) / 1e6, im.get("esgz_bytes", 0) / 1e6,
                "" if not im.get("opt_bytes") else
                ", optimised %.1f MB; working set of the start %.2f MB compressed in %s files" % (
                    im["opt_bytes"] / 1e6, im.get("workset_bytes", 0) / 1e6,
                    im.get("workset_files", "?"))))
            # the eager bound: the image's bytes over the measured link, what
            # no puller that moves the whole image can beat
            eager = None
            if pm.get("measured"):
                md.append("")
                md.append("Link as measured through the proxy: %.1f ms RTT, %.1f Mbit/s." % (
                    pm["measured"]["rtt_ms"], pm["measured"]["mbit"]))
                if pm["measured"]["mbit"] > 0 and im.get("gzip_bytes"):
                    eager = im["gzip_bytes"] * 8 / (pm["measured"]["mbit"] * 1e6)
            if im.get("opt_error"):
                md.append("")
                md.append("No optimised image: %s" % im["opt_error"])
            ib = im.get("index_build")
            if im.get("index_bytes") is not None:
                md.append("")
                md.append("gzip index (`lazypull index`, pushed via %s): %.2f MB for the %.1f MB layer = "
                          "%.2f%% (target ≤ 5%%), %d checkpoints, %d files." % (
                              im.get("index_via", "?"), im["index_bytes"] / 1e6,
                              im["index_layer_bytes"] / 1e6,
                              100.0 * im["index_bytes"] / im["index_layer_bytes"],
                              im["index_checkpoints"], im["index_files"]))
            if ib:
                md.append("Index build on one core (`taskset -c 0 lazypull index build`, the "
                          "layer file in the page cache, blob sha256 and gzip CRCs included, "
                          "%d runs): process CPU %s s, the build thread's own %s s, wall %s s: "
                          "%.0f MB/s of compressed input per CPU-second (median; build thread "
                          "alone %.0f MB/s; target ≥ 100)." % (
                              ib["runs"], "/".join("%.2f" % x for x in ib["process_cpu_s"]),
                              "/".join("%.2f" % x for x in ib["build_cpu_s"]),
                              "/".join("%.2f" % x for x in ib["wall_s"]),
                              ib["mb_per_cpu_s"], ib["mb_per_build_cpu_s"]))
            if im.get("index_push_cpu_s"):
                md.append("`lazypull index` from the registry (any core; the fetch checked the "
                          "layer digest, the build skips the blob hash and the CRCs): %.2f CPU s "
                          "= %.0f MB/s." % (im["index_push_cpu_s"],
                                            im["index_layer_bytes"] / 1e6 / im["index_push_cpu_s"]))
            md.append("")
            md.append("| mode | pull s | create s | run s | **total s** | spread s | fetched MB | requests | snapshotter peak RSS MB | vs full pull | vs eager bound |")
            md.append("|---|---|---|---|---|---|---|---|---|---|---|")
            base = None
            rows = {}
            for mode, label in MODES:
                rs = groups.get((img, wl, prof, mode))
                if not rs:
                    continue
                row = {"image": img, "workload": wl, "profile": prof, "mode": mode, "runs": len(rs)}
                for k in ("pull", "create", "run", "total", "warm"):
                    vals = [r[k] for r in rs if r.get(k) is not None]
                    row[k] = med(vals)
                tot = [r["total"] for r in rs if r.get("total") is not None]
                row["spread"] = (max(tot) - min(tot)) if tot else None
                row["failed"] = sum(1 for r in rs if r.get("total") is None)
                row["bytes"] = med([r["bytes"] for r in rs if r.get("bytes") is not None])
                row["requests"] = med([r["requests"] for r in rs if r.get("requests") is not None])
                row["rss_mb"] = med([r["rss_kb"] / 1024 for r in rs if r.get("rss_kb")])
                row["ready_lines"] = sorted({r["ready_line"] for r in rs if r.get("ready_line")})
                rows[mode] = row
                if mode == "overlay":
                    base = row["total"]
            warm = rows.get("overlay", {}).get("warm")
            if wl == "start" and warm is not None and im.get("workset_bytes") is not None:
                ideal = warm + 3 * pm["rtt_ms"] / 1000 + im["workset_bytes"] * 8 / (pm["mbit"] * 1e6)
            else:
                ideal = None
            for mode, label in MODES:
                row = rows.get(mode)
                if not row:
                    continue
                ratio = (row["total"] / base) if (base and row["total"]) else None
                row["vs_full"] = ratio
                row["eager"] = eager
                row["vs_eager"] = (row["total"] / eager) if (eager and row["total"]) else None
                md.append("| %s | %s | %s | %s | **%s** | %s | %s | %s | %s | %s | %s |" % (
                    label + ("" if not row["failed"] else " (%d failed)" % row["failed"]),
                    fmt(row["pull"]), fmt(row["create"]), fmt(row["run"]), fmt(row["total"]),
                    fmt(row["spread"]),
                    fmt(row["bytes"] / 1e6 if row["bytes"] is not None else None, 1),
                    fmt(row["requests"], 0), fmt(row["rss_mb"], 0),
                    ("%.2fx" % ratio) if ratio else "-",
                    ("%.2fx" % row["vs_eager"]) if row["vs_eager"] else "-"))
                summary.append(row)
            if eager is not None:
                md.append("| eager bound (gzip image / measured link) | | | | **%.2f** | | %.1f | | | %s | 1.00x |" % (
                    eager, im["gzip_bytes"] / 1e6, ("%.2fx" % (eager / base)) if base else "-"))
            if ideal is not None:
                md.append("| ideal lazy bound | | | | **%.2f** | | %.1f | | | %s | %s |" % (
                    ideal, im["workset_bytes"] / 1e6,
                    ("%.2fx" % (ideal / base)) if base else "-",
                    ("%.2fx" % (ideal / eager)) if eager else "-"))
            md.append("")
            lines = {m: r["ready_lines"] for m, r in rows.items() if r["ready_lines"]}
            if wl != "start" and lines:
                same = len({tuple(v) for v in lines.values()}) == 1
                md.append("Ready lines: %s%s." % (
                    "; ".join("%s %s" % (m, ", ".join(v)) for m, v in lines.items()),
                    "" if same else " (DIFFER between modes)"))
                md.append("")
            opt = rows.get("lazy-opt", {}).get("total")
            ref = rows.get("reference", {}).get("total")
            refopt = rows.get("reference-opt", {}).get("total")
            lazy = rows.get("lazy", {}).get("total")
            idx = rows.get("lazy-index", {}).get("total")
            sidx = rows.get("lazy-index-signed", {}).get("total")
            pidx = rows.get("lazy-index-opt", {}).get("total")
            psidx = rows.get("lazy-index-signed-opt", {}).get("total")
            t = []
            # bigfile's own command reads its whole image: a read-everything
            # workload, with that workload's target
            if wl == "start" and img == "bigfile":
                if lazy and eager:
                    t.append("lazy/eager bound %.2fx (target ≤ 1.15)" % (lazy / eager))
            elif wl == "start":
                if opt and base:
                    t.append("optimised/full pull %.2fx (target ≤ 0.15)" % (opt / base))
                if lazy and base:
                    t.append("unoptimised/full pull %.2fx (target ≤ 0.35)" % (lazy / base))
                if opt and refopt:
                    t.append("optimised/reference on the same optimised image %.2fx (target ≤ 0.6)"
                             % (opt / refopt))
                if opt and ref:
                    t.append("optimised/reference on the unoptimised image %.2fx" % (opt / ref))
                if lazy and ref:
                    t.append("unoptimised lazypull/reference %.2fx" % (lazy / ref))
                if idx and lazy:
                    t.append("gzip + index/eStargz %.2fx (target ≤ 1.2)" % (idx / lazy))
                if idx and base:
                    t.append("gzip + index/full pull %.2fx (target ≤ 0.45)" % (idx / base))
                if sidx and lazy:
                    t.append("gzip + signed index/eStargz %.2fx (target ≤ 1.2)" % (sidx / lazy))
                if sidx and base:
                    t.append("gzip + signed index/full pull %.2fx (target ≤ 0.45)" % (sidx / base))
                if pidx and base:
                    t.append("gzip + index + profile/full pull %.2fx" % (pidx / base))
                if psidx and base:
                    t.append("gzip + signed index + profile/full pull %.2fx" % (psidx / base))
                if psidx and opt:
                    t.append("gzip + signed index + profile/optimised eStargz %.2fx" % (psidx / opt))
                if opt and ideal:
                    t.append("optimised/ideal %.2fx (target ≤ 1.3)" % (opt / ideal))
            else:
                for m in ("lazy", "lazy-opt", "lazy-index", "lazy-index-signed",
                          "lazy-index-opt", "lazy-index-signed-opt"):
                    v = rows.get(m, {}).get("total")
                    if v and eager:
                        t.append("%s/eager bound %.2fx (target ≤ 1.15)" % (m, v / eager))
                if idx and lazy:
                    t.append("gzip + index/eStargz %.2fx" % (idx / lazy))
            for m in ("lazy", "lazy-opt"):
                v, b = rows.get(m, {}).get("total"), rows.get("base-" + m, {}).get("total")
                if v and b:
                    t.append("%s/base %.2fx" % (m, v / b))
            slower = [m for m in ("lazy", "lazy-opt", "lazy-index", "lazy-index-signed",
                                  "lazy-index-opt", "lazy-index-signed-opt")
                      if rows.get(m, {}).get("total")
                      and base and rows[m]["total"] > base]
            t.append("lazypull slower than the full pull: %s" % (", ".join(slower) or "never"))
            md.append("Targets: " + "; ".join(t) + ". Warm local run (overlayfs, page cache warm, create + run): %s s." % fmt(warm))
            md.append("")
            for s in summary:
                if s["image"] == img and s["workload"] == wl and s["profile"] == prof:
                    s["ideal"] = ideal
    open(os.path.join(rdir, "results.md"), "w").write("\n".join(md) + "\n")
    json.dump({"meta": meta, "summary": summary, "runs": runs},
              open(os.path.join(rdir, "results.json"), "w"), indent=1)
    # chart: one panel per profile, one cluster per image, one bar per mode
    # (median total); panels have their own scales (20 Mbit is 50x 1 Gbit)
    present = [m for m, _ in MODES if any(s["mode"] == m for s in summary)]
    plots = []
    for prof in profiles:
        dat = os.path.join(rdir, "chart-%s.dat" % prof)
        with open(dat, "w") as f:
            f.write("image " + " ".join(present) + "\n")
            for img, wl in cases:
                vals = []
                for m in present:
                    v = [s["total"] for s in summary
                         if s["image"] == img and s["workload"] == wl
                         and s["profile"] == prof and s["mode"] == m]
                    vals.append("%.3f" % v[0] if v and v[0] is not None else "NaN")
                f.write("%s %s\n" % (case_label(img, wl).replace(" ", "-"), " ".join(vals)))
        plots.append((prof, dat))
    gp = os.path.join(rdir, "chart.gp")
    with open(gp, "w") as f:
        f.write('set terminal pngcairo size %d,560 noenhanced\n' % (200 + 450 * len(plots)))
        f.write('set output "%s"\n' % os.path.join(rdir, "chart.png"))
        f.write('set style data histograms\nset style histogram clustered gap 1\n')
        f.write('set style fill solid 0.8 border -1\nset grid ytics\nset yrange [0:*]\n')
        f.write('set key top left font ",9"\nset xtics rotate by -30\n')
        f.write('set multiplot layout 1,%d title "Cold start: pull command to ready line, median seconds"\n' % len(plots))
        for i, (prof, dat) in enumerate(plots):
            f.write('set title "%s"\n' % meta["profile_info"][prof]["label"])
            f.write('set ylabel "%s"\n' % ("seconds" if i == 0 else ""))
            if i:
                f.write('unset key\n')
            f.write('plot ' + ", ".join(
                '"%s" using %d:xtic(1) title columnheader(%d)' % (dat, j + 2, j + 2)
                for j in range(len(present))) + "\n")
        f.write('unset multiplot\n')
    try:
        subprocess.run(["gnuplot", gp], check=True, stderr=subprocess.PIPE)
    except (OSError, subprocess.CalledProcessError) as e:
        print("report: no chart (gnuplot: %s)" % e, file=sys.stderr)
    sys.stdout.write("\n".join(md) + "\n")


def rng(r):
    """a Range header's value, short: its first range, +N more"""
    w = r.split(",")
    return w[0] + (" +%d" % (len(w) - 1) if len(w) > 1 else "")


def cmd_trace(path, mbit=None):
    reqs, cur, downs = [], {}, []
    for line in open(path):
        w = line.split()
        if len(w) < 4:
            continue
        t, conn = float(w[0]), int(w[1])
        if w[2] == "req":
            r = {"t": t, "conn": conn, "range": w[3], "bytes": 0,
                 "first": None, "last": None,
                 "idle": t - cur[conn]["last"] if conn in cur and
                 cur[conn]["last"] is not None else None}
            reqs.append(r)
            cur[conn] = r
        elif w[2] == "down":
            n = int(w[3])
            downs.append((t, n))
            r = cur.get(conn)
            if r is not None:
                r["bytes"] += n
                r["first"] = r["first"] if r["first"] is not None else t
                r["last"] = t
    if not downs:
        print("no bytes in", path)
        return
    t0 = min([r["t"] for r in reqs] + [downs[0][0]])
    print("%8s %5s %-22s %9s %8s %8s %8s %8s" % (
        "req s", "conn", "range", "KiB", "first s", "last s", "MB/s",
        "idle ms"))
    for r in reqs:
        dur = (r["last"] - r["first"]) if r["first"] is not None else 0
        print("%8.3f %5d %-22s %9.0f %8s %8s %8s %8s" % (
            r["t"] - t0, r["conn"], rng(r["range"]), r["bytes"] / 1024,
            "%.3f" % (r["first"] - t0) if r["first"] is not None else "-",
            "%.3f" % (r["last"] - t0) if r["last"] is not None else "-",
            "%.1f" % (r["bytes"] / dur / 1e6) if dur > 0 else "-",
            "%.0f" % (r["idle"] * 1000) if r["idle"] is not None else "-"))
    step = 0.25
    nb = int((downs[-1][0] - t0) / step) + 1
    b = [0] * nb
    for t, n in downs:
        b[int((t - t0) / step)] += n
    peak = max(b) / step
    line_rate = float(mbit) * 1e6 / 8 if mbit else peak
    first = int((downs[0][0] - t0) / step)
    slow = sum(1 for x in b[first:] if x / step < line_rate / 2) * step
    print("MB per 250 ms from the first event (%.1f MB/s = the line):" %
          (line_rate / 1e6))
    print(" ".join("%.1f" % (x / 1e6) for x in b))
    tot = sum(n for _, n in downs)
    span = downs[-1][0] - downs[0][0]
    print("first byte %.3f s, last byte %.3f s after the first event; %.1f MB "
          "in %.3f s = %.1f MB/s; %.2f s below half the line; %d requests" % (
              downs[0][0] - t0, downs[-1][0] - t0, tot / 1e6, span,
              tot / span / 1e6 if span else 0, slow, len(reqs)))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    c, args = sys.argv[1], sys.argv[2:]
    if c == "layout" and len(args) == 4:
        cmd_layout(*args)
    elif c == "watch":
        sys.exit(cmd_watch(args))
    elif c == "workset" and len(args) == 3:
        cmd_workset(*args)
    elif c == "trace" and len(args) in (1, 2):
        cmd_trace(*args)
    elif c == "report" and len(args) == 1:
        cmd_report(args[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
