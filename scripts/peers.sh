#!/usr/bin/env bash
# Bring up real peer builders on this machine, from Debian packages only, so that strata can be
# compared with them on the same Dockerfiles in the same run:
#   BuildKit (embedded in Docker Engine 20.10: DOCKER_BUILDKIT=1 /usr/bin/docker build),
#   the legacy Docker builder (DOCKER_BUILDKIT=0), buildah / podman, and a local OCI registry
#   (docker-registry, 127.0.0.1:5000, plain HTTP).
# It also makes two base images without any registry and imports them into docker and podman:
#   busybox:local       busybox-static with its applet links (about 2 MB)
#   debian-build:local  debootstrap minbase bookworm + gcc, libc6-dev, make (about 460 MB, ~40 s)
# The rootfs tarballs are left in $PEERS_DATA so strata can import the same bytes.
# For the multi-platform tests (issue 18) it makes busybox-arm64-rootfs.tar (busybox-static:arm64,
# scripts/busybox-arm64.sh) and pushes a two-platform image index (linux/amd64 + linux/arm64,
# scripts/oci-multiarch.py) to the registry as 127.0.0.1:5000/strata-test/busybox:multi:
# BuildKit 20.10 resolves a non-host platform's base only through a registry.
# Idempotent and quick when everything is up already: run it again at any time (scripts/test.sh
# does). Needs root. It starts dockerd and the registry only when they do not answer, and never
# stops or restarts them.
# Note: use /usr/bin/docker (Debian's 20.10 client). A newer client elsewhere on PATH may
# refuse BuildKit builds without the buildx plugin.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PEERS_DATA=${PEERS_DATA:-/var/tmp/strata-peers}
mkdir -p "$PEERS_DATA"
DOCKER=/usr/bin/docker

need=()
for p in docker.io buildah podman skopeo umoci busybox-static docker-registry debootstrap zstd pigz curl; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# the Debian mirror this machine's apt already uses (override with PEERS_MIRROR)
apt_mirror() {
  local u
  u=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
  [[ -n $u ]] || u=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  echo "$u"
}

# base rootfs tarballs
if [[ ! -f $PEERS_DATA/busybox-rootfs.tar ]]; then
  d=$(mktemp -d); mkdir -p "$d/bin"; cp /bin/busybox "$d/bin/"
  chroot "$d" /bin/busybox --install -s /bin
  tar -C "$d" -cf "$PEERS_DATA/busybox-rootfs.tar" . && rm -rf "$d"
fi
bash "$here/busybox-arm64.sh" "$PEERS_DATA/busybox-arm64-rootfs.tar"
if [[ ! -f $PEERS_DATA/debian-build-rootfs.tar ]]; then
  d=$(mktemp -d)
  debootstrap --variant=minbase --include=gcc,libc6-dev,make bookworm "$d" "${PEERS_MIRROR:-$(apt_mirror)}" >"$PEERS_DATA/debootstrap.log" 2>&1
  tar -C "$d" -cf "$PEERS_DATA/debian-build-rootfs.tar" . && rm -rf "$d"
fi

# dockerd (BuildKit + legacy builder)
if ! $DOCKER info >/dev/null 2>&1; then
  nohup dockerd --iptables=false --ip-forward=false --bridge=none --storage-driver=overlay2 \
    >"$PEERS_DATA/dockerd.log" 2>&1 &
  echo $! >"$PEERS_DATA/dockerd.pid"
  for _ in $(seq 60); do $DOCKER info >/dev/null 2>&1 && break; sleep 0.5; done
fi
$DOCKER image inspect busybox:local >/dev/null 2>&1 || $DOCKER import "$PEERS_DATA/busybox-rootfs.tar" busybox:local >/dev/null
$DOCKER image inspect debian-build:local >/dev/null 2>&1 || $DOCKER import "$PEERS_DATA/debian-build-rootfs.tar" debian-build:local >/dev/null

# podman / buildah (same storage). Two things of this kind of machine: crun 1.8.1 refuses its
# hybrid cgroup layout, and without CAP_SYS_RESOURCE runc cannot raise the rlimits that podman asks
# for by default ("error setting rlimit type 7"), so: runc, cgroupfs, and rlimits within the hard limits.
nofile=$(ulimit -Hn); [[ $nofile == unlimited || $nofile -gt 1048576 ]] && nofile=1048576
mkdir -p /etc/containers/containers.conf.d
cat >/etc/containers/containers.conf.d/50-strata-peers.conf <<CONF
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
CONF
podman image exists localhost/busybox:local || podman import -q "$PEERS_DATA/busybox-rootfs.tar" localhost/busybox:local >/dev/null
podman image exists localhost/debian-build:local || podman import -q "$PEERS_DATA/debian-build-rootfs.tar" localhost/debian-build:local >/dev/null

# local registry on loopback only
if ! curl -fsS http://127.0.0.1:5000/v2/ >/dev/null 2>&1; then
  mkdir -p "$PEERS_DATA/registry"
  cat >"$PEERS_DATA/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $PEERS_DATA/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
YML
  nohup docker-registry serve "$PEERS_DATA/registry.yml" >"$PEERS_DATA/registry.log" 2>&1 &
  echo $! >"$PEERS_DATA/registry.pid"
  for _ in $(seq 40); do curl -fsS http://127.0.0.1:5000/v2/ >/dev/null 2>&1 && break; sleep 0.25; done
fi

# the two-platform busybox index (skipped when the registry has it with both platforms)
multi=127.0.0.1:5000/strata-test/busybox:multi
if ! skopeo inspect --raw --tls-verify=false "docker://$multi" 2>/dev/null | python3 -c '
import json, sys
try:
    got = {(d.get("platform") or {}).get("architecture") for d in json.load(sys.stdin).get("manifests", [])}
except ValueError:
    got = set()
sys.exit(0 if {"amd64", "arm64"} <= got else 1)'; then
  d=$(mktemp -d)
  python3 "$here/oci-multiarch.py" "$PEERS_DATA/busybox-rootfs.tar" "$PEERS_DATA/busybox-arm64-rootfs.tar" "$d/oci" multi >/dev/null
  skopeo copy -q --all --dest-tls-verify=false "oci:$d/oci:multi" "docker://$multi" >/dev/null
  rm -rf "$d"
fi

cat <<MSG
peers ready (data in $PEERS_DATA):
  BuildKit:  DOCKER_BUILDKIT=1 $DOCKER build --network=none -t NAME CONTEXT
  legacy:    DOCKER_BUILDKIT=0 $DOCKER build --network=none -t NAME CONTEXT
  buildah:   buildah bud --isolation chroot --layers --build-arg BASE=localhost/busybox:local -t NAME CONTEXT
  registry:  http://127.0.0.1:5000  (skopeo ... --tls-verify=false)
  rootfs:    $PEERS_DATA/busybox-rootfs.tar  $PEERS_DATA/debian-build-rootfs.tar
             $PEERS_DATA/busybox-arm64-rootfs.tar
  multi:     $multi  (image index: linux/amd64 + linux/arm64 busybox)
MSG
