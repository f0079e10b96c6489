#!/usr/bin/env bash
# Registry benchmarks against skopeo, measured in the same run on the bigtree image
# (conformance/scenarios/bigtree: ~280 MB of layers, one 200 MiB incompressible file and
# 20,000 small files). Each side pushes to its own fresh docker-registry on the loopback
# (storage on /dev/shm), so neither finds the other's blobs. Not a test: numbers only.
#   bash scripts/bench-registry.sh          (builds strata in release mode first)
# Rows:
#   push    strata push (layers already gzip-compressed in the store: transfer only)
#           vs skopeo copy oci:DIR docker://  (the same compressed blobs from an OCI layout)
#   pull    strata pull into an empty store (download, verify, decompress, tar check, keep
#           both forms) vs skopeo copy docker:// oci:DIR (download and verify only)
#   push+gz strata's first push, which also gzip-compresses the layers (as docker push does)
set -euo pipefail
cd "$(dirname "$0")/.."
SCEN=${SCEN:-conformance/scenarios}
PEERS_DATA=${PEERS_DATA:-/var/tmp/strata-peers}
cargo build --release --locked -p strata >/dev/null 2>&1
ST=$PWD/target/release/strata
WORK=$(mktemp -d /dev/shm/strata-bench-reg.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# start_registry NAME: sets REG=127.0.0.1:PORT (no command substitution: the registry's pid
# must reach PIDS in this shell, for the cleanup).
start_registry() {
  local name=$1 port
  port=$(free_port)
  mkdir -p "$WORK/$name"
  cat >"$WORK/$name/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/$name/data
http:
  addr: 127.0.0.1:$port
EOF
  /usr/bin/docker-registry serve "$WORK/$name/config.yml" >"$WORK/$name/log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  REG="127.0.0.1:$port"
}

now() { date +%s.%N; }
t() { local s e; s=$(now); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }; e=$(now); awk -v a="$e" -v b="$s" 'BEGIN{printf "%.3f", a - b}'; }
row() { printf "%-10s %9.2f s %9.2f s %8.2fx\n" "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN{print a / b}')"; }

A="$WORK/store-a"
st() { "$ST" --root "$A" "$@"; }
st import "$PEERS_DATA/busybox-rootfs.tar" busybox:local >/dev/null
echo "building bigtree..." >&2
st build -q -t bench/bigtree "$SCEN/bigtree" >/dev/null

start_registry strata-first; R1=$REG
start_registry strata; R2=$REG
start_registry skopeo; R3=$REG

# strata's first push: compresses the layers (kept in the store) and uploads them.
st tag bench/bigtree "$R1/bench/bigtree:1"
gz=$(t st push "$R1/bench/bigtree:1")
# The same compressed blobs as an OCI layout for skopeo.
st save --format oci -o "$WORK/bigtree.oci.tar" bench/bigtree
mkdir -p "$WORK/layout" && tar -C "$WORK/layout" -xf "$WORK/bigtree.oci.tar"
st tag bench/bigtree "$R2/bench/bigtree:1"
a=$(t st push "$R2/bench/bigtree:1")
b=$(t skopeo copy --dest-tls-verify=false "oci:$WORK/layout" "docker://$R3/bench/bigtree:1")

c=$(t "$ST" --root "$WORK/store-b" pull "$R2/bench/bigtree:1")
d=$(t skopeo copy --src-tls-verify=false "docker://$R3/bench/bigtree:1" "oci:$WORK/skopeo-pulled:1")

size=$(du -sb "$WORK/layout/blobs" | cut -f1)
echo "bigtree: $((size / 1000000)) MB of compressed blobs"
echo "op            strata      skopeo     ratio"
row "push" "$a" "$b"
row "pull" "$c" "$d"
printf "%-10s %9.2f s   (first push, gzip of the layers included)\n" "push+gz" "$gz"
