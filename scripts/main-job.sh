#!/usr/bin/env bash
# The main job, end to end, from a fresh clone. For now: build strata in release mode and
# plan the bundled multi-stage example (later: build it for real, run it, report sizes).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p strata
bin=target/release/strata
for target in production test; do
  echo "== strata plan --target $target examples/c-hello"
  "$bin" plan --target "$target" examples/c-hello
  echo
done
echo "== the same plan as JSON (stage summary)"
"$bin" plan --format json examples/c-hello | python3 -c '
import json, sys
p = json.load(sys.stdin)
for s in p["stages"]:
    name, needed, wave, steps = s["display_name"], s["needed"], s["wave"], len(s["steps"])
    print(f"  {name:<12} needed={needed!s:<5} wave={wave} steps={steps}")
'
