//! The CLI's end-to-end tests, one binary (as uv's `tests/it`): one module per area. They run
//! the release binary [`strata_tests::strata_bin`] (`$STRATA_BIN`, set by scripts/test.sh), and
//! each test that needs root, dockerd, a registry or another peer says so in its first line
//! with [`strata_tests::require!`].
//!
//! `cargo test -p strata-tests --test it` runs them all; a module alone with a filter, e.g.
//! `cargo test -p strata-tests --test it registry::`. The tidy test is [`tidy`].

mod common;

mod bake_cli;
mod build_e2e;
mod build_flags;
mod buildkit_cases;
mod cache_io;
mod check_cli;
mod compat_buildkit;
mod compose_cli;
mod compose_config;
mod compose_v1;
mod cp_cli;
mod docker_cli;
mod exec_cli;
mod interop;
mod limits_cli;
mod lint_build;
mod mount_source;
mod multiplatform;
mod multiplatform_loop;
mod network_cli;
mod progress_text;
mod publish_cli;
mod quickstart;
mod registry;
mod rootless;
mod run_cli;
mod scale;
mod security;
mod size_report;
mod stat_cache;
mod store_cli;
mod tidy;
mod tutorial;
mod volume_cli;
mod workers;
