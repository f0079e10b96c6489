//! The one error type of the crate: what went wrong, and where (file, line, column, key path).

use std::fmt;
use std::path::PathBuf;

/// What kind of problem an [`Error`] is; branch on this, never on the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No compose file given and none found in the directory or its parents.
    NotFound,
    /// A file could not be read.
    Io,
    /// The YAML does not parse.
    Syntax,
    /// The document does not match the Compose Specification's JSON schema.
    Schema,
    /// `${VAR:?msg}` of an unset variable, or a malformed `${`.
    Interpolation,
    /// A value the schema accepts but the model cannot use (a bad port, size, duration...).
    Invalid,
    /// A `depends_on` entry naming a service that is not defined (or not active).
    UndefinedService,
    /// A cycle in `depends_on`.
    DependencyCycle,
    /// A required `env_file` that does not exist.
    EnvFile,
    /// A bad project name, profile or option.
    Usage,
}

/// A located error: `compose.yaml:7:5: services.web.ports[0]: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    /// The file, as given or found (relative names stay relative).
    pub file: Option<PathBuf>,
    /// 1-based line and column of the node; 0 when unknown.
    pub line: u64,
    pub col: u64,
    /// The key path, `services.web.ports[0]`; empty for the whole document.
    pub path: String,
    pub message: String,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            file: None,
            line: 0,
            col: 0,
            path: String::new(),
            message: message.into(),
        }
    }

    pub(crate) fn at(mut self, file: Option<&std::path::Path>, line: u64, col: u64) -> Self {
        self.file = file.map(|f| f.to_path_buf());
        self.line = line;
        self.col = col;
        self
    }

    pub(crate) fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if self.line > 0 {
                write!(f, ":{}:{}", self.line, self.col)?;
            }
            f.write_str(": ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
