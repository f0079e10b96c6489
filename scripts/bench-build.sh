#!/usr/bin/env bash
# Build benchmarks against BuildKit (Docker 20.10's, started by scripts/peers.sh),
# measured in the same run on the scenarios of conformance/scenarios. Prints each time
# and the ratio strata/BuildKit. Not a test: numbers, not assertions.
#   bash scripts/bench-build.sh            (builds strata in release mode first)
# Goals (issue 4): parallel < 3.3 s (floor 3.0 s); runsteps cold <= 0.25x; no-op rebuild
# <= 0.5x as a whole process; bigtree total <= 0.6x.
set -euo pipefail
cd "$(dirname "$0")/.."
SCEN=${SCEN:-conformance/scenarios}
PEERS_DATA=${PEERS_DATA:-/var/tmp/strata-peers}
DOCKER=/usr/bin/docker
cargo build --release --locked -p strata >/dev/null 2>&1
ST=$PWD/target/release/strata
ROOT=$(mktemp -d /var/tmp/strata-bench.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
st() { "$ST" --root "$ROOT" "$@"; }
st import "$PEERS_DATA/busybox-rootfs.tar" busybox:local >/dev/null
$DOCKER info >/dev/null 2>&1 || { echo "docker is not running: run scripts/peers.sh" >&2; exit 1; }

now() { date +%s.%N; }
t() { local s e; s=$(now); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }; e=$(now); awk -v a="$e" -v b="$s" 'BEGIN{printf "%.3f", a - b}'; }
bk() { DOCKER_BUILDKIT=1 $DOCKER build --network=none "$@"; }
row() { printf "%-28s %9.2f s %9.2f s %8.2fx   %s\n" "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN{print a / b}')" "$4"; }

echo "scenario                        strata    BuildKit    ratio   goal"
# parallel: two 3 s stages and an unused 5 s one; cold.
a=$(t st build --no-cache -t bench/parallel "$SCEN/parallel")
b=$(t bk --no-cache -t bench-parallel "$SCEN/parallel")
row "parallel (cold)" "$a" "$b" "strata < 3.3 s (floor 3.0 s)"
# runsteps: 20 RUN steps; cold.
a=$(t st build --no-cache -t bench/runsteps "$SCEN/runsteps")
b=$(t bk --no-cache -t bench-runsteps "$SCEN/runsteps")
row "runsteps (cold)" "$a" "$b" "<= 0.25x"
# no-op rebuild of runsteps, as a whole process.
a=$(t st build -t bench/runsteps "$SCEN/runsteps")
b=$(t bk -t bench-runsteps "$SCEN/runsteps")
row "runsteps no-op rebuild" "$a" "$b" "<= 0.5x"
# bigtree: 20,000 files + 200 MiB, copied into the final stage; cold, layers uncompressed.
a=$(t st build --no-cache -t bench/bigtree "$SCEN/bigtree")
b=$(t bk --no-cache -t bench-bigtree "$SCEN/bigtree")
row "bigtree (cold)" "$a" "$b" "<= 0.6x"
$DOCKER rmi bench-parallel bench-runsteps bench-bigtree >/dev/null 2>&1 || true
