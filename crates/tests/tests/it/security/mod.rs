//! The adversarial suite (issue 10): one module per containment item, each test playing an
//! attacker with a Dockerfile, an image, an archive or a command line, and asserting the
//! refusal, the error line, that a canary file outside the store is untouched and that
//! nothing is left mounted or running ([`guard`]).
//!
//! Run it alone with `cargo test -p strata-tests --test it security::`, or one item with a name filter
//! (`cargo test -p strata-tests --test it security::devices::`). It needs root and namespaces, as the
//! rest of the end-to-end tests do; CI runs it as part of `cargo test --workspace`.

mod guard;

mod control_chars; // 8: raw control characters in errors
mod descriptors; // 7: descriptor sizes
mod devices; // 1: device nodes
mod expansion; // 5: unbounded expansion
mod leftovers; // 9: temporaries of killed commands
mod misc; // 10: relative --secret src, ENOSPC on import, import's own name
mod network; // 4: a private network for RUN and run
mod output_paths; // 6: output paths that are symlinks
mod seccomp; // 3: Docker's default seccomp profile
mod store_perms; // 2: the store's mode
