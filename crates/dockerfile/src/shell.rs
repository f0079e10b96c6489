//! Shell word and variable expansion with BuildKit's semantics
//! (`frontend/dockerfile/shell/lex.go`): quotes, escapes, `$v`, `${v}`, `${v:-w}`, ...

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Variable lookup for expansion.
pub trait Vars {
    fn get_var(&self, name: &str) -> Option<&str>;
}

impl Vars for HashMap<String, String> {
    fn get_var(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Vars for BTreeMap<String, String> {
    fn get_var(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// An ordered environment (`KEY=value` order as in an image config); the last entry wins.
impl Vars for [(String, String)] {
    fn get_var(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Vars for Vec<(String, String)> {
    fn get_var(&self, name: &str) -> Option<&str> {
        self.as_slice().get_var(name)
    }
}

/// The result of an expansion plus the variables it referenced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expanded<T> {
    pub value: T,
    /// Referenced and set.
    pub matched: BTreeSet<String>,
    /// Referenced but unset.
    pub unmatched: BTreeSet<String>,
}

/// An expansion error (unterminated quote or brace, bad substitution, `${v:?msg}`, ...).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ShellError {
    pub message: String,
}

/// The lexer. `escape` is the Dockerfile's escape token.
#[derive(Clone, Copy, Debug)]
pub struct ShellLexer {
    pub escape: char,
    /// Keep quote characters in the output (BuildKit's RawQuotes).
    pub raw_quotes: bool,
    /// Keep escape characters in the output (BuildKit's RawEscapes).
    pub raw_escapes: bool,
    /// Leave references to unset variables as written (BuildKit's SkipUnsetEnv).
    pub skip_unset: bool,
}

impl ShellLexer {
    pub fn new(escape: char) -> Self {
        ShellLexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset: false,
        }
    }

    /// Expand `word` as one word: quotes removed, escapes processed, no splitting.
    pub fn process_word(
        &self,
        word: &str,
        vars: &dyn Vars,
    ) -> Result<Expanded<String>, ShellError> {
        let _ = (word, vars);
        Err(ShellError {
            message: "shell expansion not written yet".into(),
        })
    }

    /// Expand `word` with word splitting on unquoted whitespace.
    pub fn process_words(
        &self,
        word: &str,
        vars: &dyn Vars,
    ) -> Result<Expanded<Vec<String>>, ShellError> {
        let _ = (word, vars);
        Err(ShellError {
            message: "shell expansion not written yet".into(),
        })
    }
}
