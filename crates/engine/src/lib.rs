//! The build engine: one [`BuildRequest`] in, an image (and its exports) out.
//!
//! * [`request`]: the request: context, Dockerfile, base images (store first, registry on a
//!   miss), cache imports, the solve, exporters and cache exports, under the store's lock.
//! * [`config`]: how metadata instructions change an image config.
//! * [`solver`]: every needed stage on its own thread, a cache key per step,
//!   RUN through `exec` on an overlay of the parent's layer snapshots, COPY/ADD through
//!   `context`, layers committed with `layer` into the store.
//! * [`progress`]: events and BuildKit's plain format, written to any `Write` (no terminal).
//! * [`entitlements`]: `RUN --network=host` only with `network.host` allowed.

pub mod cache;
pub mod config;
mod copy;
pub mod entitlements;
mod error;
mod explain;
mod fetch;
mod fsutil;
mod layerdir;
pub mod progress;
pub mod request;
mod run;
mod snapshot;
pub mod solver;
mod view;

pub use error::{get_image_hint, BuildError, RemoteError};
pub use progress::{Event, Plain, Progress, Quiet};
pub use request::{
    build, plan_platform, BuildRequest, CacheExport, CacheImport, ContextSource, DockerfileSource,
    Exporter, Failure, Remote, Sink,
};
pub use run::RunExtras;
pub use solver::{BuildOptions, BuildResult, StoreResolver};
