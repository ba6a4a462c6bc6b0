#!/usr/bin/env python3
"""Collect and report the results of tests/bench/diode.sh (Python 3 stdlib only).

  diode_report.py case --dir CASE_DIR      # one case: writes CASE_DIR/case.json, prints a line
  diode_report.py table --bench-dir DIR    # all cases: prints tables, writes DIR/diode-results.json
"""

import argparse
import json
import os
import platform
import re
import sys

MB = 1_000_000
MIB = 1024 * 1024
UDP_IP_HEADERS = 28  # the sender's rate counts IPv4 + UDP headers


def load_env(path):
    m = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if "=" not in line:
                    continue
                k, v = line.split("=", 1)
                for conv in (int, float):
                    try:
                        v = conv(v)
                        break
                    except ValueError:
                        pass
                m[k] = v
    except OSError:
        pass
    return m


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def time_file(path):
    """/usr/bin/time -f '%e %U %S %M %x' -> dict."""
    lines = [l for l in read(path).splitlines() if l.strip()]
    if not lines:
        return None
    try:
        e, u, s, m, x = lines[-1].split()
        return {"wall_s": float(e), "user_s": float(u), "sys_s": float(s),
                "cpu_s": round(float(u) + float(s), 2), "peak_rss_kib": int(m), "exit": int(x)}
    except ValueError:
        return None


def udp_counters(path):
    lines = [l.split() for l in read(path).splitlines() if l.startswith("Udp:")]
    if len(lines) < 2:
        return {}
    return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:])}


def rate_bps(s):
    s = str(s).strip()
    mult = {"k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6, "g": 1e9, "G": 1e9}.get(s[-1:], 1.0)
    return float(s[:-1] if s[-1:] in "kKmMgG" else s) * mult


SENT_RE = re.compile(r"(\d+) packets, .* on the wire \(([\d.]+)% more, (\d+) pass\(es\)\) in ([\d.]+)s; "
                     r"([\d.]+) MB/s of bundle data, encoding took ([\d.]+)s")
# printed by senders since the pacer's figures were added
PACE_RE = re.compile(r"first packet after ([\d.]+) ms, ([\d.]+)s of sending lost behind the line rate")


def collect_case(d):
    meta = load_env(os.path.join(d, "meta.env"))
    bundle = meta["bundle_bytes"]
    t0, t1 = float(meta["t_send_start"]), float(meta["t_send_end"])
    c = {k: meta.get(k) for k in ("name", "via", "rate", "overhead", "expect", "relay_args", "rmem_max")}
    c["import"] = bool(meta.get("import"))
    c["offered_mbit_s"] = rate_bps(meta["rate"]) / 1e6
    c["bundle_bytes"] = bundle

    # ---- sender
    tx_log = read(os.path.join(d, "tx.log"))
    m = SENT_RE.search(tx_log)
    tx = {"wall_s": round(t1 - t0, 3), "summary": next((l for l in tx_log.splitlines() if l.startswith("sent ")), None)}
    if m:
        tx.update(packets=int(m.group(1)), wire_overhead_pct=float(m.group(2)), passes=int(m.group(3)),
                  send_s=float(m.group(4)), reported_mb_s=float(m.group(5)), encode_s=float(m.group(6)))
    m = PACE_RE.search(tx_log)
    if m:
        tx.update(first_packet_ms=float(m.group(1)), behind_s=float(m.group(2)))
    tt = time_file(os.path.join(d, "tx.time"))
    if tt:
        tx.update(cpu_s=tt["cpu_s"], user_s=tt["user_s"], sys_s=tt["sys_s"], peak_rss_kib=tt["peak_rss_kib"])
    tx["goodput_mb_s"] = round(bundle / MB / tx["wall_s"], 2)
    if "packets" in tx:
        wire = bundle * (1 + tx["wire_overhead_pct"] / 100)
        # achieved line rate (UDP payload + IP/UDP headers), comparable to the offered rate
        tx["line_mbit_s"] = round((wire + tx["packets"] * UDP_IP_HEADERS) * 8 / 1e6 / tx["wall_s"], 1)
    c["sender"] = tx

    # ---- receiver
    rx = {}
    t_done = None
    incomplete_lines = []
    for line in read(os.path.join(d, "rx.log")).splitlines():
        ts, _, text = line.partition(" ")
        if "received bundle" in text and "completely" in text and t_done is None:
            t_done = float(ts)
        if "incomplete" in text:
            incomplete_lines.append(text)
        if "warning" in text:
            rx.setdefault("warnings", []).append(text)
    st = load_json(os.path.join(d, "diode-receive.json")) or {}
    counters = st.get("counters", {})
    rx["counters"] = counters
    received = st.get("received") or []
    receiving = st.get("receiving") or []
    rx["complete"] = any(r.get("complete") for r in received)
    seg = (received or receiving or [{}])[0]
    rx["segments"] = {k: seg.get(k) for k in ("segments_received", "segments_recoverable",
                                              "segments_missing", "symbols_pending")}
    rx["incomplete_report"] = incomplete_lines
    rt = time_file(os.path.join(d, "rx.time"))
    if rt:
        rx.update(process_wall_s=rt["wall_s"], cpu_s=rt["cpu_s"], user_s=rt["user_s"], sys_s=rt["sys_s"],
                  peak_rss_kib=rt["peak_rss_kib"], exit=rt["exit"])
    rx["decode_s"] = round(counters.get("decode_secs", 0.0), 3)
    if t_done is not None:
        rx["rebuilt_s"] = round(t_done - t0, 3)
        rx["goodput_mb_s"] = round(bundle / MB / (t_done - t0), 2)
    if c["import"]:
        status = load_json(os.path.join(d, "status.json")) or {}
        rx["applied_sequence"] = status.get("applied_sequence")
        rx["imports"] = st.get("imports")
        rx["verify"] = meta.get("verify")
        done = read(os.path.join(d, "import.done")).strip()
        if done:
            rx["imported_s"] = round(float(done) - t0, 3)
            rx["end_to_end_mb_s"] = round(bundle / MB / (float(done) - t0), 2)
        rx["applied"] = rx.get("applied_sequence") == 1 and meta.get("verify") == "ok"
    c["receiver"] = rx

    # ---- relay
    relay = load_json(os.path.join(d, "relay.json")) if meta.get("via") == "relay" else None
    if relay:
        dropped = relay["dropped_random"] + relay["dropped_burst"]
        relay["dropped_pct"] = round(100.0 * dropped / max(1, relay["received"]), 2)
        # the relay's first and last packet, in seconds after the sender's start
        if relay.get("first_packet_unix") is not None:
            relay["first_packet_s"] = round(relay["first_packet_unix"] - t0, 4)
            relay["last_packet_s"] = round(relay["last_packet_unix"] - t0, 4)
    c["relay"] = relay

    # ---- where packets went
    u0, u1 = udp_counters(os.path.join(d, "udp.before")), udp_counters(os.path.join(d, "udp.after"))
    udp = {k: u1[k] - u0.get(k, 0) for k in u1}
    c["udp_snmp_delta"] = udp
    sent = tx.get("packets")
    toward_rx = (relay["forwarded"] + relay["duplicated"]) if relay else sent
    p = {"sent": sent, "received_by_ferry_in": counters.get("packets")}
    if relay:
        p["relay_in"] = relay["received"]
        p["relay_dropped_on_purpose"] = relay["dropped_random"] + relay["dropped_burst"]
        p["relay_kernel_drops"] = relay.get("kernel_drops")
        p["lost_before_relay"] = (sent - relay["received"]) if sent is not None else None
        p["relay_forwarded"] = toward_rx
    if toward_rx is not None and counters.get("packets") is not None:
        # lost on the last hop: the kernel dropped them at ferry-in's socket (buffer full)
        p["lost_before_ferry_in"] = toward_rx - counters["packets"]
    rcvbuf = udp.get("RcvbufErrors")
    if rcvbuf is not None:
        p["kernel_rcvbuf_errors"] = rcvbuf
    unintended = (p.get("lost_before_ferry_in") or 0) + (p.get("lost_before_relay") or 0)
    p["unintended_loss"] = unintended
    if sent:
        p["unintended_loss_pct"] = round(100.0 * unintended / sent, 3)
        # loss as ferry-in saw it (relay duplicates do not count as received)
        dup = relay["duplicated"] if relay else 0
        p["effective_loss_pct"] = round(100.0 * (sent - (counters.get("packets", 0) - dup)) / sent, 3)
    c["packets"] = p

    c["complete"] = rx["complete"] and (rx.get("applied", True) if c["import"] else True)
    c["as_expected"] = meta.get("expect") == "any" or (c["complete"] == (meta.get("expect") == "complete"))
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
        f.write("\n")
    return c


def fmt(v, spec, missing="-"):
    return missing if v is None else format(v, spec)


def case_line(c):
    tx, rx, p = c["sender"], c["receiver"], c["packets"]
    s = "%-19s %s  tx %6.2f s (%6.1f MB/s)" % (c["name"], "complete  " if c["complete"] else "INCOMPLETE", tx["wall_s"], tx["goodput_mb_s"])
    if rx.get("rebuilt_s") is not None:
        s += "  rebuilt %6.2f s (%6.1f MB/s)" % (rx["rebuilt_s"], rx["goodput_mb_s"])
    if rx.get("imported_s") is not None:
        s += "  imported %6.2f s" % rx["imported_s"]
    s += "  loss: relay %s%%, unintended %s pkts" % (
        fmt((c["relay"] or {}).get("dropped_pct"), ".2f", "0"), p.get("unintended_loss"))
    if not c["as_expected"]:
        s += "  [UNEXPECTED: expected %s]" % c["expect"]
    return s


def machine_info():
    info = {"kernel": platform.release(), "cpus": os.cpu_count()}
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            info["cpu"] = line.split(":", 1)[1].strip()
            break
    return info


def loss_label(c):
    a = c.get("relay_args") or ""
    if c["via"] == "direct":
        return "none"
    parts = []
    m = re.search(r"--drop ([\d.]+)", a)
    if m:
        parts.append("%g%% rnd" % (100 * float(m.group(1))))
    m = re.search(r"--burst-loss ([\d.]+)", a)
    if m:
        parts.append("%g%% burst" % (100 * float(m.group(1))))
    return "+".join(parts) or "0%"


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def spread(xs, spec):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return format(xs[0], spec)
    return "%s (%s..%s)" % (format(median(xs), spec), format(min(xs), spec), format(max(xs), spec))


def summary(cases, p):
    """Repeated runs (BENCH_DIODE_REPEAT: CASE, CASE#2, ...): median (min..max) per case."""
    groups = {}
    for c in cases:
        groups.setdefault(c["name"].split("#")[0], []).append(c)
    if all(len(g) < 2 for g in groups.values()):
        return
    p("Per case over its runs, median (min..max): %line = bundle bytes / (sender start -> receiver's 'completely' line) as a")
    p("share of --rate; start = sender start -> first packet; send = first -> last packet; tail = last packet -> 'completely' line")
    p("(first and last packet as the relay saw them); behind = sending time the sender's pacer gave up, more than 5 ms behind.")
    p("%-14s %4s %-22s %-22s %-22s %-22s %-22s %s" % (
        "case", "runs", "%line", "rebuilt s", "start ms", "send s", "tail ms", "behind s"))
    for name, g in groups.items():
        pct, rebuilt, start, send, tail, behind = [], [], [], [], [], []
        for c in g:
            rx, relay = c["receiver"], c.get("relay") or {}
            g_rx = rx.get("goodput_mb_s")
            pct.append(100.0 * g_rx * 8 / c["offered_mbit_s"] if g_rx else None)
            rebuilt.append(rx.get("rebuilt_s"))
            first, last = relay.get("first_packet_s"), relay.get("last_packet_s")
            start.append(None if first is None else 1000 * first)
            send.append(None if first is None else last - first)
            done = rx.get("rebuilt_s")
            tail.append(None if last is None or done is None else 1000 * (done - last))
            behind.append(c["sender"].get("behind_s"))
        p("%-14s %4d %-22s %-22s %-22s %-22s %-22s %s" % (
            name, len(g), spread(pct, ".1f"), spread(rebuilt, ".3f"),
            spread(start, ".0f"), spread(send, ".3f"), spread(tail, ".0f"), spread(behind, ".3f")))
    p("")


def table(bench_dir):
    m = load_env(os.path.join(bench_dir, "metrics.env"))
    names = [l.strip() for l in read(os.path.join(bench_dir, "cases.list")).splitlines() if l.strip()]
    cases = []
    for n in names:
        c = load_json(os.path.join(bench_dir, "cases", n, "case.json"))
        if c:
            cases.append(c)
    bundle = m.get("bundle_bytes")
    mi = machine_info()
    W = 154
    out = []
    p = out.append
    p("=" * W)
    p("Ferry diode benchmark | bundle %s bytes (%.1f MiB, %s files; tree %.1f MiB in %s files) | seed %s | %s, %s CPUs, kernel %s" % (
        "{:,}".format(bundle), bundle / MIB, m.get("bundle_files"), m.get("data_bytes", 0) / MIB,
        m.get("data_files"), m.get("seed"), mi.get("cpu", "?"), mi.get("cpus"), mi.get("kernel")))
    p("net.core.rmem_max %s%s | loopback 127.0.0.1 | MTU 1500 (1408-byte symbols) | receiver --exit-when-idle %s" % (
        m.get("rmem_max_used"),
        " (raised from %s for the run, restored after)" % m.get("rmem_max_orig") if m.get("rmem_raised") else " (unchanged)",
        m.get("idle")))
    p("=" * W)
    p("%-19s %-6s %6s %5s %-10s %-5s %8s %8s %6s %8s %8s %6s %7s %6s %6s %6s %6s" % (
        "case", "via", "offer", "ovh", "loss", "done", "tx wall", "tx good", "line", "rebuilt", "rx good", "%line",
        "wire+%", "enc s", "txCPU", "dec s", "rxCPU"))
    p("%-19s %-6s %6s %5s %-10s %-5s %8s %8s %6s %8s %8s %6s %7s %6s %6s %6s %6s" % (
        "", "", "Mbit/s", "", "(relay)", "", "s", "MB/s", "Mbit/s", "s", "MB/s", "", "", "", "s", "", "s"))
    p("-" * W)
    for c in cases:
        tx, rx = c["sender"], c["receiver"]
        done = "yes" if c["complete"] else "NO"
        if not c["as_expected"]:
            done += "!"
        t_rx = rx.get("rebuilt_s")
        g_rx = rx.get("goodput_mb_s")
        pct_line = (100.0 * g_rx * 8 / c["offered_mbit_s"]) if g_rx else None
        p("%-19s %-6s %6.0f %5s %-10s %-5s %8.2f %8.1f %6s %8s %8s %6s %7s %6s %6s %6s %6s" % (
            c["name"], c["via"], c["offered_mbit_s"], c["overhead"], loss_label(c), done,
            tx["wall_s"], tx["goodput_mb_s"], fmt(tx.get("line_mbit_s"), ".0f"),
            fmt(t_rx, ".2f"), fmt(g_rx, ".1f"), fmt(pct_line, ".0f"),
            fmt(tx.get("wire_overhead_pct"), ".1f"), fmt(tx.get("encode_s"), ".2f"), fmt(tx.get("cpu_s"), ".2f"),
            fmt(rx.get("decode_s"), ".2f"), fmt(rx.get("cpu_s"), ".2f")))
    p("-" * W)
    p("offer = --rate (line rate incl. IP/UDP headers); tx good = bundle bytes / sender wall time; line = line rate the sender achieved;")
    p("rebuilt = sender start -> receiver logs 'received bundle ... completely' (segments rebuilt, written, fsynced, renamed);")
    p("rx good = bundle bytes / rebuilt; %line = rx good as a share of the offered rate; wire+% = UDP payload bytes over bundle bytes;")
    p("enc s = sender's time in RaptorQ encoding (wall, 2 rayon threads); txCPU/rxCPU = process user+sys CPU; dec s = receiver decode_secs.")
    p("")
    p("%-19s %8s %8s %8s %8s %8s %8s %8s %8s %9s %9s %8s  %s" % (
        "case", "sent", "relay in", "relay", "relay", "to rx", "rx pkts", "dup/late", "kernel", "unintend", "effective",
        "RcvbufE", "segments rcvd/recov/missing"))
    p("%-19s %8s %8s %8s %8s %8s %8s %8s %8s %9s %9s %8s" % (
        "", "pkts", "", "dropped", "kdrops", "", "", "", "lost rx", "loss %", "loss %", "(snmp)"))
    p("-" * W)
    for c in cases:
        pk, r, cnt = c["packets"], c["relay"] or {}, c["receiver"]["counters"]
        sg = c["receiver"]["segments"]
        p("%-19s %8s %8s %8s %8s %8s %8s %8s %8s %9s %9s %8s  %s/%s/%s" % (
            c["name"], fmt(pk.get("sent"), "d"), fmt(r.get("received"), "d"), fmt(pk.get("relay_dropped_on_purpose"), "d"),
            fmt(r.get("kernel_drops"), "d"), fmt(pk.get("relay_forwarded", pk.get("sent")), "d"),
            fmt(cnt.get("packets"), "d"), fmt(cnt.get("duplicate_or_late"), "d"),
            fmt(pk.get("lost_before_ferry_in"), "d"), fmt(pk.get("unintended_loss_pct"), ".3f"),
            fmt(pk.get("effective_loss_pct"), ".2f"), fmt(pk.get("kernel_rcvbuf_errors"), "d"),
            sg.get("segments_received"), sg.get("segments_recoverable"), sg.get("segments_missing")))
    p("-" * W)
    p("sent = sender packets; relay dropped = dropped on purpose (random + burst); relay kdrops = dropped by the kernel at the relay's")
    p("socket (relay too slow); to rx = what was sent toward ferry-in (relay: forwarded + duplicates); kernel lost rx = to rx - rx pkts")
    p("(dropped at ferry-in's socket: receiver too slow / buffer full); unintend = loss not caused on purpose, % of sent; effective = loss")
    p("ferry-in saw (relay duplicates removed); dup/late = symbols for segments already rebuilt (the FEC overhead the receiver did not need);")
    p("RcvbufE = kernel-wide UDP RcvbufErrors during the case (counts other programs' UDP too). Outcome of 'any' cases is not judged.")
    p("")
    orig = [c for c in cases if m.get("rmem_raised") and c.get("rmem_max") == m.get("rmem_max_orig")]
    if orig:
        p("Cases %s ran with the original net.core.rmem_max %s (ferry-in's socket buffer: %d bytes as the kernel reports it)." % (
            ", ".join(c["name"] for c in orig), m.get("rmem_max_orig"), 2 * min(32 << 20, int(m.get("rmem_max_orig")))))
    warned = [c["name"] for c in cases if c["receiver"].get("warnings")]
    p("ferry-in warned about a small UDP receive buffer in: %s" % (", ".join(warned) if warned else "no case"))
    imp = [c for c in cases if c["import"]]
    for c in imp:
        rx = c["receiver"]
        p("End to end (%s, --import): rebuilt after %s s, imported and verified after %s s (%s MB/s), applied sequence %s, diff -r %s." % (
            c["name"], fmt(rx.get("rebuilt_s"), ".2f"), fmt(rx.get("imported_s"), ".2f"),
            fmt(rx.get("end_to_end_mb_s"), ".1f"), rx.get("applied_sequence"), rx.get("verify")))
    cp_s, cps_s = m.get("cp_wall_s"), m.get("cp_sync_wall_s")
    if cp_s:
        p("Baseline: cp -a of the bundle (warm page cache) %.3f s = %.0f MB/s; cp -a + sync %.3f s = %.0f MB/s.  Export took %.2f s." % (
            cp_s, bundle / MB / cp_s, cps_s, bundle / MB / cps_s, m.get("export_wall_s", 0)))
    summary(cases, p)
    bad = [c["name"] for c in cases if not c["as_expected"]]
    if bad:
        p("UNEXPECTED outcome (marked '!'): %s" % ", ".join(bad))
    else:
        p("All judged cases as expected (every case with enough overhead complete; the under-provisioned one not).")
    p("=" * W)
    print("\n".join(out))

    res = {
        "machine": mi,
        "bundle_bytes": bundle,
        "bundle_files": m.get("bundle_files"),
        "data_bytes": m.get("data_bytes"),
        "data_files": m.get("data_files"),
        "seed": m.get("seed"),
        "rmem_max": {"original": m.get("rmem_max_orig"), "used": m.get("rmem_max_used"),
                     "raised": bool(m.get("rmem_raised"))},
        "receiver_exit_when_idle": m.get("idle"),
        "baseline": {"cp_wall_s": cp_s, "cp_sync_wall_s": cps_s,
                     "cp_mb_s": round(bundle / MB / cp_s, 1) if cp_s else None,
                     "cp_sync_mb_s": round(bundle / MB / cps_s, 1) if cps_s else None},
        "export_wall_s": m.get("export_wall_s"),
        "total_seconds": m.get("total_seconds"),
        "cases": cases,
        "unexpected": bad,
    }
    path = os.path.join(bench_dir, "diode-results.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=2, sort_keys=True)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    a1 = sub.add_parser("case")
    a1.add_argument("--dir", required=True)
    a2 = sub.add_parser("table")
    a2.add_argument("--bench-dir", required=True)
    a = ap.parse_args()
    if a.cmd == "case":
        print("    " + case_line(collect_case(a.dir)))
    else:
        table(a.bench_dir)


if __name__ == "__main__":
    main()
