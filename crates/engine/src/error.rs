//! The engine's errors, typed where a caller tells them apart: the solver (a stage that
//! gave up because another failed), the CLI (a Dockerfile error to locate, a failed step
//! with its lines and output, a request error reported as it is) and the tests.

use std::ops::RangeInclusive;

use plan::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A Dockerfile error, located.
    #[error("{0}")]
    Dockerfile(Diagnostic),
    /// A step failed: its name as the progress shows it (`[stage 2/3] RUN ...`), its
    /// physical lines in the Dockerfile (for BuildKit's source frame) and why.
    #[error("{step}: {error}")]
    Step {
        step: String,
        lines: RangeInclusive<usize>,
        error: Box<BuildError>,
    },
    /// A stage this one needs failed: this one gave up without running its step.
    #[error("not run: stage {stage} failed")]
    Upstream { stage: String },
    /// RUN's command could not start or exited non-zero (`reason`: `exit code: 3`), with
    /// the last lines of its output.
    #[error("executor failed running [{command}]: {reason}")]
    Executor {
        command: String,
        reason: String,
        tail: Vec<String>,
    },
    /// `RUN --mount=type=secret` of a secret the build was not given.
    #[error("secret {id} not found: pass it with --secret id={id},src=PATH")]
    MissingSecret { id: String },
    /// `RUN --mount=type=ssh` of an agent the build was not given.
    #[error("no SSH agent {id:?} forwarded: pass --ssh {id}[=SOCKET]")]
    MissingSsh { id: String },
    /// A step that reads the context (COPY, ADD, a bind mount) in a build without one.
    #[error("no build context (the Dockerfile came from stdin)")]
    NoContext,
    /// An image `--from` / `--mount from=` names that is not in the store.
    #[error(
        "failed to resolve image {reference}: not in the local store ({})",
        get_image_hint(reference)
    )]
    ImageNotFound { reference: String },
    /// Selecting COPY/ADD sources or a bind mount's in the context or a stage: a source
    /// that is not there, a bad `--exclude`, a destination that is not a directory.
    #[error("{0}")]
    Context(context::Error),
    /// The context's `.dockerignore` does not parse.
    #[error("invalid .dockerignore: {0}")]
    DockerIgnore(context::PatternError),
    /// What an instruction asks for that strata does not do (`ADD` of URLs and local
    /// files at once, a symbolic `--chmod`), or a mount that cannot be made as asked.
    #[error("{0}")]
    Unsupported(String),
    /// Content that does not hash to the digest it is stored or recorded under (a layer
    /// commit, a snapshot).
    #[error("{0}")]
    Integrity(String),
    /// An imported cache or a cache export failed.
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Layer(#[from] layer::Error),
    #[error(transparent)]
    Exec(#[from] exec::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A broken invariant of the engine itself (a bug), e.g. a stage without a result.
    #[error("internal error: {0}")]
    Internal(String),
    /// A path in a rootfs whose symbolic links do not end (more than 40 of them).
    #[error("too many levels of symbolic links resolving {path}")]
    SymlinkLoop { path: String },
    /// `--chown`/`USER` of a user name the stage's `/etc/passwd` does not have.
    #[error("unable to find user {user}: no matching entries in passwd file")]
    UnknownUser { user: String },
    /// `--chown`/`USER` of a group name the stage's `/etc/group` does not have.
    #[error("unable to find group {group}: no matching entries in group file")]
    UnknownGroup { group: String },
    /// `ADD` of a URL that could not be downloaded (`reason`: the HTTP status, the
    /// transport's error, a checksum mismatch).
    #[error("failed to fetch {url}: {reason}")]
    Fetch { url: String, reason: String },
    /// An error of the request's own I/O (its context, its Dockerfile, a pull, an export),
    /// reported as it is.
    #[error("{0}")]
    Request(String),
}

impl From<context::Error> for BuildError {
    fn from(e: context::Error) -> BuildError {
        // Displayed as it is: its message already carries its cause.
        BuildError::Context(e)
    }
}

impl BuildError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> BuildError {
        BuildError::Io {
            context: context.into(),
            source,
        }
    }

    /// This error as the failure of the step named `step` at `lines` of the Dockerfile;
    /// errors located otherwise (a Dockerfile error, an earlier step, a failed stage this
    /// one waited for, the request's own) stay as they are.
    pub(crate) fn in_step(self, step: &str, lines: RangeInclusive<usize>) -> BuildError {
        match self {
            e @ (BuildError::Dockerfile(_)
            | BuildError::Step { .. }
            | BuildError::Upstream { .. }
            | BuildError::Request(_)) => e,
            e => BuildError::Step {
                step: step.to_string(),
                lines,
                error: Box::new(e),
            },
        }
    }

    /// The last lines of a failed command's output (a failed RUN, also inside a step).
    pub fn tail(&self) -> &[String] {
        match self {
            BuildError::Step { error, .. } => error.tail(),
            BuildError::Executor { tail, .. } => tail,
            _ => &[],
        }
    }
}

/// An error across the seams the CLI implements on other crates ([`crate::Remote`],
/// [`crate::Sink`], [`crate::cache::BlobSource`], [`crate::cache::BlobSink`]): what failed,
/// as the implementation words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RemoteError(pub String);

impl From<String> for RemoteError {
    fn from(m: String) -> RemoteError {
        RemoteError(m)
    }
}

impl From<&str> for RemoteError {
    fn from(m: &str) -> RemoteError {
        RemoteError(m.to_string())
    }
}

/// How to put an image that is not in the store there, for an error that names it.
pub fn get_image_hint(reference: &str) -> String {
    format!(
        "to get it there: strata pull {reference}, strata load -i IMAGE.tar, \
         strata import ROOTFS.tar {reference}, or strata tag IMAGE {reference}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_error_keeps_its_cause_and_tail_and_is_not_wrapped_twice() {
        let failed = BuildError::Executor {
            command: "/bin/sh -c exit 3".into(),
            reason: "exit code: 3".into(),
            tail: vec!["oops".into()],
        };
        let e = failed.in_step("[2/2] RUN exit 3", 2..=3);
        assert_eq!(
            e.to_string(),
            "[2/2] RUN exit 3: executor failed running [/bin/sh -c exit 3]: exit code: 3"
        );
        assert_eq!(e.tail(), ["oops"]);
        let BuildError::Step { lines, error, .. } = e.in_step("[3/3] COPY a /", 4..=4) else {
            panic!("not a step error");
        };
        assert_eq!(lines, 2..=3);
        assert!(matches!(*error, BuildError::Executor { .. }));
        // A stage that gave up and a Dockerfile error are not the step's own failures.
        let upstream = BuildError::Upstream {
            stage: "base".into(),
        }
        .in_step("[1/2] RUN x", 2..=2);
        assert_eq!(upstream.to_string(), "not run: stage base failed");
        assert!(upstream.tail().is_empty());
    }
}
