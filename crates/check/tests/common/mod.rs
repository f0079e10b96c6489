//! Shared by the check crate's tests.

#[allow(dead_code)]
pub mod large;

/// BuildKit's check cases (`cases.jsonl`, `rules.tsv`, README): the one place to repoint
/// when the data moves into the repository.
pub const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../conformance/buildkit-lint"
);
