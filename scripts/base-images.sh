#!/usr/bin/env bash
# Base images without a registry, made from Debian packages and imported into strata's store:
#   busybox:latest       busybox-static with its applet links (about 2 MB)
#   debian-build:local   debootstrap minbase bookworm + gcc, libc6-dev, make (about 460 MB)
# The rootfs tarballs are cached in $BASE_DATA (default /var/tmp/strata-base); when
# ../shared/peers/setup.sh has made the same tarballs ($PEERS_DATA), they are reused. A second
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

import() { # NAME TARBALL: import unless the store has it
  if "$ST" inspect "$1" >/dev/null 2>&1; then
    echo "base image $1: present"
  else
    "$ST" import "$2" "$1" >/dev/null
    echo "base image $1: imported from $2"
  fi
}
import busybox:latest "$busybox_tar"
import debian-build:local "$debian_tar"
