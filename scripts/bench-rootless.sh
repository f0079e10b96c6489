#!/usr/bin/env bash
# Rootless benchmarks, measured in the same run: strata as root, strata rootless (an
# unprivileged user with subordinate ids: strata joins a user namespace of its own) and
# rootless podman build (podman 4.3, native kernel overlay, runc) as the same user.
# Scenarios: conformance/scenarios runsteps and bigtree, and examples/c-hello (its base,
# debian-build:local, is imported from a rootfs tarball; the other examples' bases -- golang,
# python, node -- are built with apt by scripts/base-images.sh, minutes each, so they are left
# out). Every RUN has no network (`--network none` for all three builders: the fairest, no
# slirp4netns or bridge set-up counted). Each time is the median of $REPS runs; cold is
# `--no-cache`, cached is the same build again, unchanged. Not a test: numbers, not assertions.
#   sudo bash scripts/bench-rootless.sh    (root; STRATA_BIN, default target/release/strata)
# Env: BENCH_USER (strata-ci), REPS (3), SCENARIOS ("runsteps bigtree c-hello"), PEERS_DATA.
# Goals: rootless/root <= 1.2x; strata rootless/podman rootless < 1x.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "run as root (it times strata as root and runs the rest as \$BENCH_USER)" >&2; exit 1; }
BENCH_USER=${BENCH_USER:-strata-ci}
REPS=${REPS:-3}
PEERS_DATA=${PEERS_DATA:-/var/tmp/strata-peers}
SRC_BIN=$(realpath "${STRATA_BIN:-target/release/strata}")
grep -q "^$BENCH_USER:" /etc/subuid || { echo "$BENCH_USER has no subordinate ids in /etc/subuid" >&2; exit 1; }

# One world-traversable work dir: the binary, the contexts, the tarballs and all stores.
W=$(mktemp -d /var/tmp/sbr.XXXXXX) # short: podman refuses a runroot over 50 characters
chmod 755 "$W"
RUN_DIR=$W/user/run
cleanup() {
  local f p
  # The user's pause processes (strata's and podman's each keep one that owns their user
  # namespace and the mounts in it): end them, by their recorded pids, before removing files.
  for f in "$RUN_DIR/strata/pause.pid" "$RUN_DIR/libpod/tmp/pause.pid"; do
    [[ -f $f ]] || continue
    p=$(awk '{print $1; exit}' "$f") # podman's has no newline
    if [[ $p =~ ^[0-9]+$ ]]; then kill "$p" 2>/dev/null || true; fi
  done
  sleep 0.2
  # Files owned by subordinate ids: root removes them.
  rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$W/bin" "$W/ctx" "$W/tar" "$W/user/xdg" "$RUN_DIR" "$W/root-store"
cp "$SRC_BIN" "$W/bin/strata"
chmod 755 "$W/bin" "$W/bin/strata"
ST=$W/bin/strata
cp "$PEERS_DATA/busybox-rootfs.tar" "$PEERS_DATA/debian-build-rootfs.tar" "$W/tar/"
chmod -R a+rX "$W/tar"
chown -R "$BENCH_USER:" "$W/user"
chmod 700 "$RUN_DIR"

# The scenarios ($SCENARIOS narrows them), their contexts copied under $W/ctx.
read -ra SCENARIOS <<<"${SCENARIOS:-runsteps bigtree c-hello}"
cp -r conformance/scenarios/runsteps conformance/scenarios/bigtree examples/c-hello "$W/ctx/"
mkdir -p "$W/ctx/probe"
printf 'FROM busybox:local\nRUN true\n' >"$W/ctx/probe/Dockerfile"
mkdir -p "$W/ctx/mounts"
printf 'FROM busybox:local\nRUN grep " / " /proc/self/mountinfo; ls /sys/class/net\n' >"$W/ctx/mounts/Dockerfile"
chmod -R a+rX "$W/ctx"

# setpriv, not runuser: runuser's PAM session costs 5-7 ms per command here, more than
# rootless strata's own extra work (joining the pause process's namespaces: well under 1 ms).
as_user() {
  setpriv --reuid="$BENCH_USER" --regid="$(id -g "$BENCH_USER")" --init-groups \
    env -i HOME="$(getent passwd "$BENCH_USER" | cut -d: -f6)" \
    PATH=/usr/local/bin:/usr/bin:/bin XDG_DATA_HOME="$W/user/xdg" XDG_RUNTIME_DIR="$RUN_DIR" "$@"
}
# Root goes through the same two execs (setpriv, env), so the harness costs both sides alike
# (inside one process, `strata images` takes 3.7 ms as root and rootless alike).
as_root() {
  setpriv --reuid=0 --regid=0 --init-groups env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin "$@"
}
st_root() { as_root "$ST" --root "$W/root-store" "$@"; }
st_user() { as_user "$ST" "$@"; } # store: $XDG_DATA_HOME/strata
# Rootless podman with storage of its own, native kernel overlay (not fuse-overlayfs).
PODMAN_STORE=(--storage-driver overlay --root "$W/user/podman" --runroot "$RUN_DIR/podman")
pm_user() { as_user podman "${PODMAN_STORE[@]}" "$@"; }

echo "== setup: importing the base images (busybox:local, debian-build:local) into the three stores"
for who in st_root st_user pm_user; do
  $who import "$W/tar/busybox-rootfs.tar" busybox:local >/dev/null
  $who import "$W/tar/debian-build-rootfs.tar" debian-build:local >/dev/null
done

now() { date +%s.%N; }
t() { # COMMAND...: seconds taken (the output goes to $W/last.log)
  local s e
  s=$(now)
  "$@" >"$W/last.log" 2>&1 || { tail -20 "$W/last.log" >&2; echo "failed: $*" >&2; return 1; }
  e=$(now)
  awk -v a="$e" -v b="$s" 'BEGIN{printf "%.3f", a - b}'
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", a / b}'; }

b_root() { st_root build --progress=plain --network none "$@"; }
b_user() { st_user build --progress=plain --network none "$@"; }
b_podman() { pm_user build --network=none --layers "$@"; }

declare -A T
for s in "${SCENARIOS[@]}"; do
  for b in root user podman; do
    cold=() cached=()
    for _ in $(seq "$REPS"); do
      cold+=("$(t "b_$b" --no-cache -t "bench-$s" "$W/ctx/$s")")
      cached+=("$(t "b_$b" -t "bench-$s" "$W/ctx/$s")")
    done
    T[$s,cold,$b]=$(median "${cold[@]}")
    T[$s,cached,$b]=$(median "${cached[@]}")
    echo "   $s $b: cold ${cold[*]}  cached ${cached[*]}"
  done
done

# The per-command overhead: a one-RUN build, and a command that runs nothing (`images`).
probe=()
for b in root user podman; do
  cold=() cached=()
  for _ in $(seq 5); do
    cold+=("$(t "b_$b" --no-cache -t bench-probe "$W/ctx/probe")")
  done
  T[probe,cold,$b]=$(median "${cold[@]}")
done
for b in root user; do
  n=()
  for _ in $(seq 5); do n+=("$(t "st_$b" images)"); done
  T[images,$b]=$(median "${n[@]}")
done
n=()
for _ in $(seq 5); do n+=("$(t pm_user images)"); done
T[images,podman]=$(median "${n[@]}")

echo
echo "== times: median of $REPS (probe and images: of 5), seconds; every RUN with --network none"
printf "%-22s %9s %9s %9s %11s %14s\n" scenario root rootless "rl/root" "podman-rl" "rl/podman-rl"
for s in "${SCENARIOS[@]}" probe; do
  for k in cold cached; do
    [[ $s == probe && $k == cached ]] && continue
    r=${T[$s,$k,root]} u=${T[$s,$k,user]} p=${T[$s,$k,podman]}
    label="$s ($k)"
    [[ $s == probe ]] && label="one RUN (cold)"
    printf "%-22s %9.2f %9.2f %9s %11.2f %14s\n" "$label" "$r" "$u" "$(ratio "$u" "$r")" "$p" "$(ratio "$u" "$p")"
  done
done
r=${T[images,root]} u=${T[images,user]} p=${T[images,podman]}
printf "%-22s %9.3f %9.3f %9s %11.3f %14s\n" "images (no build)" "$r" "$u" "$(ratio "$u" "$r")" "$p" "$(ratio "$u" "$p")"
echo "goals: rootless/root <= 1.2x; strata rootless/podman rootless < 1x"

echo
echo "== what rootless strata used"
b_user --no-cache -t bench-mounts "$W/ctx/mounts" >"$W/mounts.log" 2>&1
root_mount=$(grep -m1 -E '^#[0-9]+ [0-9.]+ [0-9]+ [0-9]+ [0-9]+:[0-9]+ / / ' "$W/mounts.log" | sed 's/^#[0-9]* [0-9.]* //')
echo "RUN's root: $root_mount"
case $root_mount in
  *" - overlay "*userxattr*) echo "overlay: kernel overlayfs with userxattr (fuse-overlayfs only where the kernel refuses)" ;;
  *) echo "overlay: not kernel overlayfs with userxattr (see above)" ;;
esac
echo "RUN's interfaces: $(grep -E '^#[0-9]+ [0-9.]+ (lo|tap0|eth0)$' "$W/mounts.log" | awk '{print $3}' | tr '\n' ' ')"
echo "network: --network none for all three builders (only lo; strata's default would be slirp4netns rootless)"
echo "uid map: $(as_user "$ST" run --rm --network none busybox:local cat /proc/self/uid_map 2>/dev/null | tr -s ' ' | tr '\n' ';')"
echo "podman: $(pm_user info --format '{{.Store.GraphDriverName}} (native overlay diff: {{index .Store.GraphStatus "Native Overlay Diff"}}), runtime {{.Host.OCIRuntime.Name}}, podman {{.Version.Version}}' 2>/dev/null)"
