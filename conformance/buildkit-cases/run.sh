#!/usr/bin/env bash
# BuildKit test cases against strata. Run it directly with STRATA_BIN pointing at a strata binary
# (it then uses a throw-away store), or source it from a script that has defined `st` (strata with
# the store of your choice). Base image: the busybox rootfs tarball of scripts/peers.sh.
#   STRATA_BIN=target/release/strata bash conformance/buildkit-cases/run.sh
# Each case in cases/<name>/ is built with
#   st build --progress=plain -t bk-<name>:st -f cases/<name>/Dockerfile $(args) <prepared ctx>
# and either saved + normalised with imgtree.py and diffed against oracle.txt (plus, where the
# case has a history.txt, the tail of the image history), or, for an error case (expect-fail),
# required to exit non-zero with an error/fail line of its output matching the regex.
# Prints failing cases with a few lines of diff, then "BuildKit test cases passed: k/n" last;
# its status (last command) is 0 only if all passed. Optional: BK_CASES="name ..." to run a subset.
BK_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEERS_DATA=${PEERS_DATA:-/var/tmp/strata-peers}
source "$BK_HERE/tools/common.sh"

if ! declare -F st >/dev/null && [[ -z ${STRATA_BIN:-} ]]; then
  echo "run.sh: no st function and no STRATA_BIN" >&2; return 1 2>/dev/null || exit 1
fi
if ! declare -F st >/dev/null; then
  BK_ROOT=$(mktemp -d -t bktests-store.XXXXXX)
  trap 'rm -rf "$BK_ROOT"' EXIT
  st() { "$STRATA_BIN" --root "$BK_ROOT" "$@"; }
fi

# the oracles were made on busybox-static 1:1.35.0-4+deb12u1+b1: another version changes /bin/busybox
BK_BUSYBOX_VERSION="1:1.35.0-4+deb12u1+b1"
bk_run_cases() {
  local v; v=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null)
  [[ $v == "$BK_BUSYBOX_VERSION" ]] || echo "warning: busybox-static ${v:-missing} here, the oracles were made with $BK_BUSYBOX_VERSION: /bin/busybox hashes will differ" >&2
  local T name c ok=0 n=0 failed=() tarball=$PEERS_DATA/busybox-rootfs.tar alias
  T=$(mktemp -d)
  # the same rootfs as docker's busybox:local, also as busybox:latest (cases say FROM busybox,
  # FROM busy$a2 -> busybox, FROM busybox:${tag} with tag=local, COPY --from=busybox)
  for alias in busybox:local busybox:latest; do
    st import "$tarball" "$alias" >"$T/import.log" 2>&1 || { echo "strata import of $alias failed: $(tail -1 "$T/import.log")"; }
  done
  local names=(${BK_CASES:-$(ls "$BK_HERE/cases")})
  for name in "${names[@]}"; do
    c=$BK_HERE/cases/$name; n=$((n+1))
    bk_prep_ctx "$c" "$T/ctx-$name"; bk_read_args "$c"
    if [[ -f $c/expect-fail ]]; then
      if st build --progress=plain -t "bk-$name:st" -f "$c/Dockerfile" "${BK_ARGS[@]}" "$T/ctx-$name" >"$T/$name.log" 2>&1; then
        echo "built successfully but must fail (expected: $(head -1 "$c/expect-fail"))" >"$T/$name.diff"; failed+=("$name")
      elif bk_fail_matches "$T/$name.log" "$c/expect-fail"; then ok=$((ok+1))
      else echo "failed, but no error line matches /$(head -1 "$c/expect-fail")/" >"$T/$name.diff"; failed+=("$name"); fi
      continue
    fi
    if st build --progress=plain -t "bk-$name:st" -f "$c/Dockerfile" "${BK_ARGS[@]}" "$T/ctx-$name" >"$T/$name.log" 2>&1 \
       && st save -o "$T/$name.tar" "bk-$name:st" >>"$T/$name.log" 2>&1 \
       && python3 "$BK_HERE/tools/imgtree.py" "$T/$name.tar" >"$T/$name.txt" \
       && diff <(bk_norm "$c/oracle.txt") <(bk_norm "$T/$name.txt") >"$T/$name.diff" \
       && { [[ ! -f $c/history.txt ]] || diff "$c/history.txt" \
              <(python3 "$BK_HERE/tools/histtree.py" "$T/$name.tar" | tail -n "$(wc -l <"$c/history.txt")") >"$T/$name.diff"; }
    then ok=$((ok+1)); else failed+=("$name"); fi
    rm -f "$T/$name.tar"
  done
  for name in "${failed[@]}"; do
    echo "--- $name"; tail -3 "$T/$name.log"; head -8 "$T/$name.diff" 2>/dev/null
  done
  rm -rf "$T"
  echo "BuildKit test cases passed: $ok/$n"
  [[ $ok == "$n" ]]
}
bk_run_cases
