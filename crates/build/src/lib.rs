//! The build engine: runs a [`plan::Plan`] on the store.
//!
//! * [`config`]: how metadata instructions change an image config.
//! * [`solver`]: stages in waves (independent stages concurrently), a cache key per step,
//!   RUN through `exec` on an overlay of the parent's layer snapshots, COPY/ADD through
//!   `context`, layers committed with `layer` into the store.
//! * [`progress`]: events and BuildKit's plain printer.

pub mod config;
mod copy;
mod explain;
mod fetch;
mod fsutil;
pub mod progress;
mod run;
mod snapshot;
pub mod solver;
mod view;

pub use progress::{Event, Plain, Progress, Quiet, Tty};
pub use solver::{build, BuildError, BuildOptions, BuildResult, StoreResolver};
