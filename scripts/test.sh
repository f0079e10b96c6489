#!/usr/bin/env bash
# The project's test command: formatting, lints, then every test of the workspace.
# Conformance tests print their counts (--nocapture shows them).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked -- --nocapture
