#!/usr/bin/env bash
# Regenerate the oracles of the cases with real BuildKit (Docker 20.10's embedded BuildKit):
# every image case is built twice with --no-cache and its normalised tree must be identical both
# times before oracle.txt (and history.txt where the case has one) is written; every error case
# must fail and its expect-fail regex must match BuildKit's output (saved to buildkit-error.txt).
# usage: tools/make-oracles.sh [CASE...]     (default: all cases)
# Needs the peers of scripts/peers.sh (dockerd with busybox:local). Images are tagged bk-*.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKER=${DOCKER:-/usr/bin/docker}
source "$HERE/tools/common.sh"
IMGTREE=$HERE/tools/imgtree.py
$DOCKER image inspect busybox:latest >/dev/null 2>&1 || $DOCKER tag busybox:local busybox:latest
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
names=("$@"); ((${#names[@]})) || mapfile -t names < <(ls "$HERE/cases")
bad=0
for name in "${names[@]}"; do
  c=$HERE/cases/$name; bk_prep_ctx "$c" "$T/ctx"; bk_read_args "$c"
  rm -f "$T"/tree* "$T"/hist* "$T"/img*.tar
  for i in 1 2; do
    DOCKER_BUILDKIT=1 $DOCKER build --network=none --no-cache --progress=plain -t "bk-$name:oracle" \
      -f "$c/Dockerfile" "${BK_ARGS[@]}" "$T/ctx" >"$T/log$i" 2>&1
    rc[$i]=$?
    if [[ ${rc[$i]} == 0 && ! -f $c/expect-fail ]]; then
      $DOCKER save -o "$T/img$i.tar" "bk-$name:oracle" >>"$T/log$i" 2>&1 && python3 "$IMGTREE" "$T/img$i.tar" >"$T/tree$i" || rc[$i]=99
      # history entries without created_by (the imported base image) are not part of the oracle
      [[ -f $c/history.txt ]] && python3 "$HERE/tools/histtree.py" "$T/img$i.tar" | sed '/ ?$/d' >"$T/hist$i"
    fi
  done
  if [[ -f $c/expect-fail ]]; then
    if [[ ${rc[1]} != 0 && ${rc[2]} != 0 ]] && bk_fail_matches "$T/log1" "$c/expect-fail" && bk_fail_matches "$T/log2" "$c/expect-fail"; then
      # BuildKit's error lines, with this machine's docker root, registry host and resolver redacted
      { grep -Ei 'error|fail' "$T/log1" || tail -3 "$T/log1"; } | tail -4 | sed -E \
        -e 's#/[^ :"]*/overlay2/[0-9a-f]+/merged#<rootfs>#g' -e 's#https://[^/"]+/#https://<registry>/#g' \
        -e 's#lookup [^ ]+ on [0-9.:]+#lookup <registry> on <resolver>#g' >"$c/buildkit-error.txt"
      echo "ok    $name (fails as expected)"
    else
      echo "BAD   $name: rc=${rc[1]}/${rc[2]} or regex mismatch"; tail -5 "$T/log1"; bad=$((bad+1))
    fi
  elif [[ ${rc[1]} == 0 && ${rc[2]} == 0 ]] && cmp -s "$T/tree1" "$T/tree2"; then
    cp "$T/tree1" "$c/oracle.txt"
    if [[ -f $c/history.txt ]]; then
      if cmp -s "$T/hist1" "$T/hist2"; then cp "$T/hist1" "$c/history.txt"; else echo "BAD   $name: history differs"; bad=$((bad+1)); fi
    fi
    echo "ok    $name"
  else
    echo "BAD   $name: rc=${rc[1]}/${rc[2]}"; tail -8 "$T/log1"; diff "$T/tree1" "$T/tree2" 2>/dev/null | head -5; bad=$((bad+1))
  fi
done
echo "cases with a problem: $bad"
[[ $bad == 0 ]]
