#!/usr/bin/env bash
# Fuzz the frontend (parse + dump + plan + shell expansion) on nightly, seeded from the
# conformance data. Usage: fuzz/run.sh [SECONDS] (default 1800). Crashes land in
# fuzz/artifacts/frontend/; turn each into a regression test before fixing it.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-1800}
corpus=corpus/frontend
mkdir -p "$corpus"
i=0
for f in ../conformance/buildkit-parser/*/*/Dockerfile ../conformance/buildkit-parser/testfile-line/Dockerfile \
         ../conformance/buildkit-cases/cases/*/Dockerfile; do
  [ -f "$f" ] && cp "$f" "$corpus/seed-df-$((i++))"
done
while IFS= read -r line; do
  case "$line" in '#'*|'') continue;; esac
  printf '%s' "$line" | awk -F'|' '{print $2}' > "$corpus/seed-sh-$((i++))"
done < ../conformance/buildkit-shell/envVarTest
python3 - "$corpus" <<'PY'
import json, sys
for n, line in enumerate(open("../conformance/buildkit-shell/processWithMatches.derived.jsonl")):
    open(f"{sys.argv[1]}/seed-pm-{n}", "w").write(json.loads(line)["input"])
PY
cargo +nightly fuzz run frontend "$corpus" -- -max_total_time="$secs" -max_len=4096 -timeout=10
