#!/usr/bin/env bash
# The main job, end to end, on a fresh machine (root): build strata (release), make the base
# images from Debian packages, build every example single-stage and multi-stage (twice: the
# second round must run no RUN step), check that a failing test fails the build and tags
# nothing, print what multi-stage saved, and run the final images. It runs $STRATA_BIN when
# set, else the release build (scripts/test.sh has made it: then the build is a no-op and the
# main job runs the very binary the tests ran).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n ${STRATA_BIN:-} ]]; then
  ST=$(realpath "$STRATA_BIN")
else
  cargo build --release --locked -p strata
  ST=$(realpath "${CARGO_TARGET_DIR:-target}/release/strata")
fi
export STRATA_ROOT=${STRATA_ROOT:-/var/lib/strata}
bash scripts/base-images.sh "$ST"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
# name | Dockerfile (relative to the example) | extra flags | tag
builds=(
  "c-hello|Dockerfile||c-hello:multi"
  "c-hello|Dockerfile.single||c-hello:single"
  "go-httpd|Dockerfile||go-httpd:multi"
  "go-httpd|Dockerfile.single||go-httpd:single"
  "python-flask|Dockerfile||python-flask:multi"
  "python-flask|Dockerfile.single||python-flask:single"
  "node-express|Dockerfile||node-express:multi"
  "node-express|Dockerfile|--target development|node-express:dev"
  "node-express|Dockerfile.single||node-express:single"
)
echo "== plan (examples/node-express)"
"$ST" plan examples/node-express

for round in 1 2; do
  echo "== build, round $round"
  printf "%-22s %-32s %8s  %s\n" IMAGE DOCKERFILE SECONDS STEPS
  runs=0
  for b in "${builds[@]}"; do
    IFS='|' read -r ex file flags tag <<<"$b"
    log=$logs/${tag//[:\/]/_}.$round.log
    report=()
    [[ $round == 1 && $file == Dockerfile && -z $flags ]] && report=(--report)
    s=$(date +%s.%N)
    # shellcheck disable=SC2086
    if ! "$ST" build --progress=plain "${report[@]}" $flags -f "examples/$ex/$file" -t "$tag" "examples/$ex" >"$log" 2>&1; then
      tail -40 "$log"
      echo "error: building $tag failed" >&2
      exit 1
    fi
    e=$(date +%s.%N)
    summary=$(grep -o '([0-9]* RUN executed, [0-9]* steps cached)' "$log" | tail -1)
    n=$(sed 's/(\([0-9]*\) RUN.*/\1/' <<<"$summary")
    runs=$((runs + n))
    printf "%-22s %-32s %8.2f  %s\n" "$tag" "$ex/$file" "$(awk -v a="$e" -v b="$s" 'BEGIN{print a-b}')" "$summary"
  done
  echo "round $round: $runs RUN steps executed"
  if [[ $round == 2 && $runs != 0 ]]; then
    echo "error: the second round executed $runs RUN steps; everything should have been cached" >&2
    exit 1
  fi
done

echo "== two platforms: go-httpd cross-compiled on the build platform for linux/amd64 and linux/arm64"
mp=$logs/go-httpd-mp
"$ST" plan --platform linux/amd64,linux/arm64 examples/go-httpd | sed -n '/^stage platforms/,/^$/p'
if ! "$ST" build --progress=plain --platform linux/amd64,linux/arm64 -t go-httpd:multiarch \
  --output "type=local,dest=$mp" examples/go-httpd >"$logs/mp.log" 2>&1; then
  tail -40 "$logs/mp.log"
  echo "error: building go-httpd for two platforms failed" >&2
  exit 1
fi
grep -E '^#0 (exporting manifest|DONE)' "$logs/mp.log"
# The build stage ran natively for both (its amd64 steps were go-httpd:multi's, cached); the
# arm64 binary is an aarch64 ELF (e_machine 0xb7) and runs under QEMU.
machine=$(od -An -tx1 -j18 -N2 "$mp/linux_arm64/usr/local/bin/go-httpd" | tr -d ' ')
[[ $machine == b700 ]] || { echo "error: the arm64 go-httpd is not an aarch64 ELF (e_machine $machine)" >&2; exit 1; }
echo "linux/arm64 go-httpd: aarch64 ELF; run under emulation:"
"$ST" run --rm --platform linux/arm64 go-httpd:multiarch -version

echo "== what each stage cost (node-express, from --report)"
sed -n '/^STAGE /,/^final image/p' "$logs/node-express_multi.1.log"

echo "== a failing test fails the build and tags nothing"
broken=$logs/node-express-broken
cp -r examples/node-express "$broken"
sed -i 's/return `hello, /return `hi, /' "$broken/src/app.ts"
if "$ST" build --progress=plain -t node-express:broken "$broken" >"$logs/broken.log" 2>&1; then
  echo "error: the build with a failing test succeeded" >&2
  exit 1
fi
grep -q '^#[0-9]* [0-9.]* not ok 1 - greeting names the caller' "$logs/broken.log" \
  || { tail -30 "$logs/broken.log"; echo "error: the test's failure is not in the build output" >&2; exit 1; }
grep '^error: ' "$logs/broken.log"
if "$ST" inspect node-express:broken >/dev/null 2>&1; then
  echo "error: the failed build tagged node-express:broken" >&2
  exit 1
fi
echo "failed at the test step, as it should, and node-express:broken does not exist"

echo "== sizes"
"$ST" size --compare c-hello:single c-hello:multi --compare go-httpd:single go-httpd:multi \
  --compare python-flask:single python-flask:multi --compare node-express:single node-express:multi

echo "== run"
"$ST" run --rm c-hello:multi
"$ST" run --rm go-httpd:multi -version
# The services, detached, each published on 127.0.0.1 through strata's port proxy.
http_get() { # PORT PATH: the response body (HTTP/1.0, so the server closes the connection)
  local reply
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
  reply=$(cat <&3) || return 1
  exec 3<&-
  [[ $reply == "HTTP/1."?" 200"* ]] || return 1
  printf '%s\n' "${reply#*$'\r\n\r\n'}"
}
serve() { # IMAGE HOST_PORT CONTAINER_PORT
  local id body="" i
  id=$("$ST" run -d --rm -p "127.0.0.1:$2:$3" "$1")
  for i in $(seq 100); do
    body=$(http_get "$2" "/?name=main%20job" 2>/dev/null) && break
    body=""
    sleep 0.1
  done
  if [[ -z $body ]]; then
    "$ST" logs "$id" >&2 || true
    "$ST" stop "$id" >/dev/null || true
    echo "error: $1 did not answer on 127.0.0.1:$2" >&2
    exit 1
  fi
  printf '%-22s 127.0.0.1:%s -> %s\n' "$1" "$2" "$(head -1 <<<"$body")"
  "$ST" stop "$id" >/dev/null
}
serve go-httpd:multi 38080 8080
serve python-flask:multi 38081 8000
serve node-express:multi 38082 3000
