#!/usr/bin/env python3
"""Builds a corpus of real consecutive upstream releases, fetched with the
ordinary clients, for the compressed-artifact delta benchmark (compressed.sh).

    corpus.py DIR

DIR/old/<ecosystem>/ and DIR/new/<ecosystem>/ get the older and newer release
of each pair, under their upstream file names:

- wheels: `pip download` of 10 pairs (native: numpy, pillow, cryptography,
  pydantic-core, charset-normalizer, pyyaml; pure: requests, urllib3,
  setuptools, pip), CPython 3.11 manylinux x86_64 where native;
- debs:   `apt-get download` of 14 packages at their Debian bookworm version and
  at their bookworm-security or point-release version;
- crates: `cargo fetch` of 6 crate pairs, taken from a private CARGO_HOME;
- layer:  an OCI-style tar+gzip image layer of the debs' files, made with tar
  and gzip from each generation's debs (what an image rebuilt on the update
  would carry);
- charts: a Helm chart pair, `postgresql-1.4.0.tgz` and `-1.4.1.tgz`, laid out
  as `helm create` and `helm package` lay a chart out (Chart.yaml, values.yaml,
  templates/, files/ with the SQL, sample configs and error codes of each
  generation's postgresql-15 deb), packed with tar and gzip: `helm` is not
  packaged in Debian (and helm's own gzip is Go's, which this corpus does not
  exercise).

Already fetched files are kept; the script is idempotent.
"""

import functools
import glob
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

WHEELS = [
    ("numpy", "2.1.2", "2.1.3"),
    ("pillow", "11.0.0", "11.1.0"),
    ("cryptography", "43.0.1", "43.0.3"),
    ("pydantic-core", "2.27.1", "2.27.2"),
    ("charset-normalizer", "3.4.0", "3.4.1"),
    ("pyyaml", "6.0.1", "6.0.2"),
    ("requests", "2.32.2", "2.32.3"),
    ("urllib3", "2.2.2", "2.2.3"),
    ("setuptools", "75.1.0", "75.2.0"),
    ("pip", "24.2", "24.3"),
]

# Packages with a version in bookworm and a newer one in bookworm-security or
# bookworm's latest point release; the versions are read from apt-cache.
DEBS = [
    "openssl", "libssl3", "tzdata", "postgresql-15", "python3.11-minimal",
    "libpython3.11-stdlib", "bind9-libs", "libexpat1", "curl", "libcurl4",
    "libc6", "systemd", "git", "libxml2",
]

CRATES = [
    ("serde", "1.0.218", "1.0.219"),
    ("syn", "2.0.99", "2.0.100"),
    ("tokio", "1.44.1", "1.44.2"),
    ("regex", "1.11.0", "1.11.1"),
    ("hyper", "1.6.0", "1.7.0"),
    ("rustls", "0.23.27", "0.23.28"),
]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def say(msg):
    print(f"corpus: {msg}", file=sys.stderr, flush=True)


def have(d, pattern):
    return bool(glob.glob(os.path.join(d, pattern)))


def fetch_wheels(root):
    for gen, idx in (("old", 1), ("new", 2)):
        d = os.path.join(root, gen, "wheels")
        os.makedirs(d, exist_ok=True)
        for pair in WHEELS:
            name, ver = pair[0], pair[idx]
            # Wheel file names keep the project's own spelling (PyYAML-...),
            # so compare normalized names, as pip does.
            stem = name.replace("-", "_").lower()
            if any(os.path.basename(f).split("-")[0].replace(".", "_").lower() == stem
                   for f in glob.glob(os.path.join(d, f"*-{ver}-*.whl"))):
                continue
            say(f"pip download {name}=={ver}")
            run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                 "--only-binary=:all:", "--python-version", "3.11",
                 "--implementation", "cp", "--abi", "cp311", "--abi", "abi3",
                 "--abi", "none", "--platform", "manylinux_2_17_x86_64",
                 "--platform", "manylinux2014_x86_64", "--platform", "any",
                 "-d", d, f"{name}=={ver}"])


def deb_versions(pkg):
    """The two newest versions of `pkg` that apt knows, oldest first."""
    out = subprocess.run(["apt-cache", "madison", pkg], check=True,
                         capture_output=True, text=True).stdout
    vers = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 3 and parts[1] not in vers:
            vers.append(parts[1])
    if len(vers) < 2:
        return None

    def cmp(a, b):
        if a == b:
            return 0
        gt = subprocess.run(["dpkg", "--compare-versions", a, "gt", b]).returncode == 0
        return 1 if gt else -1

    vers.sort(key=functools.cmp_to_key(cmp))
    return vers[-2], vers[-1]


def fetch_debs(root):
    for gen in ("old", "new"):
        os.makedirs(os.path.join(root, gen, "debs"), exist_ok=True)
    for pkg in DEBS:
        v = deb_versions(pkg)
        if v is None:
            say(f"{pkg}: fewer than two versions known to apt; skipped")
            continue
        for gen, ver in zip(("old", "new"), v):
            d = os.path.join(root, gen, "debs")
            file_ver = ver.split(":", 1)[-1]
            if have(d, f"{pkg}_{file_ver}_*.deb") or have(d, f"{pkg}_*%3a{file_ver}_*.deb"):
                continue
            say(f"apt-get download {pkg}={ver}")
            run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", f"{pkg}={ver}"], cwd=d,
                stdout=subprocess.DEVNULL)


def fetch_crates(root):
    home = os.path.join(root, ".cargo-home")
    for gen, idx in (("old", 1), ("new", 2)):
        d = os.path.join(root, gen, "crates")
        os.makedirs(d, exist_ok=True)
        if all(have(d, f"{c[0]}-{c[idx]}.crate") for c in CRATES):
            continue
        with tempfile.TemporaryDirectory() as proj:
            deps = "\n".join(f'{c[0]} = "={c[idx]}"' for c in CRATES)
            with open(os.path.join(proj, "Cargo.toml"), "w") as f:
                f.write(f'[package]\nname = "corpus-{gen}"\nversion = "0.0.0"\n'
                        f'edition = "2021"\n\n[dependencies]\n{deps}\n')
            os.makedirs(os.path.join(proj, "src"))
            open(os.path.join(proj, "src", "lib.rs"), "w").close()
            say(f"cargo fetch ({gen} crates)")
            run(["cargo", "fetch", "-q"], cwd=proj,
                env={**os.environ, "CARGO_HOME": home})
        for c in CRATES:
            src = glob.glob(os.path.join(home, "registry", "cache", "*",
                                         f"{c[0]}-{c[idx]}.crate"))
            if not src:
                sys.exit(f"corpus: cargo fetched no {c[0]}-{c[idx]}.crate")
            shutil.copy(src[0], d)


def make_layer(root):
    """A tar+gzip layer of every deb's data, as an image build would lay it."""
    for gen in ("old", "new"):
        out = os.path.join(root, gen, "layer", "layer.tar.gz")
        if os.path.exists(out):
            continue
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with tempfile.TemporaryDirectory() as tree:
            for deb in sorted(glob.glob(os.path.join(root, gen, "debs", "*.deb"))):
                run(["dpkg-deb", "-x", deb, tree])
            say(f"tar | gzip -6 ({gen} layer)")
            # Fixed owner and times, sorted names: reproducible like a build tool.
            tar = subprocess.Popen(
                ["tar", "-C", tree, "--sort=name", "--owner=0", "--group=0",
                 "--numeric-owner", "--mtime=@1700000000", "-cf", "-", "."],
                stdout=subprocess.PIPE)
            with open(out, "wb") as f:
                run(["gzip", "-6", "-n"], stdin=tar.stdout, stdout=f)
            if tar.wait() != 0:
                sys.exit("corpus: tar failed")


CHART_TEMPLATES = {
    "templates/_helpers.tpl": """{{- define "postgresql.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "postgresql.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
""",
    "templates/statefulset.yaml": """apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ include "postgresql.fullname" . }}
  labels:
    {{- include "postgresql.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicaCount }}
  serviceName: {{ include "postgresql.fullname" . }}
  template:
    spec:
      containers:
        - name: postgresql
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          ports:
            - containerPort: {{ .Values.service.port }}
          volumeMounts:
            - name: init
              mountPath: /docker-entrypoint-initdb.d
      volumes:
        - name: init
          configMap:
            name: {{ include "postgresql.fullname" . }}-files
""",
    "templates/configmap.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "postgresql.fullname" . }}-files
data:
{{ (.Files.Glob "files/*").AsConfig | indent 2 }}
""",
    "templates/service.yaml": """apiVersion: v1
kind: Service
metadata:
  name: {{ include "postgresql.fullname" . }}
spec:
  type: {{ .Values.service.type }}
  ports:
    - port: {{ .Values.service.port }}
""",
    "templates/NOTES.txt": "PostgreSQL {{ .Chart.AppVersion }} is listening on port {{ .Values.service.port }}.\n",
    ".helmignore": ".git/\n*.swp\n*.bak\n",
}


def make_charts(root):
    """A Helm chart per generation, bundling that generation's postgresql-15
    files, packed as `helm package` packs it (tar of `postgresql/`, gzip)."""
    for gen, chart_ver in (("old", "1.4.0"), ("new", "1.4.1")):
        d = os.path.join(root, gen, "charts")
        out = os.path.join(d, f"postgresql-{chart_ver}.tgz")
        if os.path.exists(out):
            continue
        debs = glob.glob(os.path.join(root, gen, "debs", "postgresql-15_*.deb"))
        if not debs:
            say(f"{gen}: no postgresql-15 deb; no chart")
            continue
        app_ver = os.path.basename(debs[0]).split("_")[1].split("-")[0]
        os.makedirs(d, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            run(["dpkg-deb", "-x", debs[0], os.path.join(tmp, "deb")])
            share = os.path.join(tmp, "deb", "usr", "share", "postgresql", "15")
            chart = os.path.join(tmp, "postgresql")
            os.makedirs(os.path.join(chart, "templates"))
            os.makedirs(os.path.join(chart, "files"))
            for f in sorted(os.listdir(share)):
                if f.endswith((".sql", ".sample")) or f in ("errcodes.txt", "sql_features.txt"):
                    shutil.copy(os.path.join(share, f), os.path.join(chart, "files"))
            with open(os.path.join(chart, "Chart.yaml"), "w") as f:
                f.write(f"apiVersion: v2\nname: postgresql\ndescription: PostgreSQL with its "
                        f"initialisation files\ntype: application\nversion: {chart_ver}\n"
                        f"appVersion: \"{app_ver}\"\n")
            with open(os.path.join(chart, "values.yaml"), "w") as f:
                f.write(f"replicaCount: 1\nimage:\n  repository: docker.io/library/postgres\n"
                        f"  tag: \"{app_ver}\"\nservice:\n  type: ClusterIP\n  port: 5432\n")
            for name, text in CHART_TEMPLATES.items():
                with open(os.path.join(chart, name), "w") as f:
                    f.write(text)
            say(f"tar | gzip ({gen} chart {chart_ver})")
            tar = subprocess.Popen(
                ["tar", "-C", tmp, "--sort=name", "--owner=0", "--group=0",
                 "--numeric-owner", "--mtime=@1700000000", "-cf", "-", "postgresql"],
                stdout=subprocess.PIPE)
            with open(out, "wb") as f:
                run(["gzip", "-6", "-n"], stdin=tar.stdout, stdout=f)
            if tar.wait() != 0:
                sys.exit("corpus: tar failed")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = os.path.abspath(sys.argv[1])
    fetch_wheels(root)
    fetch_debs(root)
    fetch_crates(root)
    make_layer(root)
    make_charts(root)
    for gen in ("old", "new"):
        for eco in sorted(os.listdir(os.path.join(root, gen))):
            d = os.path.join(root, gen, eco)
            files = os.listdir(d)
            size = sum(os.path.getsize(os.path.join(d, f)) for f in files)
            say(f"{gen}/{eco}: {len(files)} files, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
