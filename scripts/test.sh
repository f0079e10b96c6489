#!/usr/bin/env bash
# The project's test command: the peers, formatting, lints, one release build of strata, then
# every test of the workspace. The end-to-end tests (crates/tests, one binary) run that release
# binary ($STRATA_BIN); the main job runs the same file. Conformance tests print their counts
# (--nocapture shows them). Tests whose needs (root, docker, ...) are missing print a
# "SKIPPED" line outside CI and fail under CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) == 0 ]]; then
  echo "== peers"
  bash scripts/peers.sh
else
  echo "warning: not root: the peers are not installed; tests that need them will say SKIPPED" >&2
fi
echo "== fmt, clippy"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== release build"
cargo build --release --locked -p strata
STRATA_BIN=$(realpath "${CARGO_TARGET_DIR:-target}/release/strata")
export STRATA_BIN
echo "== tests (STRATA_BIN=$STRATA_BIN)"
cargo test --workspace --locked -- --nocapture
