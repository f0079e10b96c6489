//! Errors of the executor.

use serde::{Deserialize, Serialize};

/// Everything that can go wrong before or around the command. A command that runs and exits
/// non-zero is *not* an error: it is an [`ExitStatus`](crate::ExitStatus) with a non-zero code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec cannot be run as given (empty args, relative paths, non-UTF-8 paths, ...).
    #[error("invalid exec spec: {0}")]
    InvalidSpec(String),
    /// A system call failed on the parent side (spawning the helper, talking to it).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The container could not be set up (a mount, the rootfs, the working directory, ...).
    #[error("container setup failed: {context}: {message}")]
    Setup {
        /// The step that failed, naming the mount or path.
        context: String,
        /// The system error or explanation.
        message: String,
    },
    /// `USER` could not be resolved in the rootfs (`unable to find user NAME: ...`).
    #[error("{0}")]
    User(String),
    /// The command could not be executed: `exec: "/bin/sh": no such file or directory`, or
    /// `exec: "foo": executable file not found in $PATH`.
    #[error("exec: \"{program}\": {message}")]
    Exec {
        /// `args[0]` as given.
        program: String,
        /// Why it could not be executed.
        message: String,
        /// Whether the program was missing or could not be executed.
        kind: ExecFailure,
    },
    /// The seccomp profile cannot be compiled.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// The private network could not be set up (slirp4netns missing or failing).
    #[error("private network: {0}")]
    Network(String),
    /// The init helper broke its protocol or died before reporting (a bug, or it was killed).
    #[error("init helper: {0}")]
    Helper(String),
    /// The running container to [`join`](crate::join) has exited (its pid 1 is gone).
    #[error("the container's process has exited")]
    Gone,
}

/// Why a command could not be executed, as docker tells them apart (exit 127 or 126).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecFailure {
    /// No such program: not found in `$PATH`, or `execve` failed with `ENOENT`.
    NotFound,
    /// The program exists but cannot be executed (`EACCES`, `ENOEXEC`, ...).
    NotExecutable,
}

impl ExecFailure {
    /// The kind of an `execve` failure, by its errno.
    pub(crate) fn of(e: &std::io::Error) -> Self {
        if e.raw_os_error() == Some(libc::ENOENT) {
            ExecFailure::NotFound
        } else {
            ExecFailure::NotExecutable
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io {
        context: context.into(),
        source,
    }
}

/// What went wrong inside the helper or the container's init; travels as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum SetupError {
    Setup {
        context: String,
        message: String,
    },
    User(String),
    Exec {
        program: String,
        message: String,
        kind: ExecFailure,
    },
    /// The container to join has exited.
    Gone,
}

impl SetupError {
    pub(crate) fn setup(context: impl Into<String>, message: impl ToString) -> Self {
        SetupError::Setup {
            context: context.into(),
            message: message.to_string(),
        }
    }

    /// The same error with a hint line after its message.
    pub(crate) fn hint(self, hint: &str) -> Self {
        match self {
            SetupError::Setup { context, message } => SetupError::Setup {
                context,
                message: format!("{message}\nhint: {hint}"),
            },
            other => other,
        }
    }
}

impl From<SetupError> for Error {
    fn from(e: SetupError) -> Self {
        match e {
            SetupError::Setup { context, message } => Error::Setup { context, message },
            SetupError::User(m) => Error::User(m),
            SetupError::Exec {
                program,
                message,
                kind,
            } => Error::Exec {
                program,
                message,
                kind,
            },
            SetupError::Gone => Error::Gone,
        }
    }
}

/// `map_err` adaptor for setup steps: `.map_err(step("mount proc on /proc"))`.
pub(crate) fn step<E: std::fmt::Display>(
    context: impl Into<String>,
) -> impl FnOnce(E) -> SetupError {
    let context = context.into();
    move |e| SetupError::setup(context, errno_text(&e.to_string()))
}

/// rustix prints errnos as "No such file or directory (os error 2)"; Go-style lower-case
/// messages without the suffix read better in build output.
pub(crate) fn errno_text(s: &str) -> String {
    let s = match s.rfind(" (os error ") {
        Some(i) => &s[..i],
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}
