#!/usr/bin/env bash
# Make the arm64 busybox rootfs tarball for the multi-platform tests (issue 18):
#   scripts/busybox-arm64.sh OUT.tar
# Debian's busybox-static:arm64 (apt-get download, no install: needs `dpkg --add-architecture
# arm64` + apt-get update, which .ci/run does), laid out exactly as the amd64 busybox-rootfs.tar
# of scripts/peers.sh (`busybox --install -s /bin`): bin/busybox plus one symlink
# /bin/<applet> -> /bin/busybox per applet. The arm64 binary is never run: the applet list is the
# host's /bin/busybox --list-full (the same Debian version is downloaded), so the two tarballs
# differ only in bin/busybox. Checks that the binary is an ELF for aarch64 (e_machine 0xB7).
# Does nothing when OUT.tar exists. Needs root (the tarball's files are root's).
set -euo pipefail
out=${1:?usage: busybox-arm64.sh OUT.tar}
[[ -f $out ]] && exit 0
[[ -x /bin/busybox ]] || { echo "busybox-arm64.sh: needs the host's /bin/busybox (busybox-static)" >&2; exit 1; }
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
  apt-get update -qq
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt-get download drops privileges to _apt: the directory must be writable by it.
chown _apt "$work" 2>/dev/null || chmod 0777 "$work"
ver=$(dpkg-query -W -f '${Version}' busybox-static)
( cd "$work" && { apt-get download -qq "busybox-static:arm64=$ver" 2>/dev/null \
    || { echo "busybox-arm64.sh: busybox-static:arm64=$ver not available, taking apt's candidate" >&2
         apt-get update -qq && apt-get download -qq busybox-static:arm64; }; } )
deb=$(ls "$work"/busybox-static_*_arm64.deb)
dpkg-deb -x "$deb" "$work/x"

# e_ident: \x7fELF, class 2 (64-bit), data 1 (little endian); e_machine at offset 18 = 0xB7
python3 - "$work/x/bin/busybox" <<'PY'
import struct, sys
h = open(sys.argv[1], "rb").read(20)
if h[:6] != b"\x7fELF\x02\x01" or struct.unpack_from("<H", h, 18)[0] != 0xB7:
    sys.exit("busybox-arm64.sh: %s is not an ELF 64-bit LSB aarch64 binary" % sys.argv[1])
PY

# As peers.sh's amd64 tarball: a mktemp -d root (mode 0700), bin/ 0755, bin/busybox 0755.
root=$(mktemp -d -p "$work")
mkdir -m 0755 "$root/bin"
install -m 0755 "$work/x/bin/busybox" "$root/bin/busybox"
# `busybox --install -s /bin` puts every applet in /bin as a link to /bin/busybox and leaves
# the existing bin/busybox alone.
/bin/busybox --list-full | while read -r p; do
  a=${p##*/}
  [[ $a == busybox ]] || ln -s /bin/busybox "$root/bin/$a"
done
tar -C "$root" -cf "$out.tmp" . && mv "$out.tmp" "$out"
