#!/usr/bin/env python3
"""Deterministic data generator for the Ferry benchmark (Python 3 stdlib only).

Writes two versions of a mixed tree:

  V1_DIR  ~SIZE_MB MiB:  ~45% compressible text (synthetic logs and source-like
                         text, files of 4 KiB .. 20 MiB),
                         ~45% incompressible random bytes (a few 50 .. 200 MiB
                         files),
                         ~10% many small files (100 B .. 16 KiB).
  V2_DIR  V1 plus realistic small changes totalling roughly 1% of the data:
          bytes inserted near the start of a few files (including one large
          random file, so every following byte shifts), in-place edits of a
          few KiB in the middle of large files, appended log files, edited
          small files, new files, deleted files.

Unchanged files in V2 are hard links to V1 (saves time and disk); every
changed file is written as a new inode, so nothing in V1 is ever modified.
All mtimes are fixed (V1 at 2024-01-01, changed files one day later), so the
two trees are byte-for-byte and metadata-for-metadata identical for a given
seed and size.

A JSON summary (file counts, byte counts per category, change bytes) is
written to --stats.
"""

import argparse
import json
import math
import os
import random
import shutil
import sys
import time

KIB = 1024
MIB = 1024 * 1024
BLOCK = 8 * MIB  # write granularity for random data

V1_MTIME = 1704067200  # 2024-01-01T00:00:00Z
V2_MTIME = V1_MTIME + 86400

LEVELS = ["INFO"] * 12 + ["DEBUG"] * 6 + ["WARN"] * 2 + ["ERROR"]
COMPONENTS = ["http", "db", "cache", "auth", "sched", "worker", "gc", "net",
              "store", "sync", "api", "queue", "tls", "dns", "metrics"]
KEYWORDS = ["fn", "let", "mut", "if", "else", "for", "while", "return",
            "match", "impl", "struct", "enum", "pub", "use", "const", "self",
            "Some", "None", "Ok", "Err", "loop", "break", "continue", "where"]


def sub_rng(seed, *parts):
    """Independent deterministic RNG for one object (file, change, ...)."""
    return random.Random("%d/%s" % (seed, "/".join(str(p) for p in parts)))


class Vocab:
    """Seeded vocabulary: words, log message templates, source-like lines."""

    def __init__(self, seed):
        rng = sub_rng(seed, "vocab")
        letters = "abcdefghijklmnopqrstuvwxyz"
        # Zipf-ish word frequencies: common words drawn far more often.
        self.words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10)))
                      for _ in range(3000)]
        self.word_weights = [1.0 / (i + 1) for i in range(len(self.words))]
        self.messages = []
        for _ in range(4000):
            n = rng.randint(3, 12)
            ws = rng.choices(self.words, weights=self.word_weights, k=n)
            self.messages.append(" ".join(ws))
        self.code_lines = []
        for _ in range(20000):
            indent = "    " * rng.choice([0, 1, 1, 2, 2, 2, 3, 3, 4])
            kind = rng.random()
            ws = rng.choices(self.words, weights=self.word_weights, k=rng.randint(1, 6))
            if kind < 0.15:
                line = ""
            elif kind < 0.25:
                line = indent + "// " + " ".join(rng.choices(self.words, k=rng.randint(3, 12)))
            elif kind < 0.6:
                line = "%s%s %s = %s(%s);" % (indent, rng.choice(KEYWORDS), ws[0],
                                              "_".join(ws[1:3]) or ws[0],
                                              ", ".join(ws[3:]))
            elif kind < 0.8:
                line = "%s%s %s {" % (indent, rng.choice(KEYWORDS), "::".join(ws))
            else:
                line = indent + "}"
            self.code_lines.append(line + "\n")


def log_text(vocab, rng, nbytes, start_ts=None):
    """Synthetic log lines: timestamp, level, component, message, ids."""
    out = []
    size = 0
    ts = start_ts if start_ts is not None else rng.randint(1_700_000_000_000, 1_710_000_000_000)
    msgs = vocab.messages
    rand = rng.random
    randint = rng.randint
    choice = rng.choice
    while size < nbytes:
        # generate a batch of lines at a time
        batch = []
        for _ in range(512):
            ts += randint(0, 2500)
            s, ms = divmod(ts, 1000)
            tm = time.gmtime(s)
            line = "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s [%s] %s req=%08x took=%dms\n" % (
                tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms,
                choice(LEVELS), choice(COMPONENTS), choice(msgs),
                int(rand() * 0xFFFFFFFF), randint(0, 900))
            batch.append(line)
        chunk = "".join(batch)
        out.append(chunk)
        size += len(chunk)
    data = "".join(out).encode()
    return data[:nbytes], ts


def code_text(vocab, rng, nbytes):
    """Source-like text: lines drawn from a seeded pool of code-ish lines."""
    out = []
    size = 0
    avg = 40
    while size < nbytes:
        k = max(64, min(200_000, (nbytes - size) // avg + 16))
        chunk = "".join(rng.choices(vocab.code_lines, k=k))
        out.append(chunk)
        size += len(chunk)
    return "".join(out).encode()[:nbytes]


def log_uniform(rng, lo, hi):
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def write_file(path, data, mtime):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (mtime, mtime))


def write_random_file(path, seed_parts, size, mtime, seed):
    rng = sub_rng(seed, *seed_parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(BLOCK, left)
            f.write(rng.randbytes(n))
            left -= n
    os.utime(path, (mtime, mtime))


class Gen:
    def __init__(self, seed, size_mb, v1, v2):
        self.seed = seed
        self.total = size_mb * MIB
        self.v1 = v1
        self.v2 = v2
        self.vocab = Vocab(seed)
        self.rng = sub_rng(seed, "layout")
        # rel path -> (category, size)
        self.files = {}
        self.stats = {"seed": seed, "size_mb": size_mb}

    def progress(self, msg):
        print("  [gen] " + msg, flush=True)

    # ---------------------------------------------------------------- v1
    def gen_v1(self):
        t0 = time.time()
        text_budget = int(self.total * 0.45)
        rand_budget = int(self.total * 0.45)
        small_budget = self.total - text_budget - rand_budget

        # --- compressible text files, 4 KiB .. 20 MiB (log-uniform sizes)
        used = 0
        i = 0
        while used < text_budget:
            size = min(log_uniform(self.rng, 4 * KIB, 20 * MIB), text_budget - used)
            size = max(size, 1)
            r = sub_rng(self.seed, "text", i)
            if i % 2 == 0:
                rel = "logs/%s/app-%04d.log" % (COMPONENTS[i % len(COMPONENTS)], i)
                data, _ = log_text(self.vocab, r, size)
                cat = "log"
            else:
                rel = "src/mod%02d/file%04d.rs" % ((i // 2) % 20, i)
                data = code_text(self.vocab, r, size)
                cat = "code"
            write_file(os.path.join(self.v1, rel), data, V1_MTIME)
            self.files[rel] = (cat, size)
            used += size
            i += 1
        self.progress("text:   %4d files, %8.1f MiB  (%.1fs)" % (i, used / MIB, time.time() - t0))

        # --- incompressible random files, 50 .. 200 MiB each (clipped to budget)
        t1 = time.time()
        used = 0
        j = 0
        while used < rand_budget:
            size = min(self.rng.randint(50 * MIB, 200 * MIB), rand_budget - used)
            rel = "blobs/blob-%02d.bin" % j
            write_random_file(os.path.join(self.v1, rel), ("blob", j), size, V1_MTIME, self.seed)
            self.files[rel] = ("blob", size)
            used += size
            j += 1
        self.progress("random: %4d files, %8.1f MiB  (%.1fs)" % (j, used / MIB, time.time() - t1))

        # --- many small files, 100 B .. 16 KiB, 70% text / 30% binary
        t2 = time.time()
        used = 0
        k = 0
        while used < small_budget:
            size = min(log_uniform(self.rng, 100, 16 * KIB), small_budget - used)
            size = max(size, 1)
            r = sub_rng(self.seed, "small", k)
            d1, d2 = (k // 1000) % 100, (k // 50) % 20
            if r.random() < 0.7:
                ext = r.choice(["txt", "json", "cfg", "md", "py"])
                data = code_text(self.vocab, r, size)
                cat = "small_text"
            else:
                ext = r.choice(["bin", "png", "dat"])
                data = r.randbytes(size)
                cat = "small_bin"
            rel = "small/d%02d/e%02d/f%06d.%s" % (d1, d2, k, ext)
            write_file(os.path.join(self.v1, rel), data, V1_MTIME)
            self.files[rel] = (cat, size)
            used += size
            k += 1
        self.progress("small:  %4d files, %8.1f MiB  (%.1fs)" % (k, used / MIB, time.time() - t2))

        self._fix_dir_mtimes(self.v1, V1_MTIME)
        cats = {}
        for cat, size in self.files.values():
            c = cats.setdefault(cat, {"files": 0, "bytes": 0})
            c["files"] += 1
            c["bytes"] += size
        self.stats["v1"] = {
            "files": len(self.files),
            "bytes": sum(s for _, s in self.files.values()),
            "by_category": cats,
            "gen_seconds": round(time.time() - t0, 2),
        }

    # ---------------------------------------------------------------- v2
    def gen_v2(self):
        t0 = time.time()
        rng = sub_rng(self.seed, "changes")
        v2files = dict(self.files)
        changed = {}   # rel -> bytes (full new content) or ("random", ...) handled inline
        change = {"insert": 0, "edit": 0, "append": 0, "new": 0, "small_edit": 0,
                  "deleted_files": 0, "deleted_bytes": 0}
        counts = {k: 0 for k in ("insert", "edit", "append", "new", "small_edit", "delete")}

        by_cat = {}
        for rel in sorted(self.files):
            by_cat.setdefault(self.files[rel][0], []).append(rel)
        logs = by_cat.get("log", [])
        code = by_cat.get("code", [])
        blobs = by_cat.get("blob", [])
        smalls = by_cat.get("small_text", []) + by_cat.get("small_bin", [])
        smalls.sort()

        touched = set()
        scale = self.total / (1024 * MIB)  # change volumes scale with tree size

        def pick(pool, n):
            pool = [p for p in pool if p not in touched]
            n = min(n, len(pool))
            sel = rng.sample(pool, n)
            touched.update(sel)
            return sorted(sel)

        # 1) bytes inserted near the start: a few text files + one large blob
        #    (every byte after the insertion point shifts).
        for rel in pick(code + logs, 3) + pick(blobs, 1):
            data = self._read(self.v1, rel)
            at = rng.randint(0, max(0, min(len(data) // 10, 64 * KIB)))
            n = rng.randint(100, 4 * KIB)
            ins = rng.randbytes(n) if self.files[rel][0] == "blob" else code_text(self.vocab, rng, n)
            changed[rel] = data[:at] + ins + data[at:]
            change["insert"] += n
            counts["insert"] += 1

        # 2) in-place edits of a few KiB in the middle of large files
        big = [r for r in blobs + logs + code if self.files[r][1] >= 4 * MIB]
        for rel in pick(big, 3):
            data = bytearray(self._read(self.v1, rel))
            for _ in range(rng.randint(2, 4)):
                n = rng.randint(1 * KIB, 8 * KIB)
                mid = len(data) // 2
                at = rng.randint(max(0, mid - len(data) // 4), max(0, mid + len(data) // 4 - n))
                data[at:at + n] = rng.randbytes(n) if self.files[rel][0] == "blob" \
                    else code_text(self.vocab, rng, n)
                change["edit"] += n
            changed[rel] = bytes(data)
            counts["edit"] += 1

        # 3) appended log files (logs grow): ~0.25% of the tree in total
        app_files = pick(logs, 5)
        app_budget = int(self.total * 0.0025)
        for idx, rel in enumerate(app_files):
            data = self._read(self.v1, rel)
            n = max(1 * KIB, app_budget // max(1, len(app_files)))
            extra, _ = log_text(self.vocab, sub_rng(self.seed, "append", idx), n)
            changed[rel] = data + extra
            change["append"] += n
            counts["append"] += 1

        # 4) edited small files (config tweaks)
        for rel in pick(smalls, max(5, int(20 * scale))):
            data = bytearray(self._read(self.v1, rel))
            n = min(len(data), rng.randint(10, 200))
            at = rng.randint(0, len(data) - n)
            data[at:at + n] = rng.randbytes(n) if self.files[rel][0] == "small_bin" \
                else code_text(self.vocab, rng, n)
            changed[rel] = bytes(data)
            change["small_edit"] += n
            counts["small_edit"] += 1

        # 5) deleted files: a couple of text files and a handful of small files
        deleted = pick(code + logs, 2) + pick(smalls, max(5, int(30 * scale)))
        for rel in deleted:
            change["deleted_bytes"] += self.files[rel][1]
            del v2files[rel]
        change["deleted_files"] = len(deleted)
        counts["delete"] = len(deleted)

        # 6) new files: ~0.6% of the tree (one random, a few text, some small)
        new_budget = int(self.total * 0.006)
        new = {}
        rb = new_budget // 2
        new["blobs/new-blob-00.bin"] = ("blob", rb)
        tb = new_budget // 3
        for t in range(3):
            new["logs/new/app-new-%02d.log" % t] = ("log", tb // 3)
        sb = new_budget - rb - tb
        t = 0
        while sb > 0:
            n = min(sb, log_uniform(rng, 100, 16 * KIB))
            new["small/new/n%05d.txt" % t] = ("small_text", n)
            sb -= n
            t += 1
        # new files are written directly below

        # ---- materialise v2: hard links for unchanged files, new inodes otherwise
        for rel in sorted(v2files):
            dst = os.path.join(self.v2, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if rel in changed:
                write_file(dst, changed[rel], V2_MTIME)
                v2files[rel] = (v2files[rel][0], len(changed[rel]))
            else:
                os.link(os.path.join(self.v1, rel), dst)
        for idx, rel in enumerate(sorted(new)):
            cat, n = new[rel]
            dst = os.path.join(self.v2, rel)
            if cat == "blob":
                write_random_file(dst, ("newblob", idx), n, V2_MTIME, self.seed)
            elif cat == "log":
                data, _ = log_text(self.vocab, sub_rng(self.seed, "newlog", idx), n)
                write_file(dst, data, V2_MTIME)
            else:
                write_file(dst, code_text(self.vocab, sub_rng(self.seed, "newsmall", idx), n), V2_MTIME)
            v2files[rel] = (cat, n)
            change["new"] += n
            counts["new"] += 1
        self._fix_dir_mtimes(self.v2, V2_MTIME)

        changed_bytes = change["insert"] + change["edit"] + change["append"] + \
            change["new"] + change["small_edit"]
        v1_bytes = self.stats["v1"]["bytes"]
        self.stats["v2"] = {
            "files": len(v2files),
            "bytes": sum(s for _, s in v2files.values()),
            "changed_files": len(changed),
            "new_files": counts["new"],
            "deleted_files": counts["delete"],
            "change_counts": counts,
            "change_bytes": change,
            "changed_bytes_total": changed_bytes,
            "changed_fraction": round(changed_bytes / max(1, v1_bytes), 5),
            "gen_seconds": round(time.time() - t0, 2),
        }
        self.progress("v2: %d changed (%d inserts, %d mid-file edits, %d appends, %d small edits), "
                      "%d new, %d deleted; %.2f MiB of new content (%.2f%% of v1)  (%.1fs)" % (
                          len(changed), counts["insert"], counts["edit"], counts["append"],
                          counts["small_edit"], counts["new"], counts["delete"],
                          changed_bytes / MIB, 100.0 * changed_bytes / max(1, v1_bytes),
                          time.time() - t0))

    @staticmethod
    def _read(root, rel):
        with open(os.path.join(root, rel), "rb") as f:
            return f.read()

    @staticmethod
    def _fix_dir_mtimes(root, mtime):
        for d, _, _ in os.walk(root, topdown=False):
            os.utime(d, (mtime, mtime))


# ------------------------------------------------------------- mirror (issue 15)
def gen_mirror(root, objects, seed):
    """A tree of `objects` files shaped like a large mirror (issue 15):

      small/dNNNN/fNNNNNNN.txt  most objects: unique text files of 60 B .. 4 KiB,
                                1,000 a directory
      large/blob-NNN.bin        a few large random files (objects // 20,000 of
                                them, 2 .. 6 MiB each)
      pool/main/<l>/<pkg>/<pkg>_<ver>_amd64.deb
                                a package-mirror-shaped tree: one package in 20
                                objects, 2 .. 24 KiB each
      dists/stable/main/binary-amd64/Packages, Packages.gz, Release
                                the indices listing every package (size, SHA256)

    Every file's content is unique (so each small file is a chunk of its own,
    as in a real mirror), and every mtime is fixed, so a given (objects, seed)
    makes the same tree. Returns a dict of counts."""
    import gzip
    import hashlib
    rng = sub_rng(seed, "mirror")
    t0 = time.time()
    n_large = max(1, objects // 20000)
    n_pkgs = objects // 20
    n_small = objects - n_large - n_pkgs - 3
    stats = {"objects": objects, "small": n_small, "large": n_large, "packages": n_pkgs}
    total = 0
    words = ["alpha", "beta", "gamma", "delta", "mirror", "package", "index", "object"]
    for i in range(n_small):
        d = os.path.join(root, "small", "d%04d" % (i // 1000))
        if i % 1000 == 0:
            os.makedirs(d, exist_ok=True)
        line = "object %d %s %08x\n" % (i, words[i % 8], (i * 2654435761) & 0xFFFFFFFF)
        data = (line * (1 + (i * 7919) % (4096 // len(line)))).encode()
        with open(os.path.join(d, "f%07d.txt" % i), "wb") as f:
            f.write(data)
        total += len(data)
        if i % 200000 == 199999:
            print("  [gen] small %d/%d (%.0fs)" % (i + 1, n_small, time.time() - t0), flush=True)
    os.makedirs(os.path.join(root, "large"), exist_ok=True)
    for j in range(n_large):
        size = rng.randint(2 * MIB, 6 * MIB)
        write_random_file(os.path.join(root, "large", "blob-%03d.bin" % j), ("mirror-large", j),
                          size, V1_MTIME, seed)
        total += size
    stanzas = []
    for k in range(n_pkgs):
        name = "pkg%06d" % k
        ver = "1.%d-%d" % (k % 17, 1 + k % 3)
        rel = "pool/main/%s/%s/%s_%s_amd64.deb" % (name[3 + k % 3], name, name, ver)
        size = 2048 + (k * 104729) % (22 * KIB)
        r = sub_rng(seed, "deb", k)
        data = b"!<arch>\ndebian-binary   " + r.randbytes(size - 24)
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        total += size
        stanzas.append("Package: %s\nVersion: %s\nArchitecture: amd64\nFilename: %s\n"
                       "Size: %d\nSHA256: %s\nDescription: generated package %d\n\n"
                       % (name, ver, rel, size, hashlib.sha256(data).hexdigest(), k))
    index = "".join(stanzas).encode()
    dists = os.path.join(root, "dists", "stable")
    binary = os.path.join(dists, "main", "binary-amd64")
    os.makedirs(binary, exist_ok=True)
    packed = gzip.compress(index, mtime=0)
    release = "Origin: ferry-bench\nSuite: stable\nSHA256:\n"
    for rel, data in (("main/binary-amd64/Packages", index), ("main/binary-amd64/Packages.gz", packed)):
        with open(os.path.join(dists, rel), "wb") as f:
            f.write(data)
        total += len(data)
        release += " %s %d %s\n" % (hashlib.sha256(data).hexdigest(), len(data), rel)
    with open(os.path.join(dists, "Release"), "w") as f:
        f.write(release)
    for d, _, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(d, name), (V1_MTIME, V1_MTIME))
    stats["bytes"] = total
    stats["gen_seconds"] = round(time.time() - t0, 1)
    print("  [gen] mirror: %d objects (%d small, %d large, %d packages + 3 indices), %.1f MiB (%.0fs)"
          % (objects, n_small, n_large, n_pkgs, total / MIB, time.time() - t0), flush=True)
    return stats


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--size-mb", type=int, default=1024, help="approximate size of v1 in MiB")
    ap.add_argument("--v1")
    ap.add_argument("--v2")
    ap.add_argument("--mirror", type=int, metavar="OBJECTS",
                    help="write only a mirror-shaped tree of OBJECTS files into --out (issue 15)")
    ap.add_argument("--out", help="with --mirror: the tree's directory (made; must not exist)")
    ap.add_argument("--stats", help="write a JSON summary here")
    a = ap.parse_args()
    if a.mirror is not None:
        if not a.out or os.path.exists(a.out):
            ap.error("--mirror needs --out, a directory that does not exist yet")
        if a.mirror < 100:
            ap.error("--mirror needs at least 100 objects")
        os.makedirs(a.out)
        stats = gen_mirror(a.out, a.mirror, a.seed)
        if a.stats:
            with open(a.stats, "w") as f:
                json.dump(stats, f, indent=2, sort_keys=True)
                f.write("\n")
        return 0
    if not a.v1 or not a.v2:
        ap.error("--v1 and --v2 are required (or --mirror)")
    if a.size_mb < 1:
        ap.error("--size-mb must be >= 1")
    for d in (a.v1, a.v2):
        if os.path.exists(d):
            shutil.rmtree(d)
        os.makedirs(d)
    g = Gen(a.seed, a.size_mb, a.v1, a.v2)
    g.gen_v1()
    g.gen_v2()
    if a.stats:
        with open(a.stats, "w") as f:
            json.dump(g.stats, f, indent=2, sort_keys=True)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
