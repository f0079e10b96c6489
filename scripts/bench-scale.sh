#!/usr/bin/env bash
# Many-file build contexts against BuildKit (Docker 20.10's, started by scripts/peers.sh),
# measured in the same run. Not a test: numbers, not assertions; .ci/run does not run it.
#   bash scripts/bench-scale.sh                      (builds strata in release mode first)
#   SIZES="10000 50000" bash scripts/bench-scale.sh  (default: 10000 50000 200000)
# For each size N: a generated context of N files (N/100 folders src/dNNN of 100 files,
# 0.5-6 KB of seeded pseudo-random bytes each: 50,000 files take about 265 MiB on disk),
# built from a Dockerfile outside the context (-f) that does COPY . /app and RUN ls:
#   cold            --no-cache for both builders (strata keeps one store for the whole run:
#                   only the base image is in it before the first build)     goal <= 0.8x
#   one file changed one file's content rewritten, rebuilt with the cache     goal <= 0.3x
#   nothing changed  rebuilt again with the cache                             goal <= 0.5x
# plus strata's cold time per 1,000 files (goal: flat from 10k to 200k), its peak RSS on the
# cold build (goal <= 64 MiB at 50k) and its COPY and RUN step times (from --progress=plain).
# Then a node-shaped build: a stage whose RUN makes 30,000 small files under
# /app/node_modules, copied into a second stage with COPY --from; cold, both builders.
# Last, the first use of a big base image: node:18-bookworm (as scripts/base-images.sh
# makes it in the default store) loaded into two fresh stores, then FROM it RUN true, its
# four layers unpacked on all cores, and on one core (taskset -c 0: one at a time).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-10000 50000 200000}
PEERS_DATA=${PEERS_DATA:-/var/tmp/strata-peers}
DOCKER=/usr/bin/docker
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "$TIME is missing: apt-get install -y time" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is missing" >&2; exit 1; }
$DOCKER info >/dev/null 2>&1 || { echo "docker is not running: run scripts/peers.sh" >&2; exit 1; }
cargo build --release --locked -p strata >/dev/null 2>&1
ST=$PWD/target/release/strata
WORK=$(mktemp -d /var/tmp/strata-bench-scale.XXXXXX)
ROOT=$WORK/store
IMAGES=()
cleanup() {
    [ ${#IMAGES[@]} -eq 0 ] || $DOCKER rmi "${IMAGES[@]}" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
st() { "$ST" --root "$ROOT" "$@"; }
st import "$PEERS_DATA/busybox-rootfs.tar" busybox:local >/dev/null
$DOCKER image inspect busybox:local >/dev/null 2>&1 ||
    { echo "docker has no busybox:local: run scripts/peers.sh" >&2; exit 1; }

now() { date +%s.%N; }
t() {
    local s e
    s=$(now)
    "$@" >"$WORK/last.log" 2>&1 || { echo "failed: $*" >&2; tail -20 "$WORK/last.log" >&2; return 1; }
    e=$(now)
    awk -v a="$e" -v b="$s" 'BEGIN{printf "%.3f", a - b}'
}
bk() { DOCKER_BUILDKIT=1 $DOCKER build --network=none "$@"; }
# Timed BuildKit build, retried once: Docker 20.10's BuildKit sometimes loses a file of its
# overlay mount in COPY --from ("failed to stat .../buildkit-mountNNN/...") on this machine.
tbk() { t bk "$@" || { echo "BuildKit failed; retrying once" >&2; t bk "$@"; }; }
# A strata build under /usr/bin/time -v with --progress=plain; its report goes to $1.rss and
# its progress to $1.progress.
stv() {
    local out=$1
    shift
    $TIME -v -o "$out.rss" "$ST" --root "$ROOT" build --progress=plain "$@" 2>"$out.progress"
}
row() { printf "%-34s %9.2f s %9.2f s %8.2fx   %s\n" "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN{print a / b}')" "$4"; }
# Peak RSS in MiB from a /usr/bin/time -v report.
rss() { awk -F: '/Maximum resident set size/{printf "%.1f", $2 / 1024}' "$1"; }
# The DONE time of the step whose title line matches $2 in a plain progress log $1.
step() {
    awk -v pat="$2" '
        /^#[0-9]+ \[/ { if (index($0, pat)) id = $1 }
        id != "" && $1 == id && $2 == "DONE" { sub(/s$/, "", $3); print $3; exit }
    ' "$1"
}

# gen DIR N: N files in N/100 folders DIR/src/dNNN, 512-6144 bytes each, seeded.
gen() {
    python3 - "$1" "$2" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(20261206)
for i in range(n):
    d = os.path.join(root, "src", "d%03d" % (i // 100))
    if i % 100 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(rng.randbytes(rng.randint(512, 6144)))
EOF
}

DF=$WORK/Dockerfile
printf 'FROM busybox:local\nCOPY . /app\nRUN ls /app/src | wc -l\n' >"$DF"

echo "case                                  strata    BuildKit    ratio   goal"
declare -A PER1K RSS COPY RUN COPY1 RUN1
for n in $SIZES; do
    ctx=$WORK/ctx-$n
    gen "$ctx" "$n"
    tag=bench-scale-$n
    IMAGES+=("$tag")
    a=$(t stv "$WORK/cold-$n" --no-cache -f "$DF" -t "bench/$tag" "$ctx")
    b=$(tbk --no-cache -f "$DF" -t "$tag" "$ctx")
    row "$n files: cold" "$a" "$b" "<= 0.8x"
    PER1K[$n]=$(awk -v a="$a" -v n="$n" 'BEGIN{printf "%.1f", a * 1000 / n * 1000}')
    RSS[$n]=$(rss "$WORK/cold-$n.rss")
    COPY[$n]=$(step "$WORK/cold-$n.progress" "COPY . /app")
    RUN[$n]=$(step "$WORK/cold-$n.progress" "RUN ls /app/src")
    # One file's content rewritten (same size, other bytes), unique to this run: a content
    # built by an earlier run would be a cache hit for BuildKit, whose cache the bench keeps.
    python3 -c 'import os, sys; p = sys.argv[1]; n = len(open(p, "rb").read()); open(p, "wb").write(os.urandom(n))' "$ctx/src/d000/f00000"
    a=$(t stv "$WORK/changed-$n" -f "$DF" -t "bench/$tag" "$ctx")
    b=$(tbk -f "$DF" -t "$tag" "$ctx")
    row "$n files: one file changed" "$a" "$b" "<= 0.3x"
    COPY1[$n]=$(step "$WORK/changed-$n.progress" "COPY . /app")
    RUN1[$n]=$(step "$WORK/changed-$n.progress" "RUN ls /app/src")
    a=$(t st build -f "$DF" -t "bench/$tag" "$ctx")
    b=$(tbk -f "$DF" -t "$tag" "$ctx")
    row "$n files: nothing changed" "$a" "$b" "<= 0.5x"
    # Contexts are removed only at the end: on ext4 without a journal (this machine's),
    # creating files shortly after deleting many is several times slower (the inode
    # allocator skips recently deleted inodes one by one), which would skew the next size.
done

# Node-shaped: 30,000 small files made by a RUN, copied to the final stage.
node=$WORK/node
mkdir -p "$node/ctx"
cat >"$node/Dockerfile" <<'EOF'
FROM busybox:local AS deps
RUN for d in $(seq 1 300); do mkdir -p /app/node_modules/pkg$d && cd /app/node_modules/pkg$d && for f in $(seq 1 100); do echo "module.exports = $d$f;" > m$f.js; done; done
FROM busybox:local
COPY --from=deps /app/node_modules /app/node_modules
RUN ls /app/node_modules | wc -l
EOF
IMAGES+=(bench-scale-node)
a=$(t stv "$WORK/node" --no-cache -f "$node/Dockerfile" -t bench/node "$node/ctx")
b=$(tbk --no-cache -f "$node/Dockerfile" -t bench-scale-node "$node/ctx")
row "node_modules 30k files: cold" "$a" "$b" "(no goal yet)"
NODE_COPY=$(step "$WORK/node.progress" "COPY --from=deps")
NODE_RUN=$(step "$WORK/node.progress" "RUN for d in")

echo
echo "strata: cold per 1,000 files (goal: flat), peak RSS (goal <= 64 MiB at 50k), step times (DONE as printed)"
printf "%-14s %12s %10s %12s %10s %12s %10s\n" "" "per 1k files" "peak RSS" "cold COPY" "cold RUN" "1-file COPY" "1-file RUN"
for n in $SIZES; do
    printf "%-14s %9s ms %6s MiB %10s s %8s s %10s s %8s s\n" "$n files" "${PER1K[$n]}" "${RSS[$n]}" \
        "${COPY[$n]:-?}" "${RUN[$n]:-?}" "${COPY1[$n]:-?}" "${RUN1[$n]:-?}"
done
printf "%-14s %12s %6s MiB   COPY --from %s s, RUN making 30,000 files %s s\n" \
    "node_modules" "" "$(rss "$WORK/node.rss")" "${NODE_COPY:-?}" "${NODE_RUN:-?}"

# First use of a big base image: its layers unpacked in parallel vs one at a time.
if "$ST" inspect node:18-bookworm >/dev/null 2>&1; then
    "$ST" save -o "$WORK/node-base.tar" node:18-bookworm
    printf 'FROM node:18-bookworm\nRUN true\n' >"$WORK/Dockerfile.base"
    mkdir -p "$WORK/empty"
    for mode in parallel one-core; do
        "$ST" --root "$WORK/base-$mode" load -i "$WORK/node-base.tar" >/dev/null
    done
    sync
    a=$(t "$ST" --root "$WORK/base-parallel" build -f "$WORK/Dockerfile.base" "$WORK/empty")
    b=$(t taskset -c 0 "$ST" --root "$WORK/base-one-core" build -f "$WORK/Dockerfile.base" "$WORK/empty")
    echo
    printf "first use of node:18-bookworm (%s layers): all cores %.2f s, one core %.2f s (%.2fx)\n" \
        "$("$ST" --root "$WORK/base-parallel" inspect node:18-bookworm | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0]["RootFS"]["Layers"]))')" \
        "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN{print a / b}')"
else
    echo "node:18-bookworm is not in the default store (bash scripts/base-images.sh target/release/strata): base image case skipped"
fi
