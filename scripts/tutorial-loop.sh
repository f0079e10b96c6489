#!/usr/bin/env bash
# The multi-stage tutorials' command sequence with strata in place of docker, on a base made
# locally (busybox from busybox-static): build (final stage, --target builder, --target
# production --build-arg, --progress=plain), images, history, inspect, run -d -p with a
# request, ps, logs, exec, stop, run -it through a pty, run -v with the dev stage, system df,
# image prune -f. Each step checks what docker's user would look at; the first wrong answer
# stops the script with exit 1 and says which step.
#
# usage: STRATA=path/to/strata BUSYBOX_TAR=busybox-rootfs.tar bash scripts/tutorial-loop.sh WORKDIR
# (STRATA_ROOT picks the store; PORT the published port, 3000 by default).
set -euo pipefail
strata=${STRATA:?set STRATA to the strata binary}
tar=${BUSYBOX_TAR:?set BUSYBOX_TAR to a busybox rootfs tarball}
work=${1:?usage: tutorial-loop.sh WORKDIR}
port=${PORT:-3000}
mkdir -p "$work/app/src" && cd "$work/app"

step() { printf '\n== %s\n' "$*" >&2; }
fail() { echo "FAILED at: $*" >&2; exit 1; }
expect() { # expect WHAT TEXT PATTERN
  grep -q -- "$3" <<<"$2" || { printf '%s\n' "$2" >&2; fail "$1: no '$3'"; }
}

"$strata" import "$tar" busybox:latest >/dev/null
cat > src/index.html <<'EOF'
<h1>hello from myapp</h1>
EOF
cat > Dockerfile <<'EOF'
FROM busybox:latest AS base
ARG VERSION=0.0.0
LABEL org.opencontainers.image.title=myapp org.opencontainers.image.version=$VERSION
WORKDIR /app

FROM base AS builder
ARG VERSION=0.0.0
COPY src/ /app/src/
RUN mkdir -p /app/dist && cp /app/src/index.html /app/dist/ && echo "built $VERSION" > /app/dist/version.txt

FROM base AS dev
CMD ["sh", "-c", "cat /app/src/index.html"]

FROM base AS production
COPY --from=builder /app/dist /www
EXPOSE 3000
CMD ["httpd", "-f", "-v", "-p", "3000", "-h", "/www"]
EOF

step "build -t myapp:multi ."
"$strata" build -t myapp:multi . 2>build.log || { cat build.log >&2; fail "build"; }
step "build --target builder -t myapp:builder ."
"$strata" build --target builder -t myapp:builder . 2>>build.log || fail "build --target builder"
step "build --target production --build-arg VERSION=1.2.3 ."
id=$("$strata" build -q --target production --build-arg VERSION=1.2.3 .) || fail "build --build-arg"
expect "the production image's label" "$("$strata" inspect -f '{{index .Config.Labels "org.opencontainers.image.version"}}' "$id")" '^1.2.3$'
step "build --progress=plain ."
out=$("$strata" build --progress=plain . 2>&1) || fail "build --progress=plain"
expect "plain progress" "$out" '^#[0-9]* \[production 1/1\] COPY --from=builder /app/dist /www'
expect "plain progress" "$out" 'CACHED'
step "build --target dev -t myapp:dev ."
"$strata" build -q --target dev -t myapp:dev . >/dev/null || fail "build --target dev"

step "images"
out=$("$strata" images)
expect images "$out" '^REPOSITORY *TAG *IMAGE ID *CREATED *SIZE'
expect images "$out" '^myapp *multi '
step "images myapp"
out=$("$strata" images myapp)
[ "$(grep -c '^myapp ' <<<"$out")" = 3 ] || { echo "$out" >&2; fail "images myapp: 3 rows (multi, builder, dev)"; }
step "history myapp:multi"
out=$("$strata" history myapp:multi)
expect history "$out" '^IMAGE *CREATED *CREATED BY *SIZE *COMMENT'
expect history "$out" 'COPY /app/dist /www'
step "image inspect myapp:multi"
out=$("$strata" image inspect myapp:multi)
expect "image inspect" "$out" '"ExposedPorts"'
step "inspect -f '{{.Config.Labels}}' myapp:multi"
out=$("$strata" inspect -f '{{.Config.Labels}}' myapp:multi)
expect "inspect -f" "$out" '^map\[org.opencontainers.image.title:myapp org.opencontainers.image.version:0.0.0\]$'

step "run -d -p $port:3000 --name web myapp:multi"
"$strata" rm -f web >/dev/null 2>&1 || true
cid=$("$strata" run -d -p "$port:3000" --name web myapp:multi) || fail "run -d"
trap '"$strata" rm -f web >/dev/null 2>&1 || true' EXIT
body=""
for _ in $(seq 1 100); do
  body=$(python3 -c "import urllib.request,sys; print(urllib.request.urlopen('http://127.0.0.1:$port/', timeout=2).read().decode())" 2>/dev/null) && break
  sleep 0.1
done
expect "a request to the published port" "$body" 'hello from myapp'
step "ps"
out=$("$strata" ps)
expect ps "$out" '^CONTAINER ID *IMAGE *COMMAND *CREATED *STATUS *PORTS *NAMES'
expect ps "$out" "0.0.0.0:$port->3000/tcp *web\$"
step "logs web"
out=$("$strata" logs web 2>&1)
expect logs "$out" 'response:200'
step "exec web sh -c ..."
out=$("$strata" exec web sh -c 'cat /www/version.txt; echo "pid1=$(cat /proc/1/comm)"')
expect exec "$out" '^built 0.0.0$'
expect exec "$out" '^pid1=httpd$'
step "stop web"
"$strata" stop web >/dev/null || fail "stop"
expect "ps -a after stop" "$("$strata" ps -a)" 'Exited (.*web$'
[ -z "$("$strata" ps -q)" ] || fail "ps after stop: still running"

step "run -it myapp:builder sh (through a pty)"
out=$(printf 'cat /app/dist/version.txt; test -t 0 && echo stdin-is-a-tty; exit\n' |
  script -qec "'$strata' run -it --rm myapp:builder sh" /dev/null | tr -d '\r')
expect "run -it" "$out" 'built 0.0.0'
expect "run -it" "$out" 'stdin-is-a-tty'

step "run -v \"\$PWD\":/app myapp:dev"
echo '<h1>edited on the host</h1>' > src/index.html
out=$("$strata" run --rm -v "$PWD":/app myapp:dev)
expect "run -v" "$out" 'edited on the host'

step "system df"
out=$("$strata" system df)
expect "system df" "$out" '^TYPE *TOTAL *ACTIVE *SIZE *RECLAIMABLE'
expect "system df" "$out" '^Images '
step "image prune -f"
out=$("$strata" image prune -f)
expect "image prune" "$out" 'Total reclaimed space:'
# The untagged production build (--build-arg) was dangling: gone; the named ones stay.
"$strata" inspect "$id" >/dev/null 2>&1 && fail "image prune left the dangling image $id"
"$strata" inspect myapp:multi >/dev/null || fail "image prune removed myapp:multi"
echo "tutorial sequence: all steps as docker's" >&2
