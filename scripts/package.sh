#!/usr/bin/env bash
# Builds the Debian packages of both agents into target/debian/:
#   ferry-in_VERSION-1_ARCH.deb and ferry-out_VERSION-1_ARCH.deb
# Each holds the binary (/usr/bin), the systemd units of deploy/systemd (with
# ExecStart on /usr/bin), the example config as /etc/ferry/AGENT.toml (a
# conffile), its users for systemd-sysusers, man pages (clap_mangen) and
# bash/zsh/fish completions (clap_complete), generated here from the binary's
# own command line (`AGENT generate-docs DIR`).
# Installs cargo-deb from crates.io when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "== cargo install cargo-deb"
  cargo install --locked cargo-deb --version '^3'
fi
if ! command -v dpkg-shlibdeps >/dev/null 2>&1; then
  # cargo-deb computes Depends with dpkg-shlibdeps (dpkg-dev).
  echo "== installing dpkg-dev"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq dpkg-dev >/dev/null
fi

echo "== cargo build --release"
cargo build --release --quiet -p agent-inside -p agent-outside --bins
release=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release

for agent in ferry-in ferry-out; do
  stage="$release/packaging/$agent"
  rm -rf "$stage"
  mkdir -p "$stage/systemd"
  "$release/$agent" generate-docs "$stage" >/dev/null
  gzip -9n "$stage"/man/*.1
  for unit in deploy/systemd/"$agent"-*; do
    sed 's|/usr/local/bin/|/usr/bin/|g' "$unit" >"$stage/systemd/$(basename "$unit")"
  done
  case $agent in
    ferry-in) users='^u ferry-in ' ;;
    ferry-out) users='^u ferry-(out|sign) ' ;;
  esac
  { grep '^#' deploy/sysusers.d-ferry.conf; grep -E "$users" deploy/sysusers.d-ferry.conf; } \
    >"$stage/sysusers.conf"
done

debs="$(dirname "$release")/debian"
rm -f "$debs"/ferry-in_*.deb "$debs"/ferry-out_*.deb
for crate in agent-inside agent-outside; do
  echo "== cargo deb -p $crate"
  cargo deb --no-build --strip -p "$crate"
done
for deb in "$debs"/ferry-in_*.deb "$debs"/ferry-out_*.deb; do
  # A package cut short (a full disk) fails here rather than at install.
  dpkg-deb --info "$deb" >/dev/null
  ls -l "$deb"
done
