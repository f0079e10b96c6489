//! Shell word and variable expansion with BuildKit's semantics
//! (`frontend/dockerfile/shell/lex.go`): quotes, escapes, `$v`, `${v}`, `${v:-w}`, ...
//!
//! This is a port of the *behaviour* of BuildKit's lexer (no Go code was copied):
//!
//! * `'...'` is literal (no escapes inside). `"..."` expands `$` and lets the escape token
//!   escape only `"`, `$` and the escape token itself; before any other character the escape
//!   token is kept literally, and a trailing escape token inside `"..."` is dropped.
//! * Outside quotes the escape token makes the next character literal (and not a word
//!   separator); a trailing escape token is dropped.
//! * `$name` / `${name}` where a name is a run of Unicode letters, Unicode decimal digits
//!   and `_`; a name starting with a digit is the run of digits (`$123abc` is `$123` then
//!   `abc`); `@ * # ? - $ ! 0` are one-character special names. Positional and special
//!   parameters are looked up like any other name (so they are normally unset and expand to
//!   nothing). `$` followed by anything else is a literal `$`.
//! * `${v-w} ${v:-w} ${v+w} ${v:+w} ${v?msg} ${v:?msg}` (POSIX; the colon forms also treat an
//!   empty value as unset), `${v#p} ${v##p} ${v%p} ${v%%p}` (shortest/longest prefix/suffix
//!   removal) and `${v/p/r} ${v//p/r}` (first/all replacement). Patterns know `*` and `?`
//!   (neither matches a newline) and `\*` `\?` `\\` `\}` `\/`; any other `\x` in a pattern is
//!   an error. The word after `#`, `%` and in `/p/r` is read with the escape token kept.
//!   As in BuildKit, the replacement of `${v//p/r}` goes through Go's `Regexp.Expand`
//!   template rules: `$$` is `$`, `$0`/`${0}` is the matched text, any other `$name` is empty.
//! * Everything else after `${name` (`${v:=w}`, `${v=w}`, `${v:#p}`, `${.}`, ...) is an error,
//!   as are `${}`, `${{`, `${:`, unterminated braces and quotes.
//! * Go's `text/scanner` drops one U+FEFF at the very start of its input; BuildKit reads the
//!   word and each pattern with it, so a leading U+FEFF of the word (or of a pattern, after
//!   reversal for `%`) is dropped here too.
//! * "Letter" and "digit" mean Go's `unicode.IsLetter` (category L) and `unicode.IsDigit`
//!   (category Nd) with Unicode 15.0 tables (as Go 1.21+), and "space" is `unicode.IsSpace`
//!   (the White_Space property, same as [`char::is_whitespace`]).
//!
//! Differences from BuildKit, on purpose:
//!
//! * Error messages are BuildKit's inner messages (`FOO: custom error`); BuildKit wraps them
//!   as `failed to process "<word>": <message>`, which is left to the caller.
//! * BuildKit shares one word buffer between the outer word and the word of a nested
//!   `${v<op>...}`, so in `ProcessWords` the part of the current word before such a
//!   substitution is lost (`a${x:-y}b` gives `[ "yb" ]`). [`ShellLexer::process_words`] keeps
//!   it (`[ "ayb" ]`), as [`ShellLexer::process_word`] and BuildKit's `ProcessWord` do.
//! * Substitutions may nest at most [`MAX_NESTING`] levels deep (BuildKit has no limit); deeper
//!   input is an error instead of unbounded recursion.
//! * An expanded word may be at most [`ShellLexer::max_len`] bytes long ([`MAX_EXPANDED_LEN`],
//!   1 MiB, by default; a word written longer than that in the Dockerfile may keep its own
//!   length). BuildKit has no limit, so `ENV a=$a$a` repeated 40 times exhausts memory; here
//!   the expansion stops as soon as its output passes the limit, with
//!   [`ShellErrorKind::TooLong`] naming the variable whose value pushed it over.
//! * The pattern operators of one word may take at most [`ShellLexer::max_pattern_steps`]
//!   matcher steps ([`MAX_PATTERN_STEPS`] by default), and report what they took in
//!   [`Expanded::pattern_steps`] (BuildKit's regexps have no such bound).

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How deeply `${v:-${w:-...}}` (and quotes inside them) may nest before expansion fails.
pub const MAX_NESTING: usize = 128;

/// The default limit on the length of one expanded word, in bytes (1 MiB).
pub const MAX_EXPANDED_LEN: usize = 1 << 20;

/// How many Pike VM thread steps the pattern operators (`${v#p}`, `${v%p}`, `${v/p/r}`,
/// `${v//p/r}`) of one word may take by default (2^24, about 0.4 s): a pattern of a million
/// `*` against a value of a million characters would otherwise take hours. A `${v//a/b}`
/// over a 1 MiB value takes about 3.7 million.
pub const MAX_PATTERN_STEPS: u64 = 1 << 24;

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

/// So that `&&[(String, String)]` (a reference to any `Vars`, sized or not) is a `&dyn Vars`.
impl<T: Vars + ?Sized> Vars for &T {
    fn get_var(&self, name: &str) -> Option<&str> {
        (**self).get_var(name)
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
    /// Pike VM steps the pattern operators took (for callers with a budget over many words).
    pub pattern_steps: u64,
}

/// An expansion error (unterminated quote or brace, bad substitution, `${v:?msg}`, ...).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ShellError {
    pub kind: ShellErrorKind,
    pub message: String,
}

/// What went wrong, for callers that report some errors differently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShellErrorKind {
    /// Bad syntax, `${v?msg}`, an invalid pattern: BuildKit's errors.
    Syntax,
    /// The expanded word would be longer than `limit` bytes; `variable` is the one whose
    /// value pushed it over (`None` when literal text or a replacement did).
    TooLong {
        limit: usize,
        variable: Option<String>,
    },
    /// The pattern operators would take more than [`ShellLexer::max_pattern_steps`] steps.
    PatternTooCostly,
}

fn error(message: impl Into<String>) -> ShellError {
    ShellError {
        kind: ShellErrorKind::Syntax,
        message: message.into(),
    }
}

/// `1 MiB`, `16 MiB`, or a byte count when it is not a whole number of MiB.
pub fn human_size(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

fn too_long(limit: usize, variable: Option<&str>) -> ShellError {
    let at = variable.map(|v| format!(" at ${v}")).unwrap_or_default();
    ShellError {
        kind: ShellErrorKind::TooLong {
            limit,
            variable: variable.map(str::to_owned),
        },
        message: format!(
            "expanded value longer than {} (the limit for one expanded value){at}",
            human_size(limit)
        ),
    }
}

fn too_costly() -> ShellError {
    ShellError {
        kind: ShellErrorKind::PatternTooCostly,
        message: "pattern matching takes too many steps".into(),
    }
}

fn unsupported_modifier(chs: &str) -> ShellError {
    error(format!("unsupported modifier ({chs}) in substitution"))
}

/// The lexer. `escape` is the Dockerfile's escape token.
#[derive(Clone, Copy, Debug)]
pub struct ShellLexer {
    pub escape: char,
    /// Keep quote characters in the output (BuildKit's RawQuotes).
    pub raw_quotes: bool,
    /// Keep escape characters in the output (BuildKit's RawEscapes). Like BuildKit, the word
    /// of `${v-w}`, `${v+w}` and `${v?w}` is still read with escapes processed.
    pub raw_escapes: bool,
    /// Leave references to unset variables as written (BuildKit's SkipUnsetEnv): `$v`, `${v}`,
    /// `${v<op><word>}` with the word already expanded, `${v/p/r}` (one `/` even for `//`).
    pub skip_unset: bool,
    /// Treat `'` and `"` as ordinary characters (BuildKit's SkipProcessQuotes, used for
    /// heredoc bodies).
    pub skip_process_quotes: bool,
    /// The longest expanded word, in bytes ([`MAX_EXPANDED_LEN`] by default); a word longer
    /// than this as written may expand to its own length.
    pub max_len: usize,
    /// How many Pike VM thread steps the pattern operators of one word may take
    /// ([`MAX_PATTERN_STEPS`] by default).
    pub max_pattern_steps: u64,
}

impl ShellLexer {
    pub fn new(escape: char) -> Self {
        ShellLexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset: false,
            skip_process_quotes: false,
            max_len: MAX_EXPANDED_LEN,
            max_pattern_steps: MAX_PATTERN_STEPS,
        }
    }

    /// Expand `word` as one word: quotes removed, escapes processed, no splitting.
    pub fn process_word(
        &self,
        word: &str,
        vars: &dyn Vars,
    ) -> Result<Expanded<String>, ShellError> {
        let mut expander = Expander::new(self, vars, word);
        let value = expander.process_stop_on(None, self.raw_escapes, None)?;
        expander.check_len(value.len())?;
        Ok(Expanded {
            value,
            pattern_steps: self.max_pattern_steps - expander.fuel,
            matched: expander.matched,
            unmatched: expander.unmatched,
        })
    }

    /// Expand `word` with word splitting on unquoted whitespace.
    ///
    /// Whitespace that is written unquoted and unescaped, or that comes from an unquoted `$`
    /// substitution, separates words; empty words are dropped (also `""`).
    pub fn process_words(
        &self,
        word: &str,
        vars: &dyn Vars,
    ) -> Result<Expanded<Vec<String>>, ShellError> {
        let mut expander = Expander::new(self, vars, word);
        let mut words = Words::default();
        let value = expander.process_stop_on(None, self.raw_escapes, Some(&mut words))?;
        expander.check_len(value.len())?;
        Ok(Expanded {
            value: words.finish(),
            pattern_steps: self.max_pattern_steps - expander.fuel,
            matched: expander.matched,
            unmatched: expander.unmatched,
        })
    }
}

/// A char cursor over the input (Go's `text/scanner` `Peek`/`Next`; `None` is EOF).
struct Cursor<'a> {
    src: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.src
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.pos += ch.len_utf8();
        Some(ch)
    }
}

/// Go's `string(rune)` for a scanner result: EOF (-1) prints as U+FFFD.
fn go_rune(ch: Option<char>) -> char {
    ch.unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Word splitting state (BuildKit's `wordsStruct`).
#[derive(Default)]
struct Words {
    words: Vec<String>,
    current: String,
}

impl Words {
    /// An unquoted character: whitespace ends the current word.
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            self.flush();
        } else {
            self.current.push(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.current.push(ch);
    }

    fn add_str(&mut self, s: &str) {
        s.chars().for_each(|ch| self.add_char(ch));
    }

    fn add_raw_str(&mut self, s: &str) {
        self.current.push_str(s);
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            self.words.push(std::mem::take(&mut self.current));
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.flush();
        self.words
    }
}

/// One expansion run (BuildKit's `shellWord`).
struct Expander<'a> {
    lexer: &'a ShellLexer,
    vars: &'a dyn Vars,
    cursor: Cursor<'a>,
    /// The current RawEscapes state; `process_stop_on` sets it for its extent.
    raw_escapes: bool,
    depth: usize,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
    /// The longest any part of the output may be: the lexer's `max_len`, or the word's
    /// own length when that is longer.
    limit: usize,
    /// The variable looked up last (named when the output gets too long).
    last_var: Option<String>,
    /// Pike VM steps left for the pattern operators.
    fuel: u64,
}

impl<'a> Expander<'a> {
    fn new(lexer: &'a ShellLexer, vars: &'a dyn Vars, word: &'a str) -> Self {
        Expander {
            lexer,
            vars,
            // text/scanner skips a byte order mark at the start of its input.
            cursor: Cursor {
                src: word.strip_prefix('\u{FEFF}').unwrap_or(word),
                pos: 0,
            },
            raw_escapes: lexer.raw_escapes,
            depth: 0,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
            limit: lexer.max_len.max(word.len()),
            last_var: None,
            fuel: lexer.max_pattern_steps,
        }
    }

    /// The whole output may be no longer than the limit either (literal text is appended
    /// unchecked, so it may pass the limit by up to the word's length before this check).
    fn check_len(&self, len: usize) -> Result<(), ShellError> {
        if len > self.limit {
            return Err(too_long(self.limit, self.last_var.as_deref()));
        }
        Ok(())
    }

    /// Append `part` to `out` unless that makes `out` longer than the limit.
    fn push(&self, out: &mut String, part: &str) -> Result<(), ShellError> {
        if out.len().saturating_add(part.len()) > self.limit {
            return Err(too_long(self.limit, self.last_var.as_deref()));
        }
        out.push_str(part);
        Ok(())
    }

    fn get_env(&mut self, name: &str) -> Option<&'a str> {
        self.last_var = Some(name.to_owned());
        let value = self.vars.get_var(name);
        let set = if value.is_some() {
            &mut self.matched
        } else {
            &mut self.unmatched
        };
        if !set.contains(name) {
            set.insert(name.to_owned());
        }
        value
    }

    /// Process until `stop` (consumed) or, when `stop` is `None`, the end of input. Reaching
    /// the end while looking for `stop` is an error. Nested calls don't split words.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
        words: Option<&mut Words>,
    ) -> Result<String, ShellError> {
        if self.depth >= MAX_NESTING {
            return Err(error(format!(
                "syntax error: substitutions nested more than {MAX_NESTING} levels deep"
            )));
        }
        self.depth += 1;
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let result = self.stop_on(stop, words);
        self.raw_escapes = saved;
        self.depth -= 1;
        result
    }

    fn stop_on(
        &mut self,
        stop: Option<char>,
        mut words: Option<&mut Words>,
    ) -> Result<String, ShellError> {
        let mut result = String::new();
        while let Some(ch) = self.cursor.peek() {
            if stop == Some(ch) {
                self.cursor.next();
                return Ok(result);
            }
            let quotes = !self.lexer.skip_process_quotes;
            if ch == '$' || (quotes && (ch == '\'' || ch == '"')) {
                let part = match ch {
                    '$' => self.process_dollar()?,
                    '\'' => self.process_single_quote()?,
                    _ => self.process_double_quote()?,
                };
                self.push(&mut result, &part)?;
                if let Some(words) = words.as_deref_mut() {
                    if ch == '$' {
                        words.add_str(&part);
                    } else {
                        words.add_raw_str(&part);
                    }
                }
                continue;
            }
            self.cursor.next();
            if ch == self.lexer.escape {
                if self.raw_escapes {
                    result.push(ch);
                    if let Some(words) = words.as_deref_mut() {
                        words.add_raw_char(ch);
                    }
                }
                // The escape token escapes the next character; at the end it is dropped.
                let Some(escaped) = self.cursor.next() else {
                    break;
                };
                result.push(escaped);
                if let Some(words) = words.as_deref_mut() {
                    words.add_raw_char(escaped);
                }
            } else {
                result.push(ch);
                if let Some(words) = words.as_deref_mut() {
                    words.add_char(ch);
                }
            }
        }
        match stop {
            Some(stop) => Err(error(format!(
                "unexpected end of statement while looking for matching {stop}"
            ))),
            None => Ok(result),
        }
    }

    fn process_single_quote(&mut self) -> Result<String, ShellError> {
        let mut result = String::new();
        let raw = self.lexer.raw_quotes;
        if let Some(quote) = self.cursor.next() {
            if raw {
                result.push(quote);
            }
        }
        loop {
            match self.cursor.next() {
                None => {
                    return Err(error(
                        "unexpected end of statement while looking for matching single-quote",
                    ))
                }
                Some('\'') => {
                    if raw {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(ch) => result.push(ch),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, ShellError> {
        let mut result = String::new();
        let raw = self.lexer.raw_quotes;
        if let Some(quote) = self.cursor.next() {
            if raw {
                result.push(quote);
            }
        }
        loop {
            match self.cursor.peek() {
                None => {
                    return Err(error(
                        "unexpected end of statement while looking for matching double-quote",
                    ))
                }
                Some('"') => {
                    self.cursor.next();
                    if raw {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    self.push(&mut result, &value)?;
                }
                Some(mut ch) => {
                    self.cursor.next();
                    if ch == self.lexer.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.cursor.peek() {
                            // A trailing escape token is dropped (the quote is unterminated).
                            None => continue,
                            Some(next)
                                if next == '"' || next == '$' || next == self.lexer.escape =>
                            {
                                self.cursor.next();
                                ch = next;
                            }
                            // Escapes nothing else: the escape token stays literal.
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_dollar(&mut self) -> Result<String, ShellError> {
        self.cursor.next(); // '$'
        if self.cursor.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.get_env(&name) {
                Some(value) => value.to_owned(),
                None if self.lexer.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.cursor.next(); // '{'
        match self.cursor.peek() {
            None => return Err(error("syntax error: missing '}'")),
            Some('{' | '}' | ':') => return Err(error("syntax error: bad substitution")),
            Some(_) => {}
        }
        let name = self.process_name();
        let ch = self.cursor.next();
        match ch {
            Some('}') => Ok(match self.get_env(&name) {
                Some(value) => value.to_owned(),
                None if self.lexer.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':' | '+' | '-' | '?' | '#' | '%') => self.process_modifier(&name, ch),
            Some('/') => self.process_replace(&name),
            _ => Err(unsupported_modifier(&go_rune(ch).to_string())),
        }
    }

    /// `${name<op>word}` and `${name:<op>word}`; `first` is the character after the name.
    fn process_modifier(&mut self, name: &str, first: Option<char>) -> Result<String, ShellError> {
        let mut chs = go_rune(first).to_string();
        let mut op = first;
        let null_is_unset = first == Some(':');
        if null_is_unset {
            op = self.cursor.next();
            chs.push(go_rune(op));
        }
        let pattern_op = matches!(op, Some('#' | '%'));
        if null_is_unset && pattern_op {
            return Err(unsupported_modifier(&chs));
        }
        let word = self
            .process_stop_on(Some('}'), pattern_op, None)
            .map_err(|e| self.at_end_or(e, "syntax error: missing '}'"))?;

        let value = self.get_env(name);
        if self.lexer.skip_unset && value.is_none() {
            return Ok(format!("${{{name}{chs}{word}}}"));
        }
        let usable = value.filter(|v| !(null_is_unset && v.is_empty()));
        match op {
            Some('-') => Ok(usable.map_or(word, str::to_owned)),
            Some('+') => Ok(if usable.is_some() {
                word
            } else {
                String::new()
            }),
            Some('?') => match (value, usable) {
                (_, Some(value)) => Ok(value.to_owned()),
                (None, _) => Err(required(name, &word, "is not allowed to be unset")),
                (Some(_), None) => Err(required(name, &word, "is not allowed to be empty")),
            },
            Some(op @ ('#' | '%')) => {
                let value = value.unwrap_or("");
                // `##`/`%%` match the longest pattern, `#`/`%` the shortest.
                let (pattern, greedy) = match word.strip_prefix(op) {
                    Some(rest) => (rest, true),
                    None => (word.as_str(), false),
                };
                if op == '%' {
                    trim_suffix(pattern, value, greedy, &mut self.fuel)
                } else {
                    trim_prefix(pattern, value, greedy, &mut self.fuel)
                }
            }
            _ => Err(unsupported_modifier(&chs)),
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}` (after the first `/`).
    fn process_replace(&mut self, name: &str) -> Result<String, ShellError> {
        let replace_all = self.cursor.peek() == Some('/');
        if replace_all {
            self.cursor.next();
        }
        let pattern = self
            .process_stop_on(Some('/'), true, None)
            .map_err(|e| self.at_end_or(e, "syntax error: missing '/' in ${}"))?;
        let replacement = self
            .process_stop_on(Some('}'), true, None)
            .map_err(|e| self.at_end_or(e, "syntax error: missing '}'"))?;

        let value = self.get_env(name);
        if self.lexer.skip_unset && value.is_none() {
            return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
        }
        let value = value.unwrap_or("");
        let regex = Pattern::compile(&pattern, true).map_err(|e| invalid_pattern(&pattern, &e))?;
        let text: Vec<char> = value.chars().collect();
        if replace_all {
            let limit = self.limit;
            return regex
                .replace_all(&text, &replacement, limit, &mut self.fuel)?
                .ok_or_else(|| too_long(limit, Some(name)));
        }
        Ok(match regex.find_at(&text, 0, false, &mut self.fuel)? {
            Some((start, end)) => {
                let mut out: String = text.get(..start).unwrap_or_default().iter().collect();
                self.push(&mut out, &replacement)?;
                out.extend(text.get(end..).unwrap_or_default());
                out
            }
            None => value.to_owned(),
        })
    }

    /// BuildKit reports a failed inner word as a missing delimiter when the input is used up.
    fn at_end_or(&self, e: ShellError, message: &str) -> ShellError {
        if self.cursor.peek().is_none() {
            error(message)
        } else {
            e
        }
    }

    /// A name: a run of letters, digits and `_`; or a run of digits; or one special parameter.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.cursor.peek() {
            if name.is_empty() && is_go_digit(ch) {
                while let Some(digit) = self.cursor.peek().filter(|&c| is_go_digit(c)) {
                    self.cursor.next();
                    name.push(digit);
                }
                return name;
            }
            if name.is_empty() && is_special_param(ch) {
                self.cursor.next();
                name.push(ch);
                return name;
            }
            if !is_go_letter(ch) && !is_go_digit(ch) && ch != '_' {
                break;
            }
            self.cursor.next();
            name.push(ch);
        }
        name
    }
}

fn required(name: &str, word: &str, default_message: &str) -> ShellError {
    let message = if word.is_empty() {
        default_message
    } else {
        word
    };
    error(format!("{name}: {message}"))
}

fn invalid_pattern(pattern: &str, e: &str) -> ShellError {
    error(format!("invalid pattern ({pattern}) in substitution: {e}"))
}

/// POSIX special parameters.
fn is_special_param(ch: char) -> bool {
    matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// Go's `unicode.IsLetter` (general category L).
fn is_go_letter(ch: char) -> bool {
    if ch.is_ascii() {
        ch.is_ascii_alphabetic()
    } else {
        in_ranges(tables::LETTER, ch)
    }
}

/// Go's `unicode.IsDigit` (general category Nd).
fn is_go_digit(ch: char) -> bool {
    if ch.is_ascii() {
        ch.is_ascii_digit()
    } else {
        in_ranges(tables::DIGIT, ch)
    }
}

/// Whether `ch` lies in one of the sorted inclusive `start, end` pairs of `ranges`.
fn in_ranges(ranges: &[u32], ch: char) -> bool {
    let c = u32::from(ch);
    // Index of the first pair whose end is >= c.
    let pairs = ranges.len() / 2;
    let (mut lo, mut hi) = (0, pairs);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if ranges.get(2 * mid + 1).is_some_and(|&end| end < c) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    ranges.get(2 * lo).is_some_and(|&start| start <= c)
}

/// `${v#p}` / `${v##p}`: remove the shortest (longest if `greedy`) prefix matching `pattern`.
fn trim_prefix(
    pattern: &str,
    value: &str,
    greedy: bool,
    fuel: &mut u64,
) -> Result<String, ShellError> {
    let regex = Pattern::compile(pattern, greedy).map_err(|e| invalid_pattern(pattern, &e))?;
    let text: Vec<char> = value.chars().collect();
    Ok(match regex.find_at(&text, 0, true, fuel)? {
        Some((_, end)) => text.get(end..).unwrap_or_default().iter().collect(),
        None => value.to_owned(),
    })
}

/// `${v%p}` / `${v%%p}`: like BuildKit, reverse the value and the pattern (keeping `\x`
/// pairs in order) and remove a prefix; errors therefore show the reversed pattern.
fn trim_suffix(
    pattern: &str,
    value: &str,
    greedy: bool,
    fuel: &mut u64,
) -> Result<String, ShellError> {
    let reversed: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed, greedy, fuel)?;
    Ok(trimmed.chars().rev().collect())
}

/// Reverse a pattern without reversing `\x` escapes: `a\*c` becomes `c\*a`.
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = chars.clone();
    let last = chars.len().saturating_sub(1);
    let mut i = 0;
    while let Some(&ch) = chars.get(i) {
        let at = last - i;
        match chars.get(i + 1) {
            Some(&next) if ch == '\\' && at >= 1 => {
                out[at - 1] = ch;
                out[at] = next;
                i += 2;
            }
            _ => {
                out[at] = ch;
                i += 1;
            }
        }
    }
    out.into_iter().collect()
}

/// A compiled shell pattern: BuildKit turns it into a Go regular expression made of
/// literals, `.` (for `?`) and `.*` or `.*?` (for `*`) and runs it with leftmost-first
/// semantics. This is a Pike VM over the same program, so results (including which
/// of several possible matches wins) are the same and the time is linear.
#[derive(Debug)]
struct Pattern {
    prog: Vec<Inst>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inst {
    Char(char),
    /// Any character but `\n` (Go's `.`).
    Any,
    /// Try the first target, then the second.
    Split(usize, usize),
    Jmp(usize),
    Match,
}

/// A thread list: states in priority order plus a visited set for the epsilon closure.
struct Threads {
    threads: Vec<(usize, usize)>,
    visited: Vec<bool>,
    touched: Vec<usize>,
}

impl Threads {
    fn new(len: usize) -> Self {
        Threads {
            threads: Vec::new(),
            visited: vec![false; len],
            touched: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.threads.clear();
        for &pc in &self.touched {
            if let Some(v) = self.visited.get_mut(pc) {
                *v = false;
            }
        }
        self.touched.clear();
    }

    /// Marks `pc`; false if it was already marked.
    fn visit(&mut self, pc: usize) -> bool {
        match self.visited.get_mut(pc) {
            Some(v) if !*v => {
                *v = true;
                self.touched.push(pc);
                true
            }
            _ => false,
        }
    }
}

impl Pattern {
    /// Compile like BuildKit's `convertShellPatternToRegex`: `*` is `.*` (`.*?` unless
    /// `greedy`), `?` is `.`, `\*` `\?` `\\` are literal, `\` before `}` or `/` is dropped and
    /// any other escape is an error.
    fn compile(pattern: &str, greedy: bool) -> Result<Pattern, String> {
        let mut prog = Vec::new();
        let mut chars = pattern
            .strip_prefix('\u{FEFF}')
            .unwrap_or(pattern)
            .chars()
            .peekable();
        while let Some(tok) = chars.next() {
            match tok {
                '*' => {
                    let at = prog.len();
                    prog.push(if greedy {
                        Inst::Split(at + 1, at + 3)
                    } else {
                        Inst::Split(at + 3, at + 1)
                    });
                    prog.push(Inst::Any);
                    prog.push(Inst::Jmp(at));
                }
                '?' => prog.push(Inst::Any),
                '\\' => {
                    if matches!(chars.peek(), Some('}' | '/')) {
                        continue;
                    }
                    match chars.next() {
                        Some(ch @ ('*' | '?' | '\\')) => prog.push(Inst::Char(ch)),
                        other => return Err(format!("invalid escape '\\{}'", go_rune(other))),
                    }
                }
                ch => prog.push(Inst::Char(ch)),
            }
        }
        prog.push(Inst::Match);
        Ok(Pattern { prog })
    }

    /// Add the epsilon closure of `pc` to `list` in priority order.
    fn add_thread(&self, list: &mut Threads, stack: &mut Vec<usize>, pc: usize, start: usize) {
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if !list.visit(pc) {
                continue;
            }
            match self.prog.get(pc) {
                Some(Inst::Jmp(to)) => stack.push(*to),
                Some(Inst::Split(first, second)) => {
                    stack.push(*second);
                    stack.push(*first);
                }
                Some(_) => list.threads.push((pc, start)),
                None => {}
            }
        }
    }

    /// The leftmost-first match in `text[from..]` as char indices; with `anchored` only a
    /// match starting at `from`. Each thread step burns one unit of `fuel`; running out is
    /// an error.
    fn find_at(
        &self,
        text: &[char],
        from: usize,
        anchored: bool,
        fuel: &mut u64,
    ) -> Result<Option<(usize, usize)>, ShellError> {
        let len = self.prog.len();
        let mut current = Threads::new(len);
        let mut next = Threads::new(len);
        let mut stack = Vec::new();
        let mut found = None;
        let mut pos = from;
        loop {
            if found.is_none() && (!anchored || pos == from) {
                self.add_thread(&mut current, &mut stack, 0, pos);
            }
            if current.threads.is_empty() {
                break;
            }
            let ch = text.get(pos).copied();
            *fuel = fuel
                .checked_sub(current.threads.len() as u64 + 1)
                .ok_or_else(too_costly)?;
            for &(pc, start) in &current.threads {
                match self.prog.get(pc) {
                    Some(Inst::Match) => {
                        // Lower-priority threads can't win any more.
                        found = Some((start, pos));
                        break;
                    }
                    Some(Inst::Char(want)) if ch == Some(*want) => {
                        self.add_thread(&mut next, &mut stack, pc + 1, start);
                    }
                    Some(Inst::Any) if ch.is_some_and(|c| c != '\n') => {
                        self.add_thread(&mut next, &mut stack, pc + 1, start);
                    }
                    _ => {}
                }
            }
            if pos >= text.len() {
                break;
            }
            std::mem::swap(&mut current, &mut next);
            next.clear();
            pos += 1;
        }
        Ok(found)
    }

    /// Go's `Regexp.ReplaceAllString`: non-overlapping matches left to right, an empty match
    /// right after a match is skipped, and `repl` is a `Regexp.Expand` template. `None`
    /// when the result would be longer than `limit` bytes.
    fn replace_all(
        &self,
        text: &[char],
        repl: &str,
        limit: usize,
        fuel: &mut u64,
    ) -> Result<Option<String>, ShellError> {
        let mut out = String::new();
        let mut last_end = 0;
        let mut search = 0;
        while search <= text.len() {
            let Some((start, end)) = self.find_at(text, search, false, fuel)? else {
                break;
            };
            out.extend(text.get(last_end..start).unwrap_or_default());
            if end > last_end || start == 0 {
                expand_template(&mut out, repl, text.get(start..end).unwrap_or_default());
            }
            // One template adds at most `repl.len()` + one match: never far past the limit.
            if out.len() > limit {
                return Ok(None);
            }
            last_end = end;
            // Always advance by at least one character.
            search = if end <= search { search + 1 } else { end };
        }
        out.extend(text.get(last_end..).unwrap_or_default());
        Ok((out.len() <= limit).then_some(out))
    }
}

/// Go's `Regexp.Expand` for a regexp without groups: `$$` is `$`, `$0` / `${0}` the match,
/// any other `$name` / `${name}` empty, and a `$` not followed by a valid name literal.
fn expand_template(out: &mut String, template: &str, matched: &[char]) {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let (braced, body) = match rest.strip_prefix('{') {
            Some(body) => (true, body),
            None => (false, rest),
        };
        let name_len: usize = body
            .chars()
            .take_while(|&c| is_go_letter(c) || is_go_digit(c) || c == '_')
            .map(char::len_utf8)
            .sum();
        let (name, mut after) = body.split_at(name_len);
        if name.is_empty() {
            // Malformed: the `$` is literal text.
            out.push('$');
            continue;
        }
        if braced {
            let Some(closed) = after.strip_prefix('}') else {
                out.push('$');
                continue;
            };
            after = closed;
        }
        if name == "0" {
            out.extend(matched);
        }
        rest = after;
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, String)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn too_long_at(e: ShellError) -> Option<String> {
        match e.kind {
            ShellErrorKind::TooLong { limit, variable } => {
                assert_eq!(limit, MAX_EXPANDED_LEN);
                variable
            }
            other => panic!("expected TooLong, got {other:?}: {}", e.message),
        }
    }

    #[test]
    fn expansion_is_bounded() {
        let lexer = ShellLexer::new('\\');
        let half = "x".repeat(MAX_EXPANDED_LEN / 2 + 1);
        let v = vars(&[("a", half.clone()), ("b", "y".into())]);
        // Exactly at the limit is fine; one byte more is not.
        let exact = vars(&[("a", "x".repeat(MAX_EXPANDED_LEN / 2)), ("b", "y".into())]);
        let ok = lexer.process_word("$a$a", &exact).unwrap().value;
        assert_eq!(ok.len(), MAX_EXPANDED_LEN);
        assert_eq!(
            too_long_at(lexer.process_word("$a$a$b", &exact).unwrap_err()),
            Some("b".into())
        );
        for word in [
            "$a$a",
            "${a}${a}",
            "\"$a$a\"",
            "\"$a\"$a",
            "${unset:-$a$a}",
            "${b:+${a}${a}}",
            "${a/x/$a}",
            "pre $a $a",
        ] {
            let e = lexer.process_word(word, &v).unwrap_err();
            assert_eq!(too_long_at(e.clone()), Some("a".into()), "{word}");
            assert_eq!(
                e.message,
                "expanded value longer than 1 MiB (the limit for one expanded value) at $a"
            );
            assert!(lexer.process_words(word, &v).is_err(), "{word}");
        }
        // `//` replacement doubling every character: the variable is the one replaced.
        let e = lexer.process_word("${a//?/xx}", &v).unwrap_err();
        assert_eq!(too_long_at(e), Some("a".into()));
        // A value already over the limit can't be used at all.
        let big = vars(&[("big", "x".repeat(MAX_EXPANDED_LEN + 1))]);
        assert!(lexer.process_word("$big", &big).is_err());
        assert!(lexer.process_word("${big#x}", &big).is_ok());
        assert!(lexer.process_word("${big}", &big).is_err());
    }

    #[test]
    fn limit_is_the_lexers_or_the_words_own_length() {
        let mut lexer = ShellLexer::new('\\');
        lexer.max_len = 8;
        let v = vars(&[("a", "12345".into())]);
        assert_eq!(lexer.process_word("$a", &v).unwrap().value, "12345");
        assert!(lexer.process_word("$a$a", &v).is_err());
        // Written text longer than the limit is the Dockerfile's own size, not expansion.
        let literal = "0123456789abcdef";
        assert_eq!(lexer.process_word(literal, &v).unwrap().value, literal);
        assert!(lexer.process_word("0123456789abcdef$a", &v).is_err());
        assert!(lexer.process_word("012$a$a$a$a", &v).is_err());
        let e = lexer.process_word("0123456$a", &v).unwrap_err();
        assert!(
            matches!(e.kind, ShellErrorKind::TooLong { limit: 9, .. }),
            "{e:?}"
        );
    }

    #[test]
    fn pattern_work_is_bounded() {
        let mut lexer = ShellLexer::new('\\');
        lexer.max_pattern_steps = 100_000;
        let v = vars(&[
            ("a", "a".repeat(10_000)),
            ("p", format!("{}b", "*".repeat(100))),
            ("q", format!("b{}", "*".repeat(100))),
        ]);
        for word in ["${a//$p/x}", "${a/$p/x}", "${a#$p}", "${a%%$q}"] {
            let r = lexer.process_word(word, &v).map(|r| r.value.len());
            assert_eq!(
                r.map_err(|e| e.kind),
                Err(ShellErrorKind::PatternTooCostly),
                "{word}"
            );
        }
        // Small work is untouched, and reported.
        let r = lexer.process_word("${a##a*}", &v).unwrap();
        assert_eq!(r.value, "");
        assert!(
            r.pattern_steps > 10_000 && r.pattern_steps < 100_000,
            "{}",
            r.pattern_steps
        );
        assert_eq!(lexer.process_word("$a", &v).unwrap().pattern_steps, 0);
    }

    #[test]
    fn reverse_pattern_keeps_escapes() {
        let cases = [
            ("a\\*c", "c\\*a"),
            ("\\\\\\ab", "b\\a\\\\"),
            ("ab\\", "\\ba"),
            ("👽\\🚀🖖", "🖖\\🚀👽"),
            ("\\\\b", "b\\\\"),
            ("", ""),
            ("\\", "\\"),
        ];
        for (pattern, expected) in cases {
            assert_eq!(reverse_pattern(pattern), expected, "{pattern:?}");
        }
    }

    #[test]
    fn pattern_escapes() {
        for bad in ["\\", "\\x", "\\\\\\", "a\\b"] {
            assert!(Pattern::compile(bad, true).is_err(), "{bad:?}");
        }
        assert_eq!(
            Pattern::compile("\\x", true).unwrap_err(),
            "invalid escape '\\x'"
        );
        assert_eq!(
            Pattern::compile("\\", true).unwrap_err(),
            "invalid escape '\\\u{FFFD}'"
        );
        let p = Pattern::compile("\\}\\/\\*\\?\\\\", true).unwrap();
        assert_eq!(
            p.prog,
            vec![
                Inst::Char('}'),
                Inst::Char('/'),
                Inst::Char('*'),
                Inst::Char('?'),
                Inst::Char('\\'),
                Inst::Match
            ]
        );
    }

    /// Reference: a plain backtracking matcher over the same program (leftmost-first).
    fn backtrack(prog: &[Inst], text: &[char], pc: usize, pos: usize) -> Option<usize> {
        match prog[pc] {
            Inst::Match => Some(pos),
            Inst::Char(c) => (text.get(pos) == Some(&c))
                .then(|| backtrack(prog, text, pc + 1, pos + 1))
                .flatten(),
            Inst::Any => text
                .get(pos)
                .is_some_and(|&c| c != '\n')
                .then(|| backtrack(prog, text, pc + 1, pos + 1))
                .flatten(),
            Inst::Jmp(to) => backtrack(prog, text, to, pos),
            Inst::Split(a, b) => {
                backtrack(prog, text, a, pos).or_else(|| backtrack(prog, text, b, pos))
            }
        }
    }

    fn reference_find(
        p: &Pattern,
        text: &[char],
        from: usize,
        anchored: bool,
    ) -> Option<(usize, usize)> {
        let last = if anchored { from } else { text.len() };
        (from..=last).find_map(|start| backtrack(&p.prog, text, 0, start).map(|end| (start, end)))
    }

    #[test]
    fn pike_vm_agrees_with_backtracking() {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut rand = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let pattern_alphabet = ['a', 'b', '*', '?', '\n'];
        let text_alphabet = ['a', 'b', '\n', 'é'];
        for _ in 0..20_000 {
            let pattern: String = (0..rand(6)).map(|_| pattern_alphabet[rand(5)]).collect();
            let text: Vec<char> = (0..rand(9)).map(|_| text_alphabet[rand(4)]).collect();
            let greedy = rand(2) == 0;
            let anchored = rand(2) == 0;
            let from = rand(text.len() + 1);
            let p = Pattern::compile(&pattern, greedy).unwrap();
            assert_eq!(
                p.find_at(&text, from, anchored, &mut u64::MAX.clone())
                    .unwrap(),
                reference_find(&p, &text, from, anchored),
                "pattern {pattern:?} text {text:?} greedy {greedy} anchored {anchored} from {from}"
            );
        }
    }

    #[test]
    fn replace_all_like_go() {
        let run = |pattern: &str, text: &str, repl: &str| {
            let p = Pattern::compile(pattern, true).unwrap();
            p.replace_all(
                &text.chars().collect::<Vec<_>>(),
                repl,
                usize::MAX,
                &mut u64::MAX.clone(),
            )
            .unwrap()
            .unwrap()
        };
        // Empty matches everywhere, but not right after a non-empty match.
        assert_eq!(run("", "xy", "-"), "-x-y-");
        assert_eq!(run("*", "ab\ncd", "X"), "X\nX");
        assert_eq!(run("a", "banana", "o"), "bonono");
        assert_eq!(run("a*", "baaac", "<$0>"), "b<aaac>");
        assert_eq!(run("?", "ab", "$$$1${0}"), "$a$b");
    }

    #[test]
    fn expand_template_like_go() {
        let m: Vec<char> = "M".chars().collect();
        let cases = [
            ("$0", "M"),
            ("${0}", "M"),
            ("$0x", ""),
            ("${0}x", "Mx"),
            ("$$0", "$0"),
            ("$1", ""),
            ("$00", ""),
            ("$name", ""),
            ("${name}", ""),
            ("${0", "${0"),
            ("$", "$"),
            ("a$.b", "a$.b"),
            ("${}", "${}"),
            ("x$é", "x"),
        ];
        for (template, expected) in cases {
            let mut out = String::new();
            expand_template(&mut out, template, &m);
            assert_eq!(out, expected, "{template:?}");
        }
    }

    #[test]
    fn go_unicode_classes() {
        for c in ['a', 'Z', 'é', 'ª', 'µ', '한', 'Ω', 'ß'] {
            assert!(is_go_letter(c), "{c:?}");
        }
        // Mn/Mc (Other_Alphabetic), Nl and No are not letters in Go.
        for c in ['\u{0947}', 'Ⅻ', '²', '_', '1', '\u{FEFF}', ' '] {
            assert!(!is_go_letter(c), "{c:?}");
        }
        for c in ['0', '9', '٣', '९', '𝟘'] {
            assert!(is_go_digit(c), "{c:?}");
        }
        for c in ['²', '½', 'Ⅻ', 'a', '\u{0}'] {
            assert!(!is_go_digit(c), "{c:?}");
        }
        // Table edges.
        let first = char::from_u32(tables::LETTER[0]).unwrap();
        let last = char::from_u32(*tables::LETTER.last().unwrap()).unwrap();
        assert!(is_go_letter(first) && is_go_letter(last));
        assert!(!is_go_letter(char::MAX));
        assert!(tables::LETTER.windows(2).all(|w| w[0] <= w[1]));
        assert!(tables::DIGIT.windows(2).all(|w| w[0] <= w[1]));
    }
}

/// Unicode 15.0.0 general-category tables (the version Go 1.21+ uses), generated from the
/// Unicode Character Database.
mod tables {
    /// Inclusive `start, end` pairs of non-ASCII code points in category L (Lu, Ll, Lt, Lm, Lo).
    pub(super) const LETTER: &[u32] = &[
        0xAA, 0xAA, 0xB5, 0xB5, 0xBA, 0xBA, 0xC0, 0xD6, 0xD8, 0xF6, 0xF8, 0x2C1, 0x2C6, 0x2D1,
        0x2E0, 0x2E4, 0x2EC, 0x2EC, 0x2EE, 0x2EE, 0x370, 0x374, 0x376, 0x377, 0x37A, 0x37D, 0x37F,
        0x37F, 0x386, 0x386, 0x388, 0x38A, 0x38C, 0x38C, 0x38E, 0x3A1, 0x3A3, 0x3F5, 0x3F7, 0x481,
        0x48A, 0x52F, 0x531, 0x556, 0x559, 0x559, 0x560, 0x588, 0x5D0, 0x5EA, 0x5EF, 0x5F2, 0x620,
        0x64A, 0x66E, 0x66F, 0x671, 0x6D3, 0x6D5, 0x6D5, 0x6E5, 0x6E6, 0x6EE, 0x6EF, 0x6FA, 0x6FC,
        0x6FF, 0x6FF, 0x710, 0x710, 0x712, 0x72F, 0x74D, 0x7A5, 0x7B1, 0x7B1, 0x7CA, 0x7EA, 0x7F4,
        0x7F5, 0x7FA, 0x7FA, 0x800, 0x815, 0x81A, 0x81A, 0x824, 0x824, 0x828, 0x828, 0x840, 0x858,
        0x860, 0x86A, 0x870, 0x887, 0x889, 0x88E, 0x8A0, 0x8C9, 0x904, 0x939, 0x93D, 0x93D, 0x950,
        0x950, 0x958, 0x961, 0x971, 0x980, 0x985, 0x98C, 0x98F, 0x990, 0x993, 0x9A8, 0x9AA, 0x9B0,
        0x9B2, 0x9B2, 0x9B6, 0x9B9, 0x9BD, 0x9BD, 0x9CE, 0x9CE, 0x9DC, 0x9DD, 0x9DF, 0x9E1, 0x9F0,
        0x9F1, 0x9FC, 0x9FC, 0xA05, 0xA0A, 0xA0F, 0xA10, 0xA13, 0xA28, 0xA2A, 0xA30, 0xA32, 0xA33,
        0xA35, 0xA36, 0xA38, 0xA39, 0xA59, 0xA5C, 0xA5E, 0xA5E, 0xA72, 0xA74, 0xA85, 0xA8D, 0xA8F,
        0xA91, 0xA93, 0xAA8, 0xAAA, 0xAB0, 0xAB2, 0xAB3, 0xAB5, 0xAB9, 0xABD, 0xABD, 0xAD0, 0xAD0,
        0xAE0, 0xAE1, 0xAF9, 0xAF9, 0xB05, 0xB0C, 0xB0F, 0xB10, 0xB13, 0xB28, 0xB2A, 0xB30, 0xB32,
        0xB33, 0xB35, 0xB39, 0xB3D, 0xB3D, 0xB5C, 0xB5D, 0xB5F, 0xB61, 0xB71, 0xB71, 0xB83, 0xB83,
        0xB85, 0xB8A, 0xB8E, 0xB90, 0xB92, 0xB95, 0xB99, 0xB9A, 0xB9C, 0xB9C, 0xB9E, 0xB9F, 0xBA3,
        0xBA4, 0xBA8, 0xBAA, 0xBAE, 0xBB9, 0xBD0, 0xBD0, 0xC05, 0xC0C, 0xC0E, 0xC10, 0xC12, 0xC28,
        0xC2A, 0xC39, 0xC3D, 0xC3D, 0xC58, 0xC5A, 0xC5D, 0xC5D, 0xC60, 0xC61, 0xC80, 0xC80, 0xC85,
        0xC8C, 0xC8E, 0xC90, 0xC92, 0xCA8, 0xCAA, 0xCB3, 0xCB5, 0xCB9, 0xCBD, 0xCBD, 0xCDD, 0xCDE,
        0xCE0, 0xCE1, 0xCF1, 0xCF2, 0xD04, 0xD0C, 0xD0E, 0xD10, 0xD12, 0xD3A, 0xD3D, 0xD3D, 0xD4E,
        0xD4E, 0xD54, 0xD56, 0xD5F, 0xD61, 0xD7A, 0xD7F, 0xD85, 0xD96, 0xD9A, 0xDB1, 0xDB3, 0xDBB,
        0xDBD, 0xDBD, 0xDC0, 0xDC6, 0xE01, 0xE30, 0xE32, 0xE33, 0xE40, 0xE46, 0xE81, 0xE82, 0xE84,
        0xE84, 0xE86, 0xE8A, 0xE8C, 0xEA3, 0xEA5, 0xEA5, 0xEA7, 0xEB0, 0xEB2, 0xEB3, 0xEBD, 0xEBD,
        0xEC0, 0xEC4, 0xEC6, 0xEC6, 0xEDC, 0xEDF, 0xF00, 0xF00, 0xF40, 0xF47, 0xF49, 0xF6C, 0xF88,
        0xF8C, 0x1000, 0x102A, 0x103F, 0x103F, 0x1050, 0x1055, 0x105A, 0x105D, 0x1061, 0x1061,
        0x1065, 0x1066, 0x106E, 0x1070, 0x1075, 0x1081, 0x108E, 0x108E, 0x10A0, 0x10C5, 0x10C7,
        0x10C7, 0x10CD, 0x10CD, 0x10D0, 0x10FA, 0x10FC, 0x1248, 0x124A, 0x124D, 0x1250, 0x1256,
        0x1258, 0x1258, 0x125A, 0x125D, 0x1260, 0x1288, 0x128A, 0x128D, 0x1290, 0x12B0, 0x12B2,
        0x12B5, 0x12B8, 0x12BE, 0x12C0, 0x12C0, 0x12C2, 0x12C5, 0x12C8, 0x12D6, 0x12D8, 0x1310,
        0x1312, 0x1315, 0x1318, 0x135A, 0x1380, 0x138F, 0x13A0, 0x13F5, 0x13F8, 0x13FD, 0x1401,
        0x166C, 0x166F, 0x167F, 0x1681, 0x169A, 0x16A0, 0x16EA, 0x16F1, 0x16F8, 0x1700, 0x1711,
        0x171F, 0x1731, 0x1740, 0x1751, 0x1760, 0x176C, 0x176E, 0x1770, 0x1780, 0x17B3, 0x17D7,
        0x17D7, 0x17DC, 0x17DC, 0x1820, 0x1878, 0x1880, 0x1884, 0x1887, 0x18A8, 0x18AA, 0x18AA,
        0x18B0, 0x18F5, 0x1900, 0x191E, 0x1950, 0x196D, 0x1970, 0x1974, 0x1980, 0x19AB, 0x19B0,
        0x19C9, 0x1A00, 0x1A16, 0x1A20, 0x1A54, 0x1AA7, 0x1AA7, 0x1B05, 0x1B33, 0x1B45, 0x1B4C,
        0x1B83, 0x1BA0, 0x1BAE, 0x1BAF, 0x1BBA, 0x1BE5, 0x1C00, 0x1C23, 0x1C4D, 0x1C4F, 0x1C5A,
        0x1C7D, 0x1C80, 0x1C88, 0x1C90, 0x1CBA, 0x1CBD, 0x1CBF, 0x1CE9, 0x1CEC, 0x1CEE, 0x1CF3,
        0x1CF5, 0x1CF6, 0x1CFA, 0x1CFA, 0x1D00, 0x1DBF, 0x1E00, 0x1F15, 0x1F18, 0x1F1D, 0x1F20,
        0x1F45, 0x1F48, 0x1F4D, 0x1F50, 0x1F57, 0x1F59, 0x1F59, 0x1F5B, 0x1F5B, 0x1F5D, 0x1F5D,
        0x1F5F, 0x1F7D, 0x1F80, 0x1FB4, 0x1FB6, 0x1FBC, 0x1FBE, 0x1FBE, 0x1FC2, 0x1FC4, 0x1FC6,
        0x1FCC, 0x1FD0, 0x1FD3, 0x1FD6, 0x1FDB, 0x1FE0, 0x1FEC, 0x1FF2, 0x1FF4, 0x1FF6, 0x1FFC,
        0x2071, 0x2071, 0x207F, 0x207F, 0x2090, 0x209C, 0x2102, 0x2102, 0x2107, 0x2107, 0x210A,
        0x2113, 0x2115, 0x2115, 0x2119, 0x211D, 0x2124, 0x2124, 0x2126, 0x2126, 0x2128, 0x2128,
        0x212A, 0x212D, 0x212F, 0x2139, 0x213C, 0x213F, 0x2145, 0x2149, 0x214E, 0x214E, 0x2183,
        0x2184, 0x2C00, 0x2CE4, 0x2CEB, 0x2CEE, 0x2CF2, 0x2CF3, 0x2D00, 0x2D25, 0x2D27, 0x2D27,
        0x2D2D, 0x2D2D, 0x2D30, 0x2D67, 0x2D6F, 0x2D6F, 0x2D80, 0x2D96, 0x2DA0, 0x2DA6, 0x2DA8,
        0x2DAE, 0x2DB0, 0x2DB6, 0x2DB8, 0x2DBE, 0x2DC0, 0x2DC6, 0x2DC8, 0x2DCE, 0x2DD0, 0x2DD6,
        0x2DD8, 0x2DDE, 0x2E2F, 0x2E2F, 0x3005, 0x3006, 0x3031, 0x3035, 0x303B, 0x303C, 0x3041,
        0x3096, 0x309D, 0x309F, 0x30A1, 0x30FA, 0x30FC, 0x30FF, 0x3105, 0x312F, 0x3131, 0x318E,
        0x31A0, 0x31BF, 0x31F0, 0x31FF, 0x3400, 0x4DBF, 0x4E00, 0xA48C, 0xA4D0, 0xA4FD, 0xA500,
        0xA60C, 0xA610, 0xA61F, 0xA62A, 0xA62B, 0xA640, 0xA66E, 0xA67F, 0xA69D, 0xA6A0, 0xA6E5,
        0xA717, 0xA71F, 0xA722, 0xA788, 0xA78B, 0xA7CA, 0xA7D0, 0xA7D1, 0xA7D3, 0xA7D3, 0xA7D5,
        0xA7D9, 0xA7F2, 0xA801, 0xA803, 0xA805, 0xA807, 0xA80A, 0xA80C, 0xA822, 0xA840, 0xA873,
        0xA882, 0xA8B3, 0xA8F2, 0xA8F7, 0xA8FB, 0xA8FB, 0xA8FD, 0xA8FE, 0xA90A, 0xA925, 0xA930,
        0xA946, 0xA960, 0xA97C, 0xA984, 0xA9B2, 0xA9CF, 0xA9CF, 0xA9E0, 0xA9E4, 0xA9E6, 0xA9EF,
        0xA9FA, 0xA9FE, 0xAA00, 0xAA28, 0xAA40, 0xAA42, 0xAA44, 0xAA4B, 0xAA60, 0xAA76, 0xAA7A,
        0xAA7A, 0xAA7E, 0xAAAF, 0xAAB1, 0xAAB1, 0xAAB5, 0xAAB6, 0xAAB9, 0xAABD, 0xAAC0, 0xAAC0,
        0xAAC2, 0xAAC2, 0xAADB, 0xAADD, 0xAAE0, 0xAAEA, 0xAAF2, 0xAAF4, 0xAB01, 0xAB06, 0xAB09,
        0xAB0E, 0xAB11, 0xAB16, 0xAB20, 0xAB26, 0xAB28, 0xAB2E, 0xAB30, 0xAB5A, 0xAB5C, 0xAB69,
        0xAB70, 0xABE2, 0xAC00, 0xD7A3, 0xD7B0, 0xD7C6, 0xD7CB, 0xD7FB, 0xF900, 0xFA6D, 0xFA70,
        0xFAD9, 0xFB00, 0xFB06, 0xFB13, 0xFB17, 0xFB1D, 0xFB1D, 0xFB1F, 0xFB28, 0xFB2A, 0xFB36,
        0xFB38, 0xFB3C, 0xFB3E, 0xFB3E, 0xFB40, 0xFB41, 0xFB43, 0xFB44, 0xFB46, 0xFBB1, 0xFBD3,
        0xFD3D, 0xFD50, 0xFD8F, 0xFD92, 0xFDC7, 0xFDF0, 0xFDFB, 0xFE70, 0xFE74, 0xFE76, 0xFEFC,
        0xFF21, 0xFF3A, 0xFF41, 0xFF5A, 0xFF66, 0xFFBE, 0xFFC2, 0xFFC7, 0xFFCA, 0xFFCF, 0xFFD2,
        0xFFD7, 0xFFDA, 0xFFDC, 0x10000, 0x1000B, 0x1000D, 0x10026, 0x10028, 0x1003A, 0x1003C,
        0x1003D, 0x1003F, 0x1004D, 0x10050, 0x1005D, 0x10080, 0x100FA, 0x10280, 0x1029C, 0x102A0,
        0x102D0, 0x10300, 0x1031F, 0x1032D, 0x10340, 0x10342, 0x10349, 0x10350, 0x10375, 0x10380,
        0x1039D, 0x103A0, 0x103C3, 0x103C8, 0x103CF, 0x10400, 0x1049D, 0x104B0, 0x104D3, 0x104D8,
        0x104FB, 0x10500, 0x10527, 0x10530, 0x10563, 0x10570, 0x1057A, 0x1057C, 0x1058A, 0x1058C,
        0x10592, 0x10594, 0x10595, 0x10597, 0x105A1, 0x105A3, 0x105B1, 0x105B3, 0x105B9, 0x105BB,
        0x105BC, 0x10600, 0x10736, 0x10740, 0x10755, 0x10760, 0x10767, 0x10780, 0x10785, 0x10787,
        0x107B0, 0x107B2, 0x107BA, 0x10800, 0x10805, 0x10808, 0x10808, 0x1080A, 0x10835, 0x10837,
        0x10838, 0x1083C, 0x1083C, 0x1083F, 0x10855, 0x10860, 0x10876, 0x10880, 0x1089E, 0x108E0,
        0x108F2, 0x108F4, 0x108F5, 0x10900, 0x10915, 0x10920, 0x10939, 0x10980, 0x109B7, 0x109BE,
        0x109BF, 0x10A00, 0x10A00, 0x10A10, 0x10A13, 0x10A15, 0x10A17, 0x10A19, 0x10A35, 0x10A60,
        0x10A7C, 0x10A80, 0x10A9C, 0x10AC0, 0x10AC7, 0x10AC9, 0x10AE4, 0x10B00, 0x10B35, 0x10B40,
        0x10B55, 0x10B60, 0x10B72, 0x10B80, 0x10B91, 0x10C00, 0x10C48, 0x10C80, 0x10CB2, 0x10CC0,
        0x10CF2, 0x10D00, 0x10D23, 0x10E80, 0x10EA9, 0x10EB0, 0x10EB1, 0x10F00, 0x10F1C, 0x10F27,
        0x10F27, 0x10F30, 0x10F45, 0x10F70, 0x10F81, 0x10FB0, 0x10FC4, 0x10FE0, 0x10FF6, 0x11003,
        0x11037, 0x11071, 0x11072, 0x11075, 0x11075, 0x11083, 0x110AF, 0x110D0, 0x110E8, 0x11103,
        0x11126, 0x11144, 0x11144, 0x11147, 0x11147, 0x11150, 0x11172, 0x11176, 0x11176, 0x11183,
        0x111B2, 0x111C1, 0x111C4, 0x111DA, 0x111DA, 0x111DC, 0x111DC, 0x11200, 0x11211, 0x11213,
        0x1122B, 0x1123F, 0x11240, 0x11280, 0x11286, 0x11288, 0x11288, 0x1128A, 0x1128D, 0x1128F,
        0x1129D, 0x1129F, 0x112A8, 0x112B0, 0x112DE, 0x11305, 0x1130C, 0x1130F, 0x11310, 0x11313,
        0x11328, 0x1132A, 0x11330, 0x11332, 0x11333, 0x11335, 0x11339, 0x1133D, 0x1133D, 0x11350,
        0x11350, 0x1135D, 0x11361, 0x11400, 0x11434, 0x11447, 0x1144A, 0x1145F, 0x11461, 0x11480,
        0x114AF, 0x114C4, 0x114C5, 0x114C7, 0x114C7, 0x11580, 0x115AE, 0x115D8, 0x115DB, 0x11600,
        0x1162F, 0x11644, 0x11644, 0x11680, 0x116AA, 0x116B8, 0x116B8, 0x11700, 0x1171A, 0x11740,
        0x11746, 0x11800, 0x1182B, 0x118A0, 0x118DF, 0x118FF, 0x11906, 0x11909, 0x11909, 0x1190C,
        0x11913, 0x11915, 0x11916, 0x11918, 0x1192F, 0x1193F, 0x1193F, 0x11941, 0x11941, 0x119A0,
        0x119A7, 0x119AA, 0x119D0, 0x119E1, 0x119E1, 0x119E3, 0x119E3, 0x11A00, 0x11A00, 0x11A0B,
        0x11A32, 0x11A3A, 0x11A3A, 0x11A50, 0x11A50, 0x11A5C, 0x11A89, 0x11A9D, 0x11A9D, 0x11AB0,
        0x11AF8, 0x11C00, 0x11C08, 0x11C0A, 0x11C2E, 0x11C40, 0x11C40, 0x11C72, 0x11C8F, 0x11D00,
        0x11D06, 0x11D08, 0x11D09, 0x11D0B, 0x11D30, 0x11D46, 0x11D46, 0x11D60, 0x11D65, 0x11D67,
        0x11D68, 0x11D6A, 0x11D89, 0x11D98, 0x11D98, 0x11EE0, 0x11EF2, 0x11F02, 0x11F02, 0x11F04,
        0x11F10, 0x11F12, 0x11F33, 0x11FB0, 0x11FB0, 0x12000, 0x12399, 0x12480, 0x12543, 0x12F90,
        0x12FF0, 0x13000, 0x1342F, 0x13441, 0x13446, 0x14400, 0x14646, 0x16800, 0x16A38, 0x16A40,
        0x16A5E, 0x16A70, 0x16ABE, 0x16AD0, 0x16AED, 0x16B00, 0x16B2F, 0x16B40, 0x16B43, 0x16B63,
        0x16B77, 0x16B7D, 0x16B8F, 0x16E40, 0x16E7F, 0x16F00, 0x16F4A, 0x16F50, 0x16F50, 0x16F93,
        0x16F9F, 0x16FE0, 0x16FE1, 0x16FE3, 0x16FE3, 0x17000, 0x187F7, 0x18800, 0x18CD5, 0x18D00,
        0x18D08, 0x1AFF0, 0x1AFF3, 0x1AFF5, 0x1AFFB, 0x1AFFD, 0x1AFFE, 0x1B000, 0x1B122, 0x1B132,
        0x1B132, 0x1B150, 0x1B152, 0x1B155, 0x1B155, 0x1B164, 0x1B167, 0x1B170, 0x1B2FB, 0x1BC00,
        0x1BC6A, 0x1BC70, 0x1BC7C, 0x1BC80, 0x1BC88, 0x1BC90, 0x1BC99, 0x1D400, 0x1D454, 0x1D456,
        0x1D49C, 0x1D49E, 0x1D49F, 0x1D4A2, 0x1D4A2, 0x1D4A5, 0x1D4A6, 0x1D4A9, 0x1D4AC, 0x1D4AE,
        0x1D4B9, 0x1D4BB, 0x1D4BB, 0x1D4BD, 0x1D4C3, 0x1D4C5, 0x1D505, 0x1D507, 0x1D50A, 0x1D50D,
        0x1D514, 0x1D516, 0x1D51C, 0x1D51E, 0x1D539, 0x1D53B, 0x1D53E, 0x1D540, 0x1D544, 0x1D546,
        0x1D546, 0x1D54A, 0x1D550, 0x1D552, 0x1D6A5, 0x1D6A8, 0x1D6C0, 0x1D6C2, 0x1D6DA, 0x1D6DC,
        0x1D6FA, 0x1D6FC, 0x1D714, 0x1D716, 0x1D734, 0x1D736, 0x1D74E, 0x1D750, 0x1D76E, 0x1D770,
        0x1D788, 0x1D78A, 0x1D7A8, 0x1D7AA, 0x1D7C2, 0x1D7C4, 0x1D7CB, 0x1DF00, 0x1DF1E, 0x1DF25,
        0x1DF2A, 0x1E030, 0x1E06D, 0x1E100, 0x1E12C, 0x1E137, 0x1E13D, 0x1E14E, 0x1E14E, 0x1E290,
        0x1E2AD, 0x1E2C0, 0x1E2EB, 0x1E4D0, 0x1E4EB, 0x1E7E0, 0x1E7E6, 0x1E7E8, 0x1E7EB, 0x1E7ED,
        0x1E7EE, 0x1E7F0, 0x1E7FE, 0x1E800, 0x1E8C4, 0x1E900, 0x1E943, 0x1E94B, 0x1E94B, 0x1EE00,
        0x1EE03, 0x1EE05, 0x1EE1F, 0x1EE21, 0x1EE22, 0x1EE24, 0x1EE24, 0x1EE27, 0x1EE27, 0x1EE29,
        0x1EE32, 0x1EE34, 0x1EE37, 0x1EE39, 0x1EE39, 0x1EE3B, 0x1EE3B, 0x1EE42, 0x1EE42, 0x1EE47,
        0x1EE47, 0x1EE49, 0x1EE49, 0x1EE4B, 0x1EE4B, 0x1EE4D, 0x1EE4F, 0x1EE51, 0x1EE52, 0x1EE54,
        0x1EE54, 0x1EE57, 0x1EE57, 0x1EE59, 0x1EE59, 0x1EE5B, 0x1EE5B, 0x1EE5D, 0x1EE5D, 0x1EE5F,
        0x1EE5F, 0x1EE61, 0x1EE62, 0x1EE64, 0x1EE64, 0x1EE67, 0x1EE6A, 0x1EE6C, 0x1EE72, 0x1EE74,
        0x1EE77, 0x1EE79, 0x1EE7C, 0x1EE7E, 0x1EE7E, 0x1EE80, 0x1EE89, 0x1EE8B, 0x1EE9B, 0x1EEA1,
        0x1EEA3, 0x1EEA5, 0x1EEA9, 0x1EEAB, 0x1EEBB, 0x20000, 0x2A6DF, 0x2A700, 0x2B739, 0x2B740,
        0x2B81D, 0x2B820, 0x2CEA1, 0x2CEB0, 0x2EBE0, 0x2F800, 0x2FA1D, 0x30000, 0x3134A, 0x31350,
        0x323AF,
    ];

    /// Inclusive `start, end` pairs of non-ASCII code points in category Nd.
    pub(super) const DIGIT: &[u32] = &[
        0x660, 0x669, 0x6F0, 0x6F9, 0x7C0, 0x7C9, 0x966, 0x96F, 0x9E6, 0x9EF, 0xA66, 0xA6F, 0xAE6,
        0xAEF, 0xB66, 0xB6F, 0xBE6, 0xBEF, 0xC66, 0xC6F, 0xCE6, 0xCEF, 0xD66, 0xD6F, 0xDE6, 0xDEF,
        0xE50, 0xE59, 0xED0, 0xED9, 0xF20, 0xF29, 0x1040, 0x1049, 0x1090, 0x1099, 0x17E0, 0x17E9,
        0x1810, 0x1819, 0x1946, 0x194F, 0x19D0, 0x19D9, 0x1A80, 0x1A89, 0x1A90, 0x1A99, 0x1B50,
        0x1B59, 0x1BB0, 0x1BB9, 0x1C40, 0x1C49, 0x1C50, 0x1C59, 0xA620, 0xA629, 0xA8D0, 0xA8D9,
        0xA900, 0xA909, 0xA9D0, 0xA9D9, 0xA9F0, 0xA9F9, 0xAA50, 0xAA59, 0xABF0, 0xABF9, 0xFF10,
        0xFF19, 0x104A0, 0x104A9, 0x10D30, 0x10D39, 0x11066, 0x1106F, 0x110F0, 0x110F9, 0x11136,
        0x1113F, 0x111D0, 0x111D9, 0x112F0, 0x112F9, 0x11450, 0x11459, 0x114D0, 0x114D9, 0x11650,
        0x11659, 0x116C0, 0x116C9, 0x11730, 0x11739, 0x118E0, 0x118E9, 0x11950, 0x11959, 0x11C50,
        0x11C59, 0x11D50, 0x11D59, 0x11DA0, 0x11DA9, 0x11F50, 0x11F59, 0x16A60, 0x16A69, 0x16AC0,
        0x16AC9, 0x16B50, 0x16B59, 0x1D7CE, 0x1D7FF, 0x1E140, 0x1E149, 0x1E2F0, 0x1E2F9, 0x1E4F0,
        0x1E4F9, 0x1E950, 0x1E959, 0x1FBF0, 0x1FBF9,
    ];
}
