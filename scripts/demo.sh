#!/usr/bin/env bash
# Ferry's main job, end to end, on real data: Debian packages fetched with
# apt-get and the machine's license texts stand in for an upstream mirror.
#
#   outside: keygen, first export, an upstream update, delta export
#   inside:  trust, verify, import both bundles, serve, fetch over HTTP
#   apt:     a `type = "apt"` source mirroring `jq` and its dependencies from
#            this machine's Debian mirror, InRelease verified with Debian's
#            archive key; apt-get (in a private root) then updates from
#            ferry-in serve with Debian's key, and from the site-signed
#            filtered view with the key `ferry-in site-key` prints.
#
# Work directory: $DEMO_DIR (default /tmp/ferry-demo), wiped first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
demo=${DEMO_DIR:-/tmp/ferry-demo}
port=${DEMO_PORT:-18080}

say() { printf '\n== %s\n' "$*"; }
bytes() { du -sb "$1" | cut -f1; }
human() { numfmt --to=iec-i --suffix=B "$1"; }

need=()
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

say "building ferry-out and ferry-in (release)"
cargo build --release --quiet -p agent-outside -p agent-inside
# Where cargo put them: $CARGO_TARGET_DIR if set (relative to the root), else target/.
bin=$(cd "$root" && realpath -m "${CARGO_TARGET_DIR:-target}")/release
out="$bin/ferry-out"
in="$bin/ferry-in"

rm -rf "$demo"
mkdir -p "$demo/upstream/mirror/debs" "$demo/media"
cd "$demo"

say "fetching real upstream data (Debian packages with apt-get download)"
apt-get update -qq || echo "(apt-get update failed; using what the package lists have)"
first=(zstd rsync jq less tree)
second=(bc file)
(cd upstream/mirror/debs && apt-get download -qq "${first[@]}" 2>&1 | grep -v unsandboxed || true)
cp -r /usr/share/common-licenses upstream/mirror/licenses
# A large archive that changes a little between versions, as release tarballs do.
cp -r /usr/share/doc docs-src
tar -cf upstream/mirror/docs.tar docs-src
ls -l upstream/mirror/debs upstream/mirror/docs.tar

# The machine's Debian mirror and suite (deb822 or one-line form).
sources=$(cat /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null || true)
mirror=$(printf '%s\n' "$sources" | sed -n 's/^URIs: *\([^ ]*\).*/\1/p; s/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p' | head -1)
suite=$(printf '%s\n' "$sources" | sed -n 's/^Suites: *\([^ ]*\).*/\1/p; s/^deb \(\[[^]]*\] \)\{0,1\}[^ ]* \([^ ]*\) .*/\2/p' | head -1)
mirror=${mirror:-http://deb.debian.org/debian}; suite=${suite:-bookworm}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

cat > ferry-out.toml <<CFG
[[source]]
name = "mirror"
type = "files"
path = "$demo/upstream/mirror"

[[source]]
name = "debian"
type = "apt"
url = "$mirror"
suites = ["$suite"]
components = ["main"]
architectures = ["amd64"]
packages = ["jq"]
keyring = "$keyring"
CFG
echo "apt source: jq and its closure from $mirror $suite main"

say "outside: keygen"
"$out" --state out-state keygen

say "inside: trust the outside's key, for the outside's stream"
stream=$("$out" --state out-state status | awk '/^stream:/{print $2}')
"$in" --state in-state trust add out-state/signing.pub --stream "$stream"

say "outside: first export"
"$out" --state out-state export --config ferry-out.toml --to media/stick1
b1=$(bytes media/stick1)

say "upstream update: two new packages, an edited file, a removed file, a file added inside the archive"
(cd upstream/mirror/debs && apt-get download -qq "${second[@]}" 2>&1 | grep -v unsandboxed || true)
printf '\nLocal note appended by the demo.\n' >> upstream/mirror/licenses/GPL-3
rm -f upstream/mirror/licenses/Artistic
mkdir -p docs-src/aaa-new && date > docs-src/aaa-new/NEWS
tar -cf upstream/mirror/docs.tar docs-src

say "outside: delta export"
"$out" --state out-state export --config ferry-out.toml --to media/stick2
b2=$(bytes media/stick2)
"$out" --state out-state status

say "inside: verify and import both sticks (in one media directory)"
mkdir -p media/carried
cp -r media/stick1/* media/stick2/* media/carried/
"$in" --state in-state verify media/carried
"$in" --state in-state import media/carried
"$in" --state in-state status

say "inside: serve and fetch"
"$in" --state in-state serve --listen "127.0.0.1:$port" 2> serve.log &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
deb=$(cd upstream/mirror/debs && ls bc_*.deb | head -1)
curl -fsS -o fetched.deb "http://127.0.0.1:$port/files/mirror/debs/$deb"
up=$(sha256sum "upstream/mirror/debs/$deb" | cut -d' ' -f1)
got=$(sha256sum fetched.deb | cut -d' ' -f1)
echo "fetched /files/mirror/debs/$deb: sha256 $got"
[ "$up" = "$got" ] || { echo "MISMATCH: upstream has $up"; exit 1; }
curl -fsS -D - -o /dev/null -r 0-99 "http://127.0.0.1:$port/files/mirror/debs/$deb" | grep -iE '^(HTTP|content-range|etag)'
# A generation is its path index over objects by SHA-256 (no tree of files):
# written out as a plain tree of hard links to compare it with upstream.
rm -rf served-tree
"$in" --state in-state export-tree served-tree
diff -r upstream/mirror served-tree/files/mirror && echo "inside tree is identical to upstream"

say "apt-get against ferry-in serve (a private apt root; nothing on this machine changes)"
apt_get() { # root, args...
  local r=$1; shift
  APT_CONFIG="$r/apt.conf" apt-get -q -o Dir="$r" -o Dir::State::status="$r/status" \
    -o Debug::NoLocking=1 -o APT::Sandbox::User=root \
    -o APT::Architecture=amd64 -o APT::Architectures::=amd64 "$@"
}
apt_root() { # root, sources line
  mkdir -p "$1"/etc/apt/{sources.list.d,apt.conf.d,preferences.d,trusted.gpg.d} \
    "$1"/var/lib/apt/lists/partial "$1"/var/cache/apt/archives/partial "$1/dl"
  : > "$1/status"; printf 'Dir "%s/";\n' "$1" > "$1/apt.conf"
  printf '%s\n' "$2" > "$1/etc/apt/sources.list"
}
apt_root "$demo/apt-exact" "deb [signed-by=$keyring] http://127.0.0.1:$port/apt/debian/ $suite main"
apt_get "$demo/apt-exact" update
(cd "$demo/apt-exact/dl" && apt_get "$demo/apt-exact" download jq)
echo "downloaded with Debian's own key: $(ls "$demo/apt-exact/dl")"
"$in" --state in-state site-key --binary --output site.gpg
apt_root "$demo/apt-site" "deb [signed-by=$demo/site.gpg] http://127.0.0.1:$port/apt-site/debian/ $suite main"
apt_get "$demo/apt-site" update
(cd "$demo/apt-site/dl" && apt_get "$demo/apt-site" download jq)
listed=$(apt_get "$demo/apt-site" -o APT::Cache-Limit=0 download zsh 2>&1 >/dev/null | head -1 || true)
echo "filtered view (site key): $(ls "$demo/apt-site/dl"); a package not mirrored is not listed: $listed"

tree=$(bytes upstream/mirror)
say "summary"
printf '%-34s %12s\n' "upstream tree" "$(human "$tree")"
printf '%-34s %12s\n' "bundle 1 (first export)" "$(human "$b1")"
printf '%-34s %12s\n' "bundle 2 (delta export)" "$(human "$b2")"
printf '%-34s %12s\n' "a full re-ship would have been" "$(human "$tree")"
echo "demo OK (work directory: $demo)"
