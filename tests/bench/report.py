#!/usr/bin/env python3
"""Turn the metrics collected by run.sh into a table and results.json."""

import argparse
import json
import os
import platform
import sys

MB = 1_000_000          # throughput unit (MB/s = 10^6 bytes per second)
MIB = 1024 * 1024       # size unit in the table


def load_metrics(path):
    m = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or "=" not in line:
                continue
            k, v = line.split("=", 1)
            try:
                m[k] = int(v)
            except ValueError:
                try:
                    m[k] = float(v)
                except ValueError:
                    m[k] = v
    return m


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def machine_info():
    info = {"kernel": platform.release(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    info["mem_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                    break
    except OSError:
        pass
    return info


def fmt_bytes(b):
    if b is None:
        return "n/a"
    return "%14s  %9.2f MiB" % ("{:,}".format(b), b / MIB)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench-dir", required=True)
    a = ap.parse_args()
    d = a.bench_dir
    m = load_metrics(os.path.join(d, "metrics.env"))
    gen = load_json(os.path.join(d, "data", "gen-stats.json")) or {}
    status = load_json(os.path.join(d, "logs", "status.json"))

    v1 = m.get("v1_bytes")
    v2 = m.get("v2_bytes")

    # step -> (label, tree bytes for throughput, output bytes)
    steps = [
        ("keygen", "ferry-out keygen", None, None),
        ("trust", "ferry-in trust add", None, None),
        ("export1", "ferry-out export v1 (first)", v1, m.get("bundle1_bytes")),
        ("import1", "ferry-in  import v1 (first)", v1, None),
        ("export2", "ferry-out export v2 (delta)", v2, m.get("bundle2_bytes")),
        ("import2", "ferry-in  import v2 (delta)", v2, None),
        ("tar_v1", "tar | zstd -T0 -3  v1", v1, m.get("tar_v1_bytes")),
        ("tar_v2", "tar | zstd -T0 -3  v2", v2, m.get("tar_v2_bytes")),
        ("untar_v1", "zstd -d | tar x + sha256sum v1", v1, None),
        ("rsync_batch", "rsync --write-batch v1->v2", v2, m.get("rsync_batch_bytes")),
        ("casync_v1", "casync make v1", v1, m.get("casync_v1_bytes")),
        ("casync_v2", "casync make v2 (same store)", v2, m.get("casync_v2_bytes")),
    ]
    res_steps = {}
    for key, label, tree, out in steps:
        wall = m.get(key + "_wall_s")
        rss = m.get(key + "_rss_kib")
        cpu = m.get(key + "_cpu_s")
        load = m.get(key + "_load")
        if wall is None:
            continue
        thr = (tree / MB / wall) if (tree and wall) else None
        res_steps[key] = {
            "label": label.strip(),
            "wall_s": wall,
            "peak_rss_kib": rss,
            "cpu_s": cpu,
            "load": load,
            "throughput_mb_s": round(thr, 2) if thr else None,
            "tree_bytes": tree,
            "output_bytes": out,
        }

    sizes = {
        "ferry_bundle": {"first": m.get("bundle1_bytes"), "delta": m.get("bundle2_bytes")},
        "tar_zstd": {"first": m.get("tar_v1_bytes"), "delta": m.get("tar_v2_bytes")},
        "rsync_batch": {"first": None, "delta": m.get("rsync_batch_bytes")},
        "rsync_batch_zstd": {"first": None, "delta": m.get("rsync_batch_zst_bytes")},
        "casync_new_chunks_plus_index": {"first": m.get("casync_v1_bytes"),
                                         "delta": m.get("casync_v2_bytes")},
    }
    changed = (gen.get("v2") or {}).get("changed_bytes_total")
    b1, b2 = m.get("bundle1_bytes"), m.get("bundle2_bytes")
    ratios = {
        "first_bundle_over_tar_zstd_v1": ratio(b1, m.get("tar_v1_bytes")),
        "first_bundle_over_tree_v1": ratio(b1, v1),
        "delta_bundle_over_rsync_batch": ratio(b2, m.get("rsync_batch_bytes")),
        "delta_bundle_over_rsync_batch_zstd": ratio(b2, m.get("rsync_batch_zst_bytes")),
        "delta_bundle_over_casync_new": ratio(b2, m.get("casync_v2_bytes")),
        "delta_bundle_over_tar_zstd_v2": ratio(b2, m.get("tar_v2_bytes")),
        "delta_bundle_over_changed_content": ratio(b2, changed),
        "export_delta_over_first_time": ratio(m.get("export2_wall_s"), m.get("export1_wall_s")),
        "first_export_time_over_tar_zstd": ratio(m.get("export1_wall_s"), m.get("tar_v1_wall_s")),
        "first_import_time_over_untar_sha256": ratio(m.get("import1_wall_s"), m.get("untar_v1_wall_s")),
    }
    ratios = {k: (round(v, 4) if v is not None else None) for k, v in ratios.items()}

    # ------------------------------------------------------------ print
    W = 96
    out = []
    p = out.append
    p("=" * W)
    p("Ferry benchmark  |  v1 tree %s in %s files  |  v2 %s in %s files  |  seed %s" % (
        "%.1f MiB" % (v1 / MIB) if v1 else "?", (gen.get("v1") or {}).get("files", "?"),
        "%.1f MiB" % (v2 / MIB) if v2 else "?", (gen.get("v2") or {}).get("files", "?"),
        m.get("seed")))
    g2 = gen.get("v2") or {}
    if g2:
        cc = g2.get("change_counts", {})
        p("v1 -> v2 changes: %d changed files (%d inserts near start, %d mid-file edits, %d appends, "
          "%d small edits), %d new, %d deleted;" % (
              g2.get("changed_files", 0), cc.get("insert", 0), cc.get("edit", 0), cc.get("append", 0),
              cc.get("small_edit", 0), cc.get("new", 0), cc.get("delete", 0)))
        p("                  new content %s bytes (%.2f%% of v1)" % (
            "{:,}".format(changed or 0), 100.0 * g2.get("changed_fraction", 0)))
    mi = machine_info()
    p("machine: %s, %s CPUs, %s GiB RAM; warm page cache; volume size: %s" % (
        mi.get("cpu", "?"), mi.get("cpus"), mi.get("mem_gib", "?"), m.get("volume_size")))
    p("=" * W)
    p("%-30s %9s %11s %8s %5s %12s   %s" % ("Step", "wall s", "MB/s tree", "CPU s", "load", "peak RSS", "output bytes"))
    p("-" * W)
    for key, label, _, _ in steps:
        s = res_steps.get(key)
        if s is None:
            if key.startswith("casync"):
                p("%-30s %9s" % (label, "n/a (casync not installed)"))
            continue
        thr = "%11.1f" % s["throughput_mb_s"] if s["throughput_mb_s"] else "%11s" % "-"
        rss = "%8.1f MiB" % (s["peak_rss_kib"] / 1024) if s["peak_rss_kib"] is not None else "n/a"
        outb = fmt_bytes(s["output_bytes"]) if s["output_bytes"] is not None else ""
        cpu = "%8.2f" % s["cpu_s"] if s.get("cpu_s") is not None else "%8s" % "n/a"
        load = "%5.2f" % s["load"] if s.get("load") is not None else "%5s" % "n/a"
        p("%-30s %9.2f %s %s %s %12s   %s" % (label, s["wall_s"], thr, cpu, load, rss, outb))
    p("-" * W)
    p("MB/s tree = tree bytes (v1 or v2, 10^6 B) / wall time; CPU s = user + sys; load = 1-min load average as the step ended.")
    p("")
    p("%-34s %30s %30s" % ("Bytes carried", "first (v1)", "update (v1 -> v2)"))
    p("-" * W)
    rows = [
        ("ferry bundle", "ferry_bundle"),
        ("tar | zstd -3 (whole tree)", "tar_zstd"),
        ("rsync batch (raw)", "rsync_batch"),
        ("rsync batch | zstd -3", "rsync_batch_zstd"),
        ("casync new chunks + index", "casync_new_chunks_plus_index"),
    ]
    for label, k in rows:
        f, dl = sizes[k]["first"], sizes[k]["delta"]
        if k.startswith("casync") and f is None and dl is None:
            p("%-34s %30s %30s" % (label, "n/a", "n/a"))
            continue
        p("%-34s %30s %30s" % (label, fmt_bytes(f) if f is not None else "-",
                               fmt_bytes(dl) if dl is not None else "-"))
    p("-" * W)
    p("Ratios (lower is better for ferry)")
    labels = [
        ("first_bundle_over_tar_zstd_v1", "first bundle / tar|zstd v1"),
        ("first_bundle_over_tree_v1", "first bundle / v1 tree bytes"),
        ("delta_bundle_over_rsync_batch", "delta bundle / rsync batch"),
        ("delta_bundle_over_rsync_batch_zstd", "delta bundle / rsync batch|zstd"),
        ("delta_bundle_over_casync_new", "delta bundle / casync new chunks+index"),
        ("delta_bundle_over_tar_zstd_v2", "delta bundle / tar|zstd v2"),
        ("delta_bundle_over_changed_content", "delta bundle / new content bytes"),
        ("export_delta_over_first_time", "delta export time / first export time"),
        ("first_export_time_over_tar_zstd", "first export time / tar|zstd v1 time"),
        ("first_import_time_over_untar_sha256", "first import time / zstd -d|tar x+sha256sum"),
    ]
    for k, label in labels:
        v = ratios.get(k)
        p("  %-42s %s" % (label, "%.3f" % v if v is not None else "n/a"))
    p("-" * W)
    p("verify: inside == v1: %s, inside == v2: %s   |   total run %s s" % (
        m.get("verify_v1", "not run"), m.get("verify_v2", "not run"), m.get("total_seconds", "?")))
    p("=" * W)
    text = "\n".join(out)
    print(text)

    results = {
        "params": {"size_mb": m.get("size_mb"), "seed": m.get("seed"),
                   "volume_size": m.get("volume_size"), "have_casync": bool(m.get("have_casync"))},
        "machine": mi,
        "tree": {"v1_bytes": v1, "v2_bytes": v2, "generator": gen},
        "steps": res_steps,
        "bytes": sizes,
        "bundle_volumes": {"first": m.get("bundle1_volumes"), "delta": m.get("bundle2_volumes")},
        "ratios": ratios,
        "verify": {"v1": m.get("verify_v1"), "v2": m.get("verify_v2")},
        "inside_status": status,
        "total_seconds": m.get("total_seconds"),
        "table": text,
    }
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    with open(os.path.join(d, "results.txt"), "w") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
