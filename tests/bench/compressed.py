#!/usr/bin/env python3
"""Bytes each approach moves to bring an inside holding the old generation of
a corpus of real releases (corpus.py) up to the new one, per ecosystem.

    compressed.py CORPUS WORK FERRY_OUT

Rows:
- ferry-off:    a delta bundle of ferry-out (`files` source: old, then new) with
                `--delta off`: content-defined chunks of the files as they are
- ferry-fast:   the same with `--delta fast` (patches against predecessors, zstd -3)
- ferry-high:   the same with `--delta high` (zstd -19)
- ferry-fast-xz: `--delta fast --delta-xz always` (xz streams reproduced at fast too;
                only when BENCH_FERRY names it)
- rsync:        `rsync --fuzzy --delete-after --no-whole-file --write-batch` new/ onto
                a copy of old/ (--delete-after, so --fuzzy still finds the old release)
- casync:       chunks `casync make` adds to a store that holds old/
- zstd-patch:   `zstd --patch-from=OLD -19 --long=31` of each compressed file
                against its predecessor (plain zstd -19 when it has none)
- bound:        the same on the decompressed content (each file's members
                decompressed and concatenated, against its predecessor's):
                the figure compression-aware deltas aim at

Prints a table (bytes and share of the new generation), then for each Ferry
setting the update's export and import throughput (MB/s of the new generation's
bytes, wall time), their CPU seconds (user + system: the figure to compare on a
shared machine) and peak RSS, and the inside's disk against the bytes it serves;
then the machine's speed in the same run (`tar | zstd -T2 -3` of the new
generation, and `zstd -d | tar -x` with `sha256sum` of every file, before and
after the ecosystems) and Ferry's totals as ratios of it; writes
WORK/results.json.
"""

import gzip
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def size_of(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for d, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(d, f)) for f in files)
    return total


def package_name(eco, filename):
    """The name that pairs a file with its predecessor."""
    if eco == "wheels":
        return filename.split("-", 1)[0].lower()
    if eco == "debs":
        return filename.split("_", 1)[0]
    if eco in ("crates", "charts"):
        return filename.rsplit("-", 1)[0]
    return filename


def ar_members(data):
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        yield name, data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)


def unzstd(data):
    return run(["zstd", "-d", "-q", "-c"], input=data, capture_output=True).stdout


def decompress_stream(name, data):
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name.endswith(".xz"):
        return lzma.decompress(data)
    if name.endswith(".zst"):
        return unzstd(data)
    return data


def decompressed(eco, path):
    """A file's content with every compressed stream expanded, members in order."""
    data = open(path, "rb").read()
    if eco == "wheels":
        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for info in z.infolist():
                out.write(info.filename.encode() + b"\n")
                out.write(z.read(info))
        return out.getvalue()
    if eco == "debs":
        return b"".join(name.encode() + b"\n" + decompress_stream(name, body)
                        for name, body in ar_members(data))
    return gzip.decompress(data)


def patch_size(old, new, tmp):
    """zstd -19 --long=31 of `new` (a path), with `old` as reference if given."""
    out = os.path.join(tmp, "patch.zst")
    cmd = ["zstd", "-q", "-f", "-19", "--long=31", "-T2", new, "-o", out]
    if old is not None:
        cmd[1:1] = [f"--patch-from={old}"]
    run(cmd, stderr=subprocess.DEVNULL)
    return os.path.getsize(out)


def zstd_patch_rows(eco, old_dir, new_dir, tmp):
    olds = {package_name(eco, f): os.path.join(old_dir, f) for f in os.listdir(old_dir)}
    comp = bound = 0
    for f in sorted(os.listdir(new_dir)):
        new = os.path.join(new_dir, f)
        old = olds.get(package_name(eco, f))
        if old is not None and open(old, "rb").read() == open(new, "rb").read():
            continue
        comp += patch_size(old, new, tmp)
        new_dec = os.path.join(tmp, "new.dec")
        with open(new_dec, "wb") as w:
            w.write(decompressed(eco, new))
        old_dec = None
        if old is not None:
            old_dec = os.path.join(tmp, "old.dec")
            with open(old_dec, "wb") as w:
                w.write(decompressed(eco, old))
        bound += patch_size(old_dec, new_dec, tmp)
    return comp, bound


def rsync_batch(old_dir, new_dir, tmp):
    inside = os.path.join(tmp, "inside")
    shutil.copytree(old_dir, inside)
    batch = os.path.join(tmp, "rsync.batch")
    run(["rsync", "-a", "--delete-after", "--fuzzy", "--no-whole-file",
         f"--write-batch={batch}", new_dir + "/", inside + "/"],
        stdout=subprocess.DEVNULL)
    n = os.path.getsize(batch)
    shutil.rmtree(inside)
    return n


def casync_new(old_dir, new_dir, tmp):
    if shutil.which("casync") is None:
        return None
    store = os.path.join(tmp, "casync.store")
    run(["casync", "make", f"--store={store}", os.path.join(tmp, "old.caidx"), old_dir],
        stdout=subprocess.DEVNULL)
    before = size_of(store)
    run(["casync", "make", f"--store={store}", os.path.join(tmp, "new.caidx"), new_dir],
        stdout=subprocess.DEVNULL)
    return size_of(store) - before + os.path.getsize(os.path.join(tmp, "new.caidx"))


def timed(cmd):
    """Runs cmd quietly; returns (seconds, peak RSS in bytes, CPU seconds: user +
    system) of that child. On a shared machine the CPU seconds are the figure to
    compare; the wall time depends on the load. The child is started by GNU time
    when installed: a process forked from this one inherits this one's peak RSS
    in its own (Linux keeps it across exec), which after the bound's decompression
    is hundreds of MiB and would hide the agents' figure."""
    import time
    # The benchmark's own writes (the corpus copied in, the first bundle's
    # export and import) are flushed first: an agent's fsync on the same
    # filesystem would otherwise wait for them (ext4's ordered journal commits
    # every dirty file's data), and the figure would measure the setup.
    os.sync()
    gnu_time = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    if gnu_time:
        fd, report = tempfile.mkstemp()
        os.close(fd)
        cmd = [gnu_time, "-f", "%M %U %S", "-o", report] + cmd
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    secs = time.monotonic() - t0
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err}")
    if gnu_time:
        with open(report) as f:
            kib, user, system = f.read().split()[-3:]
        os.unlink(report)
        return secs, int(kib) * 1024, float(user) + float(system)
    return secs, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def du(path):
    """Bytes a tree takes on disk, counting hard-linked files once."""
    out = subprocess.run(["du", "-s", "-B1", path], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[0])


def ferry_inside(ferry_out, tmp, state, served):
    """Imports media1 then media2 into a fresh inside; (seconds, peak RSS, CPU
    seconds) of the second import, and the inside's disk against the bytes it
    serves (`served`: the new generation's files, which a `files` source
    serves as they are)."""
    ferry_in = os.path.join(os.path.dirname(ferry_out), "ferry-in")
    inside = os.path.join(tmp, "in-state")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    run([ferry_in, "--state", inside, "trust", "add", os.path.join(state, "signing.pub"),
         "--first-use"], **quiet)
    run([ferry_in, "--state", inside, "import", os.path.join(tmp, "media1")], **quiet)
    secs, rss, cpu = timed([ferry_in, "--state", inside, "import", os.path.join(tmp, "media2")])
    return secs, rss, cpu, du(inside) / served


def ferry_delta(ferry_out, old_dir, new_dir, tmp, delta):
    """Bytes of the second bundle, and (seconds, peak RSS, CPU seconds) of its
    export and of its import, and the inside's disk against what it serves."""
    state, src = os.path.join(tmp, "out-state"), os.path.join(tmp, "src")
    cfg = os.path.join(tmp, "ferry-out.toml")
    with open(cfg, "w") as f:
        f.write(f'[[source]]\nname = "corpus"\ntype = "files"\npath = "{src}"\n')
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    # A setting is `--delta`'s value, or `LEVEL-xz` for that level with xz
    # streams reproduced (`--delta-xz always`).
    level, _, xz = delta.partition("-")
    delta_args = ["--delta", level] + (["--delta-xz", "always"] if xz == "xz" else [])
    run([ferry_out, "--state", state, "keygen"], **quiet)
    shutil.copytree(old_dir, src)
    run([ferry_out, "--state", state, "export", "--config", cfg, "--to",
         os.path.join(tmp, "media1")] + delta_args, **quiet)
    shutil.rmtree(src)
    shutil.copytree(new_dir, src)
    media2 = os.path.join(tmp, "media2")
    secs, rss, cpu = timed([ferry_out, "--state", state, "export", "--config", cfg, "--to",
                            media2] + delta_args)
    inside = ferry_inside(ferry_out, tmp, state, size_of(new_dir))
    return size_of(media2), (secs, rss, cpu) + inside


def reference(tree, ecos, tmp):
    """The machine's speed in this run, for the throughput figures to be read
    against: wall seconds of `tar -c | zstd -T2 -3` of the directories `ecos`
    of `tree` (what the issue compares an export with) and of `zstd -d | tar
    -x` of that archive then `sha256sum` of every file (an import's work on
    plain files)."""
    import time
    archive = os.path.join(tmp, "reference.tar.zst")
    names = " ".join(f"'{e}'" for e in ecos)
    t0 = time.monotonic()
    run(f"tar -cf - -C '{tree}' {names} | zstd -q -T2 -3 -o '{archive}'", shell=True)
    packed = time.monotonic() - t0
    out = os.path.join(tmp, "reference-out")
    os.makedirs(out)
    t0 = time.monotonic()
    run(f"zstd -q -d -c '{archive}' | tar -xf - -C '{out}' && "
        f"find '{out}' -type f -print0 | xargs -0 sha256sum > /dev/null", shell=True)
    unpacked = time.monotonic() - t0
    shutil.rmtree(out)
    os.unlink(archive)
    return packed, unpacked


# BENCH_FERRY="off fast" measures only those settings (high is slow).
FERRY_SETTINGS = os.environ.get("BENCH_FERRY", "off fast high").split()


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    corpus, work, ferry_out = sys.argv[1:]
    os.makedirs(work, exist_ok=True)
    results, perf = {}, {}
    # BENCH_SKIP="casync zstd-patch" leaves slow comparators out of a quick run.
    skip = set(os.environ.get("BENCH_SKIP", "").split())
    # BENCH_ECOS="layer charts" measures only those ecosystems of the corpus.
    only = set(os.environ.get("BENCH_ECOS", "").split())
    measured = [e for e in sorted(os.listdir(os.path.join(corpus, "new")))
                if not only or e in only]
    with tempfile.TemporaryDirectory(dir=work) as t:
        before = reference(os.path.join(corpus, "new"), measured, t)
    for eco in measured:
        old_dir = os.path.join(corpus, "old", eco)
        new_dir = os.path.join(corpus, "new", eco)
        print(f"measuring {eco} ...", file=sys.stderr, flush=True)
        row = {"new": size_of(new_dir)}
        for delta in FERRY_SETTINGS:
            with tempfile.TemporaryDirectory(dir=work) as t:
                row[f"ferry-{delta}"], perf[(eco, delta)] = ferry_delta(
                    ferry_out, old_dir, new_dir, t, delta)
        for name, fn in (("rsync", lambda t: rsync_batch(old_dir, new_dir, t)),
                         ("casync", lambda t: casync_new(old_dir, new_dir, t))):
            if name in skip:
                row[name] = None
                continue
            with tempfile.TemporaryDirectory(dir=work) as t:
                row[name] = fn(t)
        if "zstd-patch" in skip:
            row["zstd-patch"] = row["bound"] = None
        else:
            with tempfile.TemporaryDirectory(dir=work) as t:
                row["zstd-patch"], row["bound"] = zstd_patch_rows(eco, old_dir, new_dir, t)
        results[eco] = row
    total = {k: sum(r[k] or 0 for r in results.values()) for k in next(iter(results.values()))}
    results["total"] = {k: (v if any(r[k] is not None for r in results.values()) else None)
                        for k, v in total.items()}
    cols = ["new"] + [f"ferry-{d}" for d in FERRY_SETTINGS] + [
        "rsync", "casync", "zstd-patch", "bound"]
    print(f"{'ecosystem':<10}" + "".join(f"{c:>18}" for c in cols))
    for eco, r in results.items():
        cells = []
        for c in cols:
            if r[c] is None:
                cells.append(f"{'skipped':>18}")
            elif c == "new":
                cells.append(f"{r[c] / 1e6:>15.2f} MB")
            else:
                cells.append(f"{r[c] / 1e6:>8.2f} MB {100 * r[c] / r['new']:>5.1f}%")
        print(f"{eco:<10}" + "".join(cells))
    print()
    print("the update, in MB/s of the new generation's bytes (wall), CPU seconds (user + "
          "system) and peak RSS: export, import; inside disk / served bytes")
    ecos = [e for e in results if e != "total"]
    for eco in ecos:
        for d in FERRY_SETTINGS:
            es, er, ec, is_, ir, ic, disk = perf[(eco, d)]
            new = results[eco]["new"] / 1e6
            print(f"{eco:<10} {d:<5} export {new / es:7.1f} MB/s {ec:6.1f} s CPU ({er / 2**20:5.0f} MiB)"
                  f"  import {new / is_:7.1f} MB/s {ic:6.1f} s CPU ({ir / 2**20:5.0f} MiB)"
                  f"  disk {disk:.2f}x")
    for d in FERRY_SETTINGS:
        es = sum(perf[(e, d)][0] for e in ecos)
        ec = sum(perf[(e, d)][2] for e in ecos)
        is_ = sum(perf[(e, d)][3] for e in ecos)
        ic = sum(perf[(e, d)][5] for e in ecos)
        er = max(perf[(e, d)][1] for e in ecos)
        ir = max(perf[(e, d)][4] for e in ecos)
        new = results["total"]["new"] / 1e6
        print(f"{'total':<10} {d:<5} export {new / es:7.1f} MB/s {ec:6.1f} s CPU ({er / 2**20:5.0f} MiB)"
              f"  import {new / is_:7.1f} MB/s {ic:6.1f} s CPU ({ir / 2**20:5.0f} MiB)")
    # The machine's speed drifts (15 to 25% within an hour on the shared
    # machines these runs were made on): the same run's reference, measured
    # before and after the ecosystems, gives the ratios to compare across runs.
    with tempfile.TemporaryDirectory(dir=work) as t:
        after = reference(os.path.join(corpus, "new"), measured, t)
    new = results["total"]["new"] / 1e6
    print()
    print("reference, the new generation's files on this machine in this run (before / after):")
    print(f"  tar | zstd -T2 -3:                     {new / before[0]:6.1f} / {new / after[0]:6.1f} MB/s")
    print(f"  zstd -d | tar -x, sha256sum each file: {new / before[1]:6.1f} / {new / after[1]:6.1f} MB/s")
    for d in FERRY_SETTINGS:
        es = sum(perf[(e, d)][0] for e in ecos)
        is_ = sum(perf[(e, d)][3] for e in ecos)
        ref_e = (before[0] + after[0]) / 2
        ref_i = (before[1] + after[1]) / 2
        print(f"  ferry {d:<5} export {ref_e / es:5.2f}x tar | zstd's speed, "
              f"import {ref_i / is_:5.2f}x zstd -d | tar -x and sha256sum's")
    results["reference"] = {"before": before, "after": after}
    results["perf"] = {f"{e}/{d}": v for (e, d), v in perf.items()}
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
