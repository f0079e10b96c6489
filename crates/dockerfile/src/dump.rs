//! BuildKit's AST dump format: one `(name ["--flags"] "arg" ...)` line per instruction.

use crate::ast::Dockerfile;

/// Dump the AST; each instruction is one line ending in `\n`.
pub fn dump(df: &Dockerfile) -> String {
    let _ = df;
    String::new()
}
