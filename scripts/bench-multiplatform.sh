#!/usr/bin/env bash
# The multi-platform bench of issue 18, measured in the same run: the two-platform go-httpd
# build (examples/go-httpd, cross-compiled: the Go stage runs on the build platform with
# GOOS/GOARCH of the target, the final stage is busybox of the target platform), cold:
#   strata:   strata build --platform linux/amd64,linux/arm64   (one process)
#   BuildKit: Docker 20.10's, --platform linux/amd64 then --platform linux/arm64 (it builds one
#             platform a build without buildx)
# Both take their busybox from the same two-platform index, 127.0.0.1:5000/strata-test/busybox:multi
# (scripts/peers.sh pushes it: BuildKit 20.10 resolves a non-host platform's base only through
# a registry; strata pulls it over plain http, allowed on loopback), and golang:1.19-bookworm
# (built into strata's default store by scripts/base-images.sh; loaded into docker from there
# when docker lacks it). Cold: strata --no-cache on a fresh store holding only the Go image,
# unpacked as docker's store holds a loaded image (UNPACKED=0: unpacked during the build),
# docker --no-cache after `docker builder prune -af`. Every RUN with --network none. Each time
# is the median of $REPS runs. Not a test: numbers, not assertions. Goal: strata <= 0.6x.
#   sudo bash scripts/bench-multiplatform.sh     (root; after scripts/peers.sh and base-images.sh)
# Env: STRATA_BIN (target/release/strata), REPS (3), DOCKERFILE (examples/go-httpd/Dockerfile;
# docker gets a copy without its `# syntax=` line, which 20.10 would fetch from Docker Hub),
# SIDES ("strata docker": one side alone prints its times only), PEERS_DATA.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 1; }
REPS=${REPS:-3}
SIDES=${SIDES:-strata docker}
DOCKERFILE=$(realpath "${DOCKERFILE:-examples/go-httpd/Dockerfile}")
CTX=$PWD/examples/go-httpd
DOCKER=/usr/bin/docker
BUSYBOX=127.0.0.1:5000/strata-test/busybox:multi
GO=golang:1.19-bookworm
ARGS=(--build-arg "BUSYBOX_IMAGE=$BUSYBOX" --build-arg "GO_IMAGE=$GO")
side() { [[ " $SIDES " == *" $1 "* ]]; }

grep -q 'BUILDPLATFORM' "$DOCKERFILE" || {
  echo "$DOCKERFILE is not the cross-compile pattern (FROM --platform=\$BUILDPLATFORM ... AS build)" >&2
  exit 1
}
$DOCKER info >/dev/null 2>&1 || { echo "docker is not running: run scripts/peers.sh" >&2; exit 1; }
skopeo inspect --raw --tls-verify=false "docker://$BUSYBOX" >/dev/null 2>&1 \
  || { echo "$BUSYBOX is not in the registry: run scripts/peers.sh" >&2; exit 1; }

W=$(mktemp -d /var/tmp/strata-bench-mp.XXXXXX)
trap 'rm -rf "$W"' EXIT
sed '/^# syntax=/d' "$DOCKERFILE" >"$W/Dockerfile.docker"

if side strata; then
  ST=$(realpath "${STRATA_BIN:-target/release/strata}")
  [[ -x $ST ]] || { echo "no strata binary at $ST (cargo build --release -p strata, or STRATA_BIN)" >&2; exit 1; }
  "$ST" inspect "$GO" >/dev/null 2>&1 || { echo "$GO is not in strata's store: run scripts/base-images.sh $ST" >&2; exit 1; }
  "$ST" save -o "$W/go.tar" "$GO"
fi
if side docker && ! $DOCKER image inspect "$GO" >/dev/null 2>&1; then
  ST_SRC=$(realpath "${STRATA_BIN:-target/release/strata}")
  echo "== loading $GO into docker (from strata's store)"
  "$ST_SRC" save "$GO" | $DOCKER load >/dev/null
fi

now() { date +%s.%N; }
t() { # COMMAND...: seconds taken (the output goes to $W/last.log)
  local s e
  s=$(now)
  "$@" >"$W/last.log" 2>&1 || { tail -30 "$W/last.log" >&2; echo "failed: $*" >&2; return 1; }
  e=$(now)
  awk -v a="$e" -v b="$s" 'BEGIN{printf "%.3f", a - b}'
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

strata_cold() { # a fresh store with the Go image only, then the one two-platform build
  rm -rf "$W/store"
  "$ST" --root "$W/store" load -i "$W/go.tar" >/dev/null
  # docker's store keeps a loaded image unpacked; strata unpacks a layer at its first use
  # (15 s for the Go image here). Unpacked before the clock starts, as docker's is.
  if [[ ${UNPACKED:-1} == 1 ]]; then
    "$ST" --root "$W/store" run --rm --network none "$GO" true >/dev/null
  fi
  t "$ST" --root "$W/store" build --progress=plain --network none --no-cache \
    --platform linux/amd64,linux/arm64 "${ARGS[@]}" -f "$DOCKERFILE" -t bench-mp/go-httpd "$CTX"
}
bk() { DOCKER_BUILDKIT=1 $DOCKER build --progress=plain --network none --no-cache "${ARGS[@]}" -f "$W/Dockerfile.docker" "$@" "$CTX"; }
docker_both() {
  bk --platform linux/amd64 -t bench-mp-go-httpd:amd64 && bk --platform linux/arm64 -t bench-mp-go-httpd:arm64
}
docker_cold() { # an empty build cache, then amd64 and arm64 one after the other
  $DOCKER builder prune -af >/dev/null
  t docker_both
}

s_times=() d_times=()
for i in $(seq "$REPS"); do
  a=- b=-
  if side strata; then a=$(strata_cold); s_times+=("$a"); fi
  if side docker; then b=$(docker_cold); d_times+=("$b"); fi
  echo "   rep $i: strata $a  BuildKit $b"
done

echo
echo "== two-platform go-httpd (linux/amd64 + linux/arm64), cold: median of $REPS, seconds"
printf "%-36s %9s %9s %8s   %s\n" scenario strata BuildKit ratio goal
s=- d=- r=-
if side strata; then s=$(median "${s_times[@]}"); fi
if side docker; then d=$(median "${d_times[@]}"); fi
if side strata && side docker; then r=$(awk -v a="$s" -v b="$d" 'BEGIN{printf "%.2fx", a / b}'); fi
printf "%-36s %9s %9s %8s   %s\n" "go-httpd amd64+arm64 (cold)" "$s" "$d" "$r" "<= 0.6x"
$DOCKER rmi bench-mp-go-httpd:amd64 bench-mp-go-httpd:arm64 >/dev/null 2>&1 || true
