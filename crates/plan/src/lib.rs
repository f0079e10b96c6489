//! Dockerfile frontend, meaning half: typed instructions, stages, ARG/ENV scoping,
//! `--from` resolution, the stage DAG pruned to the target and the waves of stages that may
//! run concurrently.
//!
//! The plan is pure: it reads nothing but the Dockerfile text it is given. Where a value
//! depends on a base image (its Env, its ONBUILD triggers) it asks an [`ImageResolver`]; the
//! build engine answers from the store, [`Unresolved`] answers "not known yet" and the plan
//! marks what waits on the base image.

mod diag;
pub mod instructions;
mod planner;

pub use diag::{Diagnostic, ErrorKind};
pub use instructions::{
    parse_duration, ArgDecl, Command, Copy, Healthcheck, Instruction, InstructionParser, KeyValue,
    Mount, MountKind, Run,
};
pub use planner::{
    plan, Base, BaseImage, ImageResolver, Plan, PlanOptions, Platform, Stage, Step, Unresolved,
    Warning, PROXY_ARGS,
};
