//! The build engine. Today it holds how instructions change an image config; the solver
//! (scheduling, cache keys, execution) comes with the build-engine issue.

pub mod config;
