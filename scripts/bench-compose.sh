#!/usr/bin/env bash
# `compose up -d --build` of the three-service project (web, built from a Dockerfile → api →
# db with a healthcheck and `condition: service_healthy`, all on one port in their own
# network namespaces, web published), cold and warm: strata against Debian's
# docker-compose 1.29 on the peers' dockerd 20.10 (BuildKit builds through the docker CLI:
# COMPOSE_DOCKER_CLI_BUILD=1 DOCKER_BUILDKIT=1), measured in the same run. Not a test:
# numbers, not assertions; .ci/run does not run it.
#   bash scripts/bench-compose.sh          (builds strata in release mode first; RUNS=5)
#   cold  nothing cached: strata a fresh store with only busybox:local; docker the built
#         image removed, then `build --no-cache` and `up -d` (timed together)
#   warm  the project taken down (containers and network removed), its image and build
#         cache kept, then up --build again
# Each time ends when `up -d` returns, that is after db is healthy and web and api started.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
PEERS_DATA=${PEERS_DATA:-/var/tmp/strata-peers}
DOCKER=/usr/bin/docker
command -v docker-compose >/dev/null || { echo "docker-compose is missing: apt-get install -y docker-compose" >&2; exit 1; }
$DOCKER info >/dev/null 2>&1 || { echo "docker is not running: run scripts/peers.sh" >&2; exit 1; }
$DOCKER image inspect busybox:local >/dev/null 2>&1 || { echo "docker has no busybox:local: run scripts/peers.sh" >&2; exit 1; }
cargo build --release --locked -p strata >/dev/null 2>&1
ST=$PWD/target/release/strata
WORK=$(mktemp -d /var/tmp/strata-bench-compose.XXXXXX)
PORT_S=18471
PORT_D=18472
cleanup() {
    (cd "$WORK/docker" && docker-compose -p benchd down -v --rmi local >/dev/null 2>&1) || true
    (cd "$WORK/strata" && "$ST" --root "$WORK/store" compose -p benchs down -v >/dev/null 2>&1) || true
    rm -rf "$WORK"
}
trap cleanup EXIT

project() { # DIR PORT
    mkdir -p "$1/web"
    cat >"$1/web/Dockerfile" <<'EOF'
FROM busybox:local
RUN mkdir -p /srv && for i in $(seq 200); do echo "line $i" >> /srv/build.log; done
CMD ["/bin/sh", "-c", "until wget -q -O /srv/index.html http://api:8080/; do sleep 0.2; done; exec httpd -f -p 8080 -h /srv"]
EOF
    cat >"$1/compose.yaml" <<EOF
services:
  web:
    # The peers' dockerd has no default bridge: RUN without a network on both sides.
    build: { context: ./web, network: none }
    ports: ["127.0.0.1:$2:8080"]
    depends_on: [api]
    stop_grace_period: 1s
  api:
    image: busybox:local
    init: true
    command: ["/bin/sh", "-c", "mkdir -p /srv; until wget -q -O /srv/index.html http://db:8080/; do sleep 0.2; done; exec httpd -f -p 8080 -h /srv"]
    depends_on:
      db:
        condition: service_healthy
  db:
    image: busybox:local
    init: true
    command: ["/bin/sh", "-c", "echo from-db > /data/index.html && exec httpd -f -p 8080 -h /data"]
    volumes: ["data:/data"]
    healthcheck:
      test: ["CMD", "/bin/wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      retries: 30
volumes:
  data:
EOF
}
project "$WORK/strata" $PORT_S
project "$WORK/docker" $PORT_D

now() { date +%s.%N; }
t() { # COMMAND...: seconds
    local s e
    s=$(now)
    "$@" >"$WORK/last.log" 2>&1 || { echo "failed: $*" >&2; tail -30 "$WORK/last.log" >&2; return 1; }
    e=$(now)
    awk -v a="$e" -v b="$s" 'BEGIN{printf "%.3f", a - b}'
}
st() { (cd "$WORK/strata" && "$ST" --root "$WORK/store" compose -p benchs "$@"); }
# /usr/bin first: docker-compose runs `docker build`, and a newer client elsewhere on PATH
# refuses BuildKit without buildx.
dc() { (cd "$WORK/docker" && PATH=/usr/bin:$PATH COMPOSE_DOCKER_CLI_BUILD=1 DOCKER_BUILDKIT=1 docker-compose -p benchd "$@"); }
dc_cold() { dc build --no-cache && dc up -d; }
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

: >"$WORK/s.cold"; : >"$WORK/s.warm"; : >"$WORK/d.cold"; : >"$WORK/d.warm"
for i in $(seq "$RUNS"); do
    # strata, cold: a new store.
    st down -v >/dev/null 2>&1 || true
    rm -rf "$WORK/store"
    "$ST" --root "$WORK/store" import "$PEERS_DATA/busybox-rootfs.tar" busybox:local >/dev/null
    t st up -d --build >>"$WORK/s.cold"; echo >>"$WORK/s.cold"
    st down >/dev/null 2>&1
    t st up -d --build >>"$WORK/s.warm"; echo >>"$WORK/s.warm"
    st down -v >/dev/null 2>&1
    # docker-compose, cold: its image gone and the build run with --no-cache (pruning
    # dockerd 20.10's build cache between runs broke its next container's rootfs here:
    # "stat /bin/sh: no such file or directory").
    dc down -v --rmi local >/dev/null 2>&1 || true
    t dc_cold >>"$WORK/d.cold"; echo >>"$WORK/d.cold"
    dc down >/dev/null 2>&1
    t dc up -d --build >>"$WORK/d.warm"; echo >>"$WORK/d.warm"
    dc down -v >/dev/null 2>&1
    echo "run $i: strata cold $(tail -1 "$WORK/s.cold") warm $(tail -1 "$WORK/s.warm"); docker-compose cold $(tail -1 "$WORK/d.cold") warm $(tail -1 "$WORK/d.warm")" >&2
done
for k in cold warm; do
    s=$(median <"$WORK/s.$k")
    d=$(median <"$WORK/d.$k")
    awk -v k="$k" -v s="$s" -v d="$d" -v n="$RUNS" \
        'BEGIN{printf "compose up -d --build, %s (median of %d): strata %.2f s, docker-compose 1.29 + dockerd 20.10 %.2f s, ratio %.2fx\n", k, n, s, d, s / d}'
done
