//! The syntax tree: one [`Node`] per instruction, no meaning attached.

use serde::Serialize;

/// 1-based, inclusive physical line range of a node in the Dockerfile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// Parser directives found at the top of the file (`# escape=`, `# syntax=`, `# check=`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Directives {
    /// The escape token: `\` (default) or `` ` ``.
    pub escape: char,
    /// `# syntax=` value and the 1-based line it was on.
    pub syntax: Option<(String, usize)>,
    /// `# check=` value and the 1-based line it was on.
    pub check: Option<(String, usize)>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            escape: '\\',
            syntax: None,
            check: None,
        }
    }
}

/// A heredoc attached to an instruction (`RUN <<EOF`, `COPY <<EOF /dst`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The delimiter word, quotes removed (`EOF`).
    pub name: String,
    /// The body: every line after the instruction up to (not including) the delimiter line,
    /// each line ending in `\n`. With `<<-` leading tabs are already stripped.
    pub content: String,
    /// False when the delimiter was quoted (`<<'EOF'`, `<<"EOF"`): no variable expansion.
    pub expand: bool,
    /// True for `<<-EOF`.
    pub chomp: bool,
    /// File descriptor for `3<<EOF` forms (0 when none was given).
    pub file_descriptor: u32,
}

/// One instruction (or, for `ONBUILD`, the wrapper around its nested instruction).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The keyword, lower-cased as written (`from`, `run`, ... or an unknown word).
    pub keyword: String,
    /// Leading `--flag[=value]` words (quotes removed, `--` terminator not kept).
    pub flags: Vec<String>,
    /// Argument list exactly as BuildKit's dump lists it (see conformance/README.md §2.2):
    /// JSON elements for exec form, whitespace words for FROM/COPY/..., `key value sep`
    /// triples for ENV/LABEL, one string for shell-form RUN/CMD/ENTRYPOINT/USER/...
    pub args: Vec<String>,
    /// True when the arguments were a JSON array (exec form).
    pub json: bool,
    /// The instruction text after the keyword and flags, continuations joined (escape+newline
    /// removed), comment lines dropped, heredoc bodies not included.
    pub rest: String,
    /// The whole logical line as written (keyword included), continuations joined.
    pub original: String,
    /// For `ONBUILD`: the nested instruction.
    pub next: Option<Box<Node>>,
    /// Heredocs started on this instruction's line, in order.
    pub heredocs: Vec<Heredoc>,
    /// Physical lines covered, including continuation lines and heredoc bodies.
    pub span: Span,
    /// The comment lines right above the instruction (BuildKit's `PrevComment`): each
    /// without its first character (`#`) and trimmed; an empty comment (`#`) clears the
    /// list, blank lines do not, parser directives are left out. Empty for ONBUILD's
    /// nested instruction.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<String>,
}

/// A non-fatal finding (BuildKit prints these as warnings), e.g. an empty continuation line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub line: usize,
    pub message: String,
}

/// A parsed Dockerfile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Dockerfile {
    pub directives: Directives,
    pub nodes: Vec<Node>,
    pub warnings: Vec<Warning>,
    /// From the first instruction's first line to the last instruction's last line.
    pub span: Span,
}

/// A syntax error at a 1-based line and column (column counts chars, 1 when unknown).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub hint: Option<String>,
}
