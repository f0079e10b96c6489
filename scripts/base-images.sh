#!/usr/bin/env bash
# Base images without a registry, made from Debian packages and imported into strata's store:
#   busybox:latest       busybox-static with its applet links (about 2 MB)
#   debian-build:local   debootstrap minbase bookworm + gcc, libc6-dev, make (about 460 MB)
#   debian:bookworm-slim debootstrap minbase bookworm (about 110 MB)
# and, built by strata from scripts/base/Dockerfile on top of debian:bookworm-slim with apt:
#   node:18-bookworm, node:18-bookworm-slim, python:3.11-bookworm, python:3.11-slim-bookworm,
#   golang:1.19-bookworm
# and the arm64 busybox rootfs, busybox-arm64-rootfs.tar (scripts/busybox-arm64.sh): busybox:latest
# is an index of the two (issue 18).
# The rootfs tarballs are cached in $BASE_DATA (default /var/tmp/strata-base); when
# scripts/peers.sh has made the same tarballs ($PEERS_DATA), they are reused. A second
# run does nothing. Needs root. Usage: scripts/base-images.sh STRATA_BINARY
set -euo pipefail
ST=${1:?usage: base-images.sh STRATA_BINARY}
BASE_DATA=${BASE_DATA:-/var/tmp/strata-base}
PEERS_DATA=${PEERS_DATA:-/var/tmp/strata-peers}
mkdir -p "$BASE_DATA"

need=()
for p in busybox-static debootstrap; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

mirror() {
  local u
  u=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
  [[ -n $u ]] || u=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  echo "${u:-http://deb.debian.org/debian}"
}

busybox_tar=$BASE_DATA/busybox-rootfs.tar
if [[ ! -f $busybox_tar ]]; then
  if [[ -f $PEERS_DATA/busybox-rootfs.tar ]]; then
    cp "$PEERS_DATA/busybox-rootfs.tar" "$busybox_tar"
  else
    d=$(mktemp -d); mkdir -p "$d/bin"; cp /bin/busybox "$d/bin/"
    chroot "$d" /bin/busybox --install -s /bin
    tar -C "$d" -cf "$busybox_tar.tmp" . && mv "$busybox_tar.tmp" "$busybox_tar" && rm -rf "$d"
  fi
fi
busybox_arm64_tar=$BASE_DATA/busybox-arm64-rootfs.tar
if [[ ! -f $busybox_arm64_tar ]]; then
  if [[ -f $PEERS_DATA/busybox-arm64-rootfs.tar ]]; then
    cp "$PEERS_DATA/busybox-arm64-rootfs.tar" "$busybox_arm64_tar"
  else
    bash "$(dirname "$0")/busybox-arm64.sh" "$busybox_arm64_tar"
  fi
fi
debian_tar=$BASE_DATA/debian-build-rootfs.tar
if [[ ! -f $debian_tar ]]; then
  if [[ -f $PEERS_DATA/debian-build-rootfs.tar ]]; then
    cp "$PEERS_DATA/debian-build-rootfs.tar" "$debian_tar"
  else
    d=$(mktemp -d)
    echo "debootstrap bookworm (minbase + gcc, libc6-dev, make) ..." >&2
    debootstrap --variant=minbase --include=gcc,libc6-dev,make bookworm "$d" "$(mirror)" >"$BASE_DATA/debootstrap.log" 2>&1
    tar -C "$d" -cf "$debian_tar.tmp" . && mv "$debian_tar.tmp" "$debian_tar" && rm -rf "$d"
  fi
fi

slim_tar=$BASE_DATA/debian-slim-rootfs.tar
if [[ ! -f $slim_tar ]]; then
  d=$(mktemp -d)
  echo "debootstrap bookworm (minbase) ..." >&2
  debootstrap --variant=minbase bookworm "$d" "$(mirror)" >"$BASE_DATA/debootstrap-slim.log" 2>&1 \
    || { tail -20 "$BASE_DATA/debootstrap-slim.log" >&2; exit 1; }
  # As the official slim image: apt drops downloaded packages after each install, dpkg skips
  # fsync and docs, man pages and translations; no apt lists, caches or logs are shipped.
  cat >"$d/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT
  cat >"$d/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
force-unsafe-io
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
DPKG
  find "$d/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
  rm -rf "$d"/usr/share/man/* "$d"/usr/share/info/* "$d"/var/lib/apt/lists/* "$d"/var/cache/apt/*.bin \
    "$d"/var/cache/apt/archives/*.deb "$d"/var/log/*.log
  find "$d/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  tar -C "$d" -cf "$slim_tar.tmp" . && mv "$slim_tar.tmp" "$slim_tar" && rm -rf "$d"
fi

import() { # NAME TARBALL: import unless the store has it
  if "$ST" inspect "$1" >/dev/null 2>&1; then
    echo "base image $1: present"
  else
    "$ST" import "$2" "$1" >/dev/null
    echo "base image $1: imported from $2"
  fi
}
# busybox:latest is an image index of linux/amd64 and linux/arm64 (the main job builds
# go-httpd for both platforms): made once, from the two tarballs.
if ! "$ST" inspect --platform linux/arm64 busybox:latest >/dev/null 2>&1; then
  "$ST" import "$busybox_tar" strata-base/busybox:amd64 >/dev/null
  "$ST" import --platform linux/arm64 "$busybox_arm64_tar" strata-base/busybox:arm64 >/dev/null
  "$ST" rmi busybox:latest >/dev/null 2>&1 || true
  "$ST" manifest create busybox:latest strata-base/busybox:amd64 strata-base/busybox:arm64 >/dev/null
  "$ST" rmi strata-base/busybox:amd64 strata-base/busybox:arm64 >/dev/null
  echo "base image busybox:latest: an index of linux/amd64 and linux/arm64"
else
  echo "base image busybox:latest: present (linux/amd64, linux/arm64)"
fi
import debian-build:local "$debian_tar"
import debian:bookworm-slim "$slim_tar"

# The language images: strata builds them (a second run finds every step cached and runs nothing).
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$(dirname "$0")/base/Dockerfile" "$ctx/"
mkdir -p "$ctx/ca"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ctx/ca/"
fi
for t in node:node:18-bookworm node-slim:node:18-bookworm-slim python:python:3.11-bookworm \
  python-slim:python:3.11-slim-bookworm golang:golang:1.19-bookworm; do
  target=${t%%:*} tag=${t#*:}
  log=$BASE_DATA/build-$target.log
  if "$ST" build --progress=plain --target "$target" -t "$tag" "$ctx" >"$log" 2>&1; then
    echo "base image $tag: $(tail -1 "$log" | sed 's/^#0 //')"
  else
    tail -30 "$log" >&2
    echo "error: building base image $tag failed (log: $log)" >&2
    exit 1
  fi
done
