//! Containers from store images: the lifecycle under `strata run`, `ps`, `logs`, `stop`,
//! `rm`, `cp` and `volume` (and the coming `exec`, healthchecks and compose), as a library.
//!
//! * [`run`]: a container in the foreground, attached to the caller's streams
//!   (`foreground.rs`: overlay rootfs, terminal relay, signal forwarding).
//! * [`create`] then [`Container::start`]: a detached container under a supervisor
//!   ([`supervise`]); [`Containers`] lists and finds them; [`Container::stop`], `kill`,
//!   `wait`, `remove` and `inspect` manage one; [`logs`] reads and follows its output.
//! * [`Spec`]: what to run, in docker's terms; [`ports`]: `-p` mappings and the userspace
//!   proxy into the container's network namespace; [`signal`]: signal names and a
//!   pidfd-checked kill.
//! * [`network`]: user-defined networks ([`Networks`]: create-or-get, remove, prune; a
//!   [`Spec`] names the networks a container joins, with aliases).
//! * [`mounts`]: `-v`, `--mount` and `--tmpfs` by docker's rules; [`volumes`]: the store's
//!   volumes (`copyup.rs` fills a new one from the image); [`cp`]: `docker cp`.
//!
//! Files on disk are described in [`container`]. Layer snapshots come from
//! `layer::snapshot`, processes from `exec`.
//!
//! **Architecture invariant:** this crate knows no Dockerfile and no build (it never
//! depends on the engine), no command line (no clap, no flag parsing beyond docker's value
//! syntaxes such as `-p` and `--security-opt` strings handed over in a [`Spec`]), and never
//! prints: what reaches a terminal goes through what the caller passes (the [`Attach`]
//! streams, a [`logs`] sink) or comes back as a value ([`RunError`], errors, inspect JSON).
//! Every `unsafe` block of the container runtime lives here, each with a `// SAFETY:` line.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cgroup;
pub mod container;
mod copyup;
pub mod cp;
mod dirlock;
pub mod exec;
mod foreground;
pub mod health;
pub mod logs;
pub mod mounts;
pub mod network;
pub mod ports;
pub mod restart;
pub mod signal;
mod spec;
mod supervisor;
pub mod volumes;

use std::fmt;

pub use crate::exec::Exec;
pub use cgroup::Resources;
pub use container::{Config, Container, Containers, Pruned, SeccompOpt, State, Status};
pub use foreground::{run, Attach};
pub use health::HealthOpts;
pub use network::{NetworkAttach, Networks};
pub use ports::PortMap;
pub use restart::RestartPolicy;
pub use spec::Spec;
pub use supervisor::{create, supervise};
pub use volumes::{Volume, Volumes};

/// Docker's exit code when the container could not be started at all.
pub const EXIT_START: u8 = 125;

/// A container that could not be run: docker's exit code (125 when it could not be
/// started, 126 when its command cannot be executed, 127 when it is not found) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunError {
    pub code: u8,
    pub message: String,
}

impl RunError {
    /// A failure before the container's process exists (exit code 125).
    pub fn start(e: anyhow::Error) -> RunError {
        RunError {
            code: EXIT_START,
            message: format!("{e:#}"),
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RunError {}

/// Every container of the store, newest first.
pub fn list(store: &store::Store) -> anyhow::Result<Vec<Container>> {
    Containers::open(store)?.list()
}

/// A container by full id, name, or unique id prefix (docker's order).
pub fn find(store: &store::Store, what: &str) -> anyhow::Result<Container> {
    Containers::open(store)?.find(what)
}
