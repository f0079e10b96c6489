//! Dockerfile frontend, syntax half: bytes → AST with spans, and BuildKit-compatible
//! shell word expansion. Knows nothing about images, stages or the filesystem.
//!
//! * [`parse`] turns a Dockerfile into a [`Dockerfile`] of [`Node`]s, one per instruction.
//! * [`dump`] prints the AST in BuildKit's `(name ...)` test format.
//! * [`shell::ShellLexer`] expands `$var`, `${var:-w}`, ... in instruction arguments.

pub mod ast;
mod dump;
mod parser;
pub mod shell;

pub use ast::{Directives, Dockerfile, Heredoc, Node, ParseError, Span, Warning};
pub use dump::dump;
pub use parser::{parse, INSTRUCTIONS};
