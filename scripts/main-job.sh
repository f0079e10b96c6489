#!/usr/bin/env bash
# The main job, end to end, on a fresh machine (root): build strata (release), make the base
# images from Debian packages, build the bundled example single-stage and multi-stage, print
# what each stage cost and what multi-stage saved, and run the result.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p strata
ST=$PWD/target/release/strata
export STRATA_ROOT=${STRATA_ROOT:-/var/lib/strata}
bash scripts/base-images.sh "$ST"

ex=examples/c-hello
echo "== plan"
"$ST" plan "$ex"
for round in 1 2; do
  echo "== build, round $round"
  s=$(date +%s.%N)
  "$ST" build --progress=plain --report -t c-hello:multi "$ex" 2>build-multi.log || { tail -20 build-multi.log; exit 1; }
  m=$(date +%s.%N)
  "$ST" build --progress=plain -f "$ex/Dockerfile.single" -t c-hello:single "$ex" 2>build-single.log || { tail -20 build-single.log; exit 1; }
  e=$(date +%s.%N)
  printf "multi-stage build: %.2f s %s\n" "$(awk -v a="$m" -v b="$s" 'BEGIN{print a-b}')" "$(tail -1 build-multi.log | sed 's/^#0 DONE [0-9.]*s //')"
  printf "single-stage build: %.2f s %s\n" "$(awk -v a="$e" -v b="$m" 'BEGIN{print a-b}')" "$(tail -1 build-single.log | sed 's/^#0 DONE [0-9.]*s //')"
done
rm -f build-multi.log build-single.log
echo "== sizes"
"$ST" size c-hello:single c-hello:multi
echo "== run"
"$ST" run --rm c-hello:multi
"$ST" run --rm c-hello:single
