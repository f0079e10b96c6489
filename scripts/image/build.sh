#!/usr/bin/env bash
# The image of strata itself, built by strata:
#   strata-base:bookworm  debootstrap minbase bookworm + uidmap (newuidmap/newgidmap), slirp4netns,
#                         fuse-overlayfs, ca-certificates, git; imported with `strata import`
#   strata:latest         scripts/image/Dockerfile on that base: the release binary (stripped),
#                         user strata 1000:1000 with subordinate ids 100000:65536, USER strata
# The rootfs tarball is cached as $PEERS_DATA/strata-base-rootfs.tar (default
# /var/tmp/strata-peers, beside scripts/peers.sh's), so a second run imports nothing and every
# build step is cached. Needs root (debootstrap and the import of the base do).
#
# Usage: scripts/image/build.sh [--push REF] [--insecure-registry HOST[:PORT]]...
#   --push REF   also tag the image REF (e.g. 127.0.0.1:5000/strata:latest) and push it
# Environment: STRATA_BIN (default target/release/strata), STRATA_IMAGE (default strata:latest),
#   PEERS_DATA, PEERS_MIRROR (the Debian mirror; default: the one this machine's apt uses).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
ST=${STRATA_BIN:-$top/target/release/strata}
IMAGE=${STRATA_IMAGE:-strata:latest}
BASE=strata-base:bookworm
PEERS_DATA=${PEERS_DATA:-/var/tmp/strata-peers}
push_ref="" insecure=()
while (($#)); do
  case $1 in
    --push) push_ref=${2:?--push needs a REF}; shift 2 ;;
    --push=*) push_ref=${1#--push=}; shift ;;
    --insecure-registry) insecure+=(--insecure-registry "${2:?}"); shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x $ST ]] || { echo "error: no strata binary at $ST (cargo build --release, or set STRATA_BIN)" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "error: needs root (strata build and debootstrap do)" >&2; exit 1; }
mkdir -p "$PEERS_DATA"

mirror() {
  local u
  u=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
  [[ -n $u ]] || u=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  echo "${u:-http://deb.debian.org/debian}"
}

# 1. the base rootfs, cached
rootfs_tar=$PEERS_DATA/strata-base-rootfs.tar
if [[ ! -f $rootfs_tar ]]; then
  need=()
  for p in debootstrap libcap2-bin; do # libcap2-bin: setcap
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
  done
  if ((${#need[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  d=$(mktemp -d)
  trap 'rm -rf "$d"' EXIT
  echo "debootstrap bookworm (minbase + uidmap, slirp4netns, fuse-overlayfs, ca-certificates, git) ..." >&2
  debootstrap --variant=minbase --include=uidmap,slirp4netns,fuse-overlayfs,ca-certificates,git \
    bookworm "$d" "${PEERS_MIRROR:-$(mirror)}" >"$PEERS_DATA/debootstrap-strata-base.log" 2>&1 \
    || { tail -20 "$PEERS_DATA/debootstrap-strata-base.log" >&2; exit 1; }
  # trimmed as the official slim images: no docs, man pages, translations, apt lists or caches
  find "$d/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
  rm -rf "$d"/usr/share/man/* "$d"/usr/share/info/* "$d"/var/lib/apt/lists/* "$d"/var/cache/apt/*.bin \
    "$d"/var/cache/apt/archives/*.deb "$d"/var/log/*.log
  find "$d/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  # newuidmap/newgidmap: file capabilities instead of Debian's setuid bit. Setuid root, they
  # open /proc/PID/uid_map as euid 0, and the kernel then wants CAP_SYS_ADMIN (not only
  # CAP_SETUID) for the write, so a container would need SYS_ADMIN in its bounding set; with
  # cap_setuid=ep / cap_setgid=ep they run as the user, who owns the new user namespace, and
  # SETUID/SETGID suffice (tried under podman: see deploy/kubernetes/README.md). The tarball
  # keeps them as security.capability xattrs, which strata import carries into the layer.
  chmod 0755 "$d/usr/bin/newuidmap" "$d/usr/bin/newgidmap"
  setcap cap_setuid=ep "$d/usr/bin/newuidmap"
  setcap cap_setgid=ep "$d/usr/bin/newgidmap"
  tar -C "$d" --numeric-owner --xattrs --xattrs-include='security.capability' -cf "$rootfs_tar.tmp" .
  mv "$rootfs_tar.tmp" "$rootfs_tar"
  rm -rf "$d"
  trap - EXIT
fi

# 2. the base image; re-imported only when the tarball changed (its digest is the history comment)
sum=$(sha256sum "$rootfs_tar" | cut -c1-64)
comment="strata-base rootfs sha256:$sum"
if [[ $("$ST" inspect -f '{{.Comment}}' "$BASE" 2>/dev/null) == "$comment" ]]; then
  echo "base image $BASE: present"
else
  "$ST" import -m "$comment" "$rootfs_tar" "$BASE" >/dev/null
  echo "base image $BASE: imported from $rootfs_tar"
fi

# 3. the image: a context with the Dockerfile and the stripped release binary
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$ctx/Dockerfile"
strip -o "$ctx/strata" "$ST" 2>/dev/null || cp "$ST" "$ctx/strata"
touch -d @0 "$ctx/strata"
version=$("$ctx/strata" version -f '{{.Client.Version}}' 2>/dev/null || echo dev)
revision=$(git -C "$top" rev-parse HEAD 2>/dev/null || echo unknown)
source=$(git -C "$top" remote get-url origin 2>/dev/null || true)
log=$PEERS_DATA/build-strata-image.log
if ! "$ST" build --progress=plain --network none -t "$IMAGE" \
    --build-arg BASE="$BASE" --build-arg VERSION="$version" --build-arg REVISION="$revision" --build-arg SOURCE="$source" \
    "$ctx" >"$log" 2>&1; then
  tail -30 "$log" >&2
  echo "error: building $IMAGE failed (log: $log)" >&2
  exit 1
fi
echo "image $IMAGE: $(tail -1 "$log" | sed 's/^#0 //')"

# 4. check that newuidmap/newgidmap kept their file capabilities through import and build
# (read from the image's root filesystem: the image has no getcap; once per image ID, since
# exporting the root filesystem takes seconds), and that the binary runs
id=$("$ST" inspect -f '{{.Id}}' "$IMAGE")
checked=$PEERS_DATA/strata-image.checked
if [[ $(cat "$checked" 2>/dev/null) != "$id" ]]; then
  caps=$(d=$(mktemp -d) && "$ST" build -q -o "type=local,dest=$d" - <<<"FROM $IMAGE" >/dev/null \
    && (cd "$d" && getcap usr/bin/newuidmap usr/bin/newgidmap); rm -rf "$d")
  grep -q 'newuidmap cap_setuid=ep' <<<"$caps" && grep -q 'newgidmap cap_setgid=ep' <<<"$caps" \
    || { echo "error: newuidmap/newgidmap in $IMAGE lost their file capabilities: ${caps:-none}" >&2; exit 1; }
  echo "$id" >"$checked"
  echo "file capabilities in the image: $(tr '\n' ' ' <<<"$caps")"
else
  echo "file capabilities in the image: checked before (same image ID)"
fi
"$ST" run --rm --network none "$IMAGE" version -f '{{.Client.Version}} {{.Client.GitCommit}}' | sed 's/^/strata in the image: /'

# 5. sizes, and the push
"$ST" size "$BASE" "$IMAGE"
if [[ -n $push_ref ]]; then
  "$ST" tag "$IMAGE" "$push_ref"
  "$ST" push "${insecure[@]}" "$push_ref"
fi
