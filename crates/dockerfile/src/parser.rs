//! Line-oriented Dockerfile parser after BuildKit's `frontend/dockerfile/parser`.
//!
//! This reproduces the *behaviour* of BuildKit's parser (no Go code was copied):
//!
//! * The input is read line by line like Go's `bufio.Scanner`: a physical line longer than
//!   65535 bytes stops reading, and the parse then fails with BuildKit's
//!   "dockerfile line greater than max allowed size of 65535" (unless an earlier error,
//!   such as an unterminated heredoc or "file with no instructions", comes first).
//! * A UTF-8 BOM on line 1 is dropped. The first line of an instruction loses its leading
//!   whitespace; a line whose first non-blank character is `#` is a comment.
//! * Parser directives (`# syntax=`, `# escape=`, `# check=`, keys case-insensitive) are
//!   only recognised before the first line that is not one (a blank line, an ordinary
//!   comment, an unknown key or an instruction ends them). A repeated directive and an
//!   escape value other than `\` or `` ` `` are errors.
//! * The escape token as the last non-blank (space/tab) character of a line joins the next
//!   line, unless it is itself preceded by the escape token. Continuation lines keep their
//!   leading whitespace; comment lines inside a continuation are skipped and blank ones are
//!   skipped with a warning. A continuation that runs into the end of the file just ends.
//! * Each logical line is split into keyword, leading `--flags` and the rest, and the rest
//!   is turned into arguments per instruction (see `conformance/README.md` §2.2).
//! * `RUN`, `COPY` and `ADD` (also as an `ONBUILD` trigger) that are not in JSON form and
//!   contain `<<` get heredocs: the bodies are read from the lines that follow, in order.
//!   A heredoc whose terminator never comes is an error ("unterminated heredoc").
//!
//! Deliberate differences from Go (all on inputs BuildKit rejects later or mangles):
//! leading flags and HEALTHCHECK's type word are split on ASCII whitespace per *character*
//! (Go works per byte and can cut a UTF-8 sequence), and `ONBUILD` chains deeper than
//! [`MAX_ONBUILD_DEPTH`] are rejected here (BuildKit's instruction layer rejects any
//! `ONBUILD ONBUILD`).

use crate::ast::{Directives, Dockerfile, Heredoc, Node, ParseError, Span, Warning};
use crate::dump::go_quote;

/// Longest physical line Go's `bufio.Scanner` (default buffer) lets BuildKit read.
const MAX_LINE_BYTES: usize = 65535;

/// Deepest `ONBUILD ONBUILD ...` chain accepted (guards the recursion).
pub(crate) const MAX_ONBUILD_DEPTH: usize = 64;

/// Deepest `${...${...}}` nesting the heredoc word scanner follows.
const MAX_LEX_DEPTH: usize = 128;

/// Go's `encoding/json` nesting limit.
const MAX_JSON_DEPTH: usize = 10000;

/// Instructions BuildKit's parser knows (lower case). Others are kept without arguments.
pub const INSTRUCTIONS: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// True for a keyword (lower case) that BuildKit's parser dispatches.
pub(crate) fn is_known_instruction(keyword: &str) -> bool {
    INSTRUCTIONS.contains(&keyword)
}

/// Parse a Dockerfile. A leading UTF-8 BOM is ignored.
pub fn parse(src: &str) -> Result<Dockerfile, ParseError> {
    let mut sc = Scanner::new(src);
    let mut dir = DirectiveState::default();
    let mut directives = Directives::default();
    let mut nodes: Vec<Node> = Vec::new();
    let mut warnings = Vec::new();
    let mut current_line = 0usize;

    while let Some(raw) = sc.next_line() {
        let raw = if current_line == 0 {
            raw.strip_prefix('\u{feff}').unwrap_or(raw)
        } else {
            raw
        };
        let token = trim_newline(raw).trim_start();
        dir.check(token, raw, current_line + 1, &mut directives)?;
        let token = if is_comment(token) {
            &token[token.len()..]
        } else {
            token
        };
        current_line += 1;
        let start_line = current_line;
        let esc = directives.escape;

        let (first, mut end_of_line) = trim_continuation(token, esc);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut line = String::from(first);
        let mut segs = vec![Segment {
            logical: 0,
            line: start_line,
            physical: offset_in(raw, token),
        }];

        let mut has_empty_continuation = false;
        while !end_of_line {
            let Some(raw) = sc.next_line() else { break };
            let token = trim_newline(raw);
            dir.check(token, raw, current_line + 1, &mut directives)?;
            current_line += 1;
            if is_comment(raw) {
                continue;
            }
            if token.trim_start().is_empty() {
                has_empty_continuation = true;
                continue;
            }
            let (piece, eol) = trim_continuation(token, esc);
            segs.push(Segment {
                logical: line.len(),
                line: current_line,
                physical: 0,
            });
            line.push_str(piece);
            end_of_line = eol;
        }

        if has_empty_continuation {
            warnings.push(Warning {
                line: current_line,
                message: format!("Empty continuation line found in: {line}"),
            });
        }

        let start_col = locate(&sc, &segs, 0).1;
        let mut node = new_node(&line, &line, esc, 0).map_err(|e| {
            let (line, col) = locate(&sc, &segs, e.at);
            ParseError {
                line,
                col,
                message: e.message,
                hint: e.hint,
            }
        })?;

        if can_contain_heredoc(&node) && line.contains("<<") {
            let docs = heredocs_from_line(&line).map_err(|message| ParseError {
                line: start_line,
                col: start_col,
                message,
                hint: None,
            })?;
            for mut doc in docs {
                let mut terminated = false;
                let mut content = String::new();
                while let Some(raw) = sc.next_line() {
                    current_line += 1;
                    let mut candidate = trim_newline(raw);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(raw);
                }
                if !terminated {
                    return Err(ParseError {
                        line: start_line,
                        col: start_col,
                        message: "unterminated heredoc".into(),
                        hint: Some(format!(
                            "end the heredoc with a line containing only {}",
                            doc.name
                        )),
                    });
                }
                doc.content = if doc.chomp {
                    chomp_leading_tabs(&content)
                } else {
                    content
                };
                node.heredocs.push(doc);
            }
        }

        let span = Span {
            start: start_line,
            end: current_line,
        };
        let mut n = Some(&mut node);
        while let Some(cur) = n {
            cur.span = span;
            n = cur.next.as_deref_mut();
        }
        nodes.push(node);
    }

    let (Some(first), Some(last)) = (nodes.first(), nodes.last()) else {
        return Err(ParseError {
            line: current_line.max(1),
            col: 1,
            message: "file with no instructions".into(),
            hint: Some("a Dockerfile needs at least one instruction, e.g. FROM".into()),
        });
    };
    if let Some(line) = sc.too_long {
        return Err(ParseError {
            line,
            col: 1,
            message: format!("dockerfile line greater than max allowed size of {MAX_LINE_BYTES}"),
            hint: Some("split the line with line continuations".into()),
        });
    }
    let span = Span {
        start: first.span.start,
        end: last.span.end,
    };

    if directives.syntax.is_none() {
        directives.syntax = syntax_after_shebang(&sc);
    }

    Ok(Dockerfile {
        directives,
        nodes,
        warnings,
        span,
    })
}

// ---------------------------------------------------------------------------------------
// Physical lines
// ---------------------------------------------------------------------------------------

/// Physical lines with their line endings, read like Go's `bufio.Scanner`.
struct Scanner<'a> {
    lines: Vec<&'a str>,
    next: usize,
    /// 1-based number of a line that was too long; reading stopped before it.
    too_long: Option<usize>,
}

impl<'a> Scanner<'a> {
    fn new(src: &'a str) -> Self {
        Scanner {
            lines: src.split_inclusive('\n').collect(),
            next: 0,
            too_long: None,
        }
    }

    fn next_line(&mut self) -> Option<&'a str> {
        if self.too_long.is_some() {
            return None;
        }
        let line = *self.lines.get(self.next)?;
        if line.strip_suffix('\n').unwrap_or(line).len() > MAX_LINE_BYTES {
            self.too_long = Some(self.next + 1);
            return None;
        }
        self.next += 1;
        Some(line)
    }

    /// The text of 1-based physical line `n` (BOM removed from line 1).
    fn text(&self, n: usize) -> &'a str {
        let line = n
            .checked_sub(1)
            .and_then(|i| self.lines.get(i))
            .copied()
            .unwrap_or("");
        if n == 1 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        }
    }
}

/// Where a piece of a logical line came from.
struct Segment {
    /// Byte offset of the piece in the logical line.
    logical: usize,
    /// 1-based physical line.
    line: usize,
    /// Byte offset of the piece in that physical line.
    physical: usize,
}

/// Physical (line, 1-based char column) of byte `at` of a logical line.
fn locate(sc: &Scanner, segs: &[Segment], at: usize) -> (usize, usize) {
    let Some(seg) = segs.iter().rev().find(|s| s.logical <= at).or(segs.first()) else {
        return (1, 1);
    };
    let text = sc.text(seg.line);
    let byte = seg.physical + at.saturating_sub(seg.logical);
    let col = text.get(..byte).map_or(1, |p| p.chars().count() + 1);
    (seg.line, col)
}

/// Byte offset of `inner` (a sub-slice) in `outer`; 0 if it is not one.
fn offset_in(outer: &str, inner: &str) -> usize {
    (inner.as_ptr() as usize)
        .checked_sub(outer.as_ptr() as usize)
        .filter(|&o| o + inner.len() <= outer.len())
        .unwrap_or(0)
}

/// Go `bytes.TrimRight(line, "\r\n")`.
fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Remove a line-continuation escape token (followed by optional spaces/tabs) at the end of
/// `line`. Returns the remaining text and whether the logical line ends here.
fn trim_continuation(line: &str, esc: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    if let Some(before) = trimmed.strip_suffix(esc) {
        if !before.ends_with(esc) {
            return (before, false);
        }
    }
    (line, true)
}

/// `[\t\v\f\r ]`: the whitespace BuildKit's `reWhitespace` splits on.
fn is_sep(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{0B}' | '\u{0C}' | '\r')
}

/// Go's byte-wise `unicode.IsSpace(rune(b))` restricted to ASCII.
fn is_ascii_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r')
}

/// Split at the first run of [`is_sep`] (Go `reWhitespace.Split(s, 2)`).
fn split2(s: &str) -> (&str, Option<&str>) {
    match s.find(is_sep) {
        Some(i) => (&s[..i], Some(s[i..].trim_start_matches(is_sep))),
        None => (s, None),
    }
}

/// Go's `strings.ToLower` (per-rune simple mapping).
fn go_lower(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\u{130}' {
            out.push('i');
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// Remove leading tabs from every line (Go `(?m)^\t+`).
fn chomp_leading_tabs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for line in s.split_inclusive('\n') {
        out.push_str(line.trim_start_matches('\t'));
    }
    out
}

// ---------------------------------------------------------------------------------------
// Directives
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct DirectiveState {
    done: bool,
    seen: Vec<String>,
}

impl DirectiveState {
    /// Look at one line while directives are still possible. `raw` is the physical line
    /// `token` was cut from (for the column of errors).
    fn check(
        &mut self,
        token: &str,
        raw: &str,
        line_no: usize,
        dirs: &mut Directives,
    ) -> Result<(), ParseError> {
        if self.done {
            return Ok(());
        }
        let Some((key, value)) = match_directive(token, "#") else {
            self.done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(());
        }
        let col_of = |s: &str| {
            raw.get(..offset_in(raw, s))
                .map_or(1, |p| p.chars().count() + 1)
        };
        if self.seen.contains(&key) {
            return Err(ParseError {
                line: line_no,
                col: col_of(token),
                message: format!("only one {key} parser directive can be used"),
                hint: None,
            });
        }
        self.seen.push(key.clone());
        match key.as_str() {
            "escape" => match value {
                "\\" => dirs.escape = '\\',
                "`" => dirs.escape = '`',
                _ => {
                    return Err(ParseError {
                        line: line_no,
                        col: col_of(value),
                        message: format!("invalid escape token '{value}' does not match ` or \\"),
                        hint: Some("use `# escape=\\` or `# escape=``".into()),
                    })
                }
            },
            "syntax" => dirs.syntax = Some((value.to_string(), line_no)),
            _ => dirs.check = Some((value.to_string(), line_no)),
        }
        Ok(())
    }
}

/// Go RE2 `\s`.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{0C}' | '\r' | ' ')
}

/// `^<comment>\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` → (key, value).
fn match_directive<'a>(line: &'a str, comment: &str) -> Option<(&'a str, &'a str)> {
    let s = line.strip_prefix(comment)?.trim_start_matches(is_re_space);
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let key_end = s
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(s.len());
    let (key, s) = s.split_at(key_end);
    let s = s.trim_start_matches(is_re_space).strip_prefix('=')?;
    if s.is_empty() {
        return None;
    }
    let lead = s.trim_start_matches(is_re_space);
    let value = if lead.is_empty() {
        // Only whitespace after `=`: `(.+?)` still takes the last character.
        let last = s.char_indices().last().map_or(0, |(i, _)| i);
        &s[last..]
    } else {
        lead.trim_end_matches(is_re_space)
    };
    Some((key, value))
}

/// BuildKit's syntax detection skips a `#!` first line; look for `# syntax=` after it.
fn syntax_after_shebang(sc: &Scanner) -> Option<(String, usize)> {
    if !sc.text(1).starts_with("#!") {
        return None;
    }
    let mut n = 2;
    while n <= sc.lines.len() {
        let text = sc.text(n).trim_end_matches('\n');
        let text = text.strip_suffix('\r').unwrap_or(text);
        let (key, value) = match_directive(text, "#")?;
        let key = key.to_ascii_lowercase();
        if key == "syntax" {
            return Some((value.to_string(), n));
        }
        if !matches!(key.as_str(), "escape" | "check") {
            return None;
        }
        n += 1;
    }
    None
}

// ---------------------------------------------------------------------------------------
// Instructions
// ---------------------------------------------------------------------------------------

/// An error while turning a logical line into a node; `at` is a byte offset in the line.
struct NodeError {
    message: String,
    hint: Option<String>,
    at: usize,
}

/// Build the node for `text` (a sub-slice of the logical line `base`).
fn new_node(text: &str, base: &str, esc: char, depth: usize) -> Result<Node, NodeError> {
    let (cmd, flags, rest) = split_command(text);
    let keyword = go_lower(cmd);
    let mut node = Node {
        keyword,
        flags,
        args: Vec::new(),
        json: false,
        rest: rest.to_string(),
        original: text.to_string(),
        next: None,
        heredocs: Vec::new(),
        span: Span::default(),
    };
    let at = |s: &str| offset_in(base, s);
    match node.keyword.as_str() {
        "add" | "copy" | "volume" => match parse_json(rest) {
            Json::Strings(v) => {
                node.args = v;
                node.json = true;
            }
            Json::NotStrings(off) => return Err(not_strings(at(rest) + off)),
            Json::Invalid => node.args = split_ws(rest),
        },
        "cmd" | "entrypoint" | "run" | "shell" => {
            let (args, json) = maybe_json(rest).map_err(|off| not_strings(at(rest) + off))?;
            node.args = args;
            node.json = json;
        }
        "env" | "label" => {
            let key = if node.keyword == "env" {
                "ENV"
            } else {
                "LABEL"
            };
            node.args = name_val(rest, key, esc).map_err(|(message, hint, off)| NodeError {
                message,
                hint,
                at: at(rest) + off,
            })?;
        }
        "arg" => node.args = parse_words(rest, esc).into_iter().map(|w| w.0).collect(),
        "expose" | "from" => node.args = split_ws(rest),
        "maintainer" | "stopsignal" | "user" | "workdir" if !rest.is_empty() => {
            node.args = vec![rest.to_string()];
        }
        "healthcheck" => {
            let sep = rest.find(|c: char| is_ascii_space(c)).unwrap_or(rest.len());
            if sep > 0 {
                let typ = &rest[..sep];
                let cmd = rest[sep..].trim_start_matches(is_ascii_space);
                let (args, json) = maybe_json(cmd).map_err(|off| not_strings(at(cmd) + off))?;
                node.args = std::iter::once(typ.to_string()).chain(args).collect();
                node.json = json;
            }
        }
        "onbuild" if !rest.is_empty() => {
            if depth >= MAX_ONBUILD_DEPTH {
                return Err(NodeError {
                    message: format!("ONBUILD nested more than {MAX_ONBUILD_DEPTH} levels"),
                    hint: Some("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
                    at: at(rest),
                });
            }
            node.next = Some(Box::new(new_node(rest, base, esc, depth + 1)?));
        }
        _ => {}
    }
    Ok(node)
}

fn not_strings(at: usize) -> NodeError {
    NodeError {
        message: "when using JSON array syntax, arrays must be comprised of strings only".into(),
        hint: Some("quote every element, e.g. [\"echo\", \"hello\"]".into()),
        at,
    }
}

/// Keyword, leading `--flags` and the trimmed rest of a logical line.
fn split_command(line: &str) -> (&str, Vec<String>, &str) {
    let (cmd, args) = split2(line.trim());
    match args {
        Some(args) => {
            let (rest, flags) = extract_flags(args);
            (cmd, flags, rest.trim())
        }
        None => (cmd, Vec::new(), &cmd[cmd.len()..]),
    }
}

#[derive(PartialEq, Clone, Copy)]
enum Phase {
    Spaces,
    Word,
    Quote,
}

/// Leading words that start with `--` (quotes removed, `\` escapes the next character;
/// a lone `--` ends the flags). Returns the text after the flags and the flags.
fn extract_flags(line: &str) -> (&str, Vec<String>) {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut k = 0;
    while k < n {
        let (pos, ch) = chars[k];
        if phase == Phase::Spaces {
            if is_ascii_space(ch) {
                k += 1;
                continue;
            }
            let next_dash = chars.get(k + 1).is_some_and(|&(_, c)| c == '-');
            if ch != '-' || !next_dash {
                return (&line[pos..], words);
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if is_ascii_space(ch) {
                phase = Phase::Spaces;
                if word == "--" {
                    return (&line[pos..], words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                k += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                k += 1;
                continue;
            }
            let mut c = ch;
            if ch == '\\' {
                if k + 1 == n {
                    k += 1;
                    continue;
                }
                k += 1;
                c = chars[k].1;
            }
            word.push(c);
            k += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
            k += 1;
            continue;
        }
        let mut c = ch;
        if ch == '\\' {
            if k + 1 == n {
                phase = Phase::Word;
                k += 1;
                continue;
            }
            k += 1;
            c = chars[k].1;
        }
        word.push(c);
        k += 1;
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    (&line[line.len()..], words)
}

/// Words split on whitespace outside quotes; quotes and escapes are kept. Each word comes
/// with its byte offset in `rest`.
fn parse_words(rest: &str, esc: char) -> Vec<(String, usize)> {
    let chars: Vec<(usize, char)> = rest.char_indices().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut start = 0;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut k = 0;
    while k < n {
        let (pos, ch) = chars[k];
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                k += 1;
                continue;
            }
            phase = Phase::Word;
            start = pos;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push((std::mem::take(&mut word), start));
                }
                blank_ok = false;
                k += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            let mut c = ch;
            if ch == esc {
                if k + 1 == n {
                    k += 1;
                    continue;
                }
                word.push(ch);
                k += 1;
                c = chars[k].1;
            }
            word.push(c);
            k += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
        }
        let mut c = ch;
        if ch == esc && quote != '\'' {
            if k + 1 == n {
                phase = Phase::Word;
                k += 1;
                continue;
            }
            word.push(ch);
            k += 1;
            c = chars[k].1;
        }
        word.push(c);
        k += 1;
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        words.push((word, start));
    }
    words
}

/// ENV / LABEL: `key value sep` triples. Error: (message, hint, byte offset in `rest`).
fn name_val(
    rest: &str,
    key: &str,
    esc: char,
) -> Result<Vec<String>, (String, Option<String>, usize)> {
    let words = parse_words(rest, esc);
    let Some((first, _)) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        return match split2(rest) {
            (k, Some(v)) => Ok(vec![k.to_string(), v.to_string(), String::new()]),
            (_, None) => Err((
                format!("{key} must have two arguments"),
                Some(format!("use `{key} name=value` (or `{key} name value`)")),
                0,
            )),
        };
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for (word, off) in words {
        let Some((k, v)) = word.split_once('=') else {
            return Err((
                format!(
                    "Syntax error - can't find = in {}. Must be of the form: name=value",
                    go_quote(&word)
                ),
                None,
                off,
            ));
        };
        out.push(k.to_string());
        out.push(v.to_string());
        out.push("=".to_string());
    }
    Ok(out)
}

/// Go `reWhitespace.Split(rest, -1)` for a trimmed, possibly empty `rest`.
fn split_ws(rest: &str) -> Vec<String> {
    rest.split(is_sep)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// RUN/CMD/ENTRYPOINT/SHELL: a JSON array of strings, or the whole text as one argument.
/// `Err(offset)` for a JSON array with a non-string element.
fn maybe_json(rest: &str) -> Result<(Vec<String>, bool), usize> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_json(rest) {
        Json::Strings(v) => Ok((v, true)),
        Json::NotStrings(off) => Err(off),
        Json::Invalid => Ok((vec![rest.to_string()], false)),
    }
}

fn can_contain_heredoc(node: &Node) -> bool {
    let node = match (&node.next, node.keyword.as_str()) {
        (Some(next), "onbuild") => next,
        _ => node,
    };
    matches!(node.keyword.as_str(), "run" | "copy" | "add") && !node.json
}

// ---------------------------------------------------------------------------------------
// JSON (behaves like Go's encoding/json.Unmarshal into []any)
// ---------------------------------------------------------------------------------------

enum Json {
    Strings(Vec<String>),
    /// Valid array with a non-string element at this byte offset of the input.
    NotStrings(usize),
    /// Not a (decodable) JSON array.
    Invalid,
}

fn parse_json(rest: &str) -> Json {
    let trimmed = rest.trim_start();
    let base = rest.len() - trimmed.len();
    if !trimmed.starts_with('[') {
        return Json::Invalid;
    }
    let mut p = JsonParser {
        s: trimmed,
        b: trimmed.as_bytes(),
        i: 0,
        overflow: false,
    };
    match p.top_array() {
        Some((v, bad)) if !p.overflow => match bad {
            Some(off) => Json::NotStrings(base + off),
            None => Json::Strings(v),
        },
        _ => Json::Invalid,
    }
}

struct JsonParser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    /// A number out of float64 range (Go then fails the whole decode).
    overflow: bool,
}

impl JsonParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// The whole input: strings of the top-level array and the offset of the first
    /// non-string element. `None` if the input is not valid JSON.
    fn top_array(&mut self) -> Option<(Vec<String>, Option<usize>)> {
        self.eat(b'[')?;
        let mut out = Vec::new();
        let mut bad = None;
        self.ws();
        if self.eat(b']').is_none() {
            loop {
                self.ws();
                let start = self.i;
                if self.peek()? == b'"' {
                    out.push(self.string()?);
                } else {
                    self.value(1)?;
                    bad.get_or_insert(start);
                }
                self.ws();
                match self.peek()? {
                    b',' => self.i += 1,
                    b']' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.ws();
        (self.i == self.b.len()).then_some((out, bad))
    }

    /// Skip any value (iteratively, so deep nesting cannot overflow the stack).
    fn value(&mut self, depth: usize) -> Option<()> {
        let mut stack: Vec<u8> = Vec::new();
        loop {
            // Expecting a value.
            self.ws();
            match self.peek()? {
                b'[' | b'{' => {
                    let open = self.peek()?;
                    self.i += 1;
                    stack.push(open);
                    if depth + stack.len() > MAX_JSON_DEPTH {
                        return None;
                    }
                    self.ws();
                    let close = if open == b'[' { b']' } else { b'}' };
                    if self.eat(close).is_some() {
                        stack.pop();
                    } else if open == b'{' {
                        self.key()?;
                        continue;
                    } else {
                        continue;
                    }
                }
                b'"' => {
                    self.skip_string()?;
                }
                b'-' | b'0'..=b'9' => self.number()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => return None,
            }
            // After a value: close containers or move to the next element.
            loop {
                let Some(&top) = stack.last() else {
                    return Some(());
                };
                self.ws();
                match (top, self.peek()?) {
                    (b'[', b']') | (b'{', b'}') => {
                        self.i += 1;
                        stack.pop();
                    }
                    (b'[', b',') => {
                        self.i += 1;
                        break;
                    }
                    (b'{', b',') => {
                        self.i += 1;
                        self.ws();
                        self.key()?;
                        break;
                    }
                    _ => return None,
                }
            }
        }
    }

    /// `"key" :` inside an object.
    fn key(&mut self) -> Option<()> {
        if self.peek()? != b'"' {
            return None;
        }
        self.skip_string()?;
        self.ws();
        self.eat(b':')
    }

    fn literal(&mut self, lit: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + lit.len())? == lit {
            self.i += lit.len();
            Some(())
        } else {
            None
        }
    }

    fn number(&mut self) -> Option<()> {
        let start = self.i;
        self.eat(b'-');
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.').is_some() {
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        let text = self.s.get(start..self.i)?;
        if text.parse::<f64>().map_or(true, |f| f.is_infinite()) {
            self.overflow = true;
        }
        Some(())
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
    }

    fn skip_string(&mut self) -> Option<()> {
        self.string().map(|_| ())
    }

    /// A string starting at `"`, decoded like Go (bad surrogates become U+FFFD).
    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out = String::new();
        loop {
            let run_start = self.i;
            while let Some(c) = self.peek() {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            out.push_str(self.s.get(run_start..self.i)?);
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.i += 1;
                    let c = self.peek()?;
                    self.i += 1;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{08}'),
                        b'f' => out.push('\u{0C}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let r = self.hex4()?;
                            out.push(self.unicode_escape(r));
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    /// Four hex digits after `\u`.
    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.i..self.i + 4)?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.i += 4;
        u32::from_str_radix(h, 16).ok()
    }

    /// Complete a `\uXXXX` escape whose value is `r` (may consume a low surrogate).
    fn unicode_escape(&mut self, r: u32) -> char {
        if (0xD800..0xE000).contains(&r) {
            if (0xD800..0xDC00).contains(&r) && self.b.get(self.i..self.i + 2) == Some(b"\\u") {
                let save = self.i;
                self.i += 2;
                match self.hex4() {
                    Some(r2) if (0xDC00..0xE000).contains(&r2) => {
                        let v = 0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00);
                        return char::from_u32(v).unwrap_or('\u{FFFD}');
                    }
                    _ => self.i = save,
                }
            }
            return '\u{FFFD}';
        }
        char::from_u32(r).unwrap_or('\u{FFFD}')
    }
}

// ---------------------------------------------------------------------------------------
// Heredocs
// ---------------------------------------------------------------------------------------

/// The heredocs a line starts: its shell words (quotes and escapes kept, variables left as
/// written) that look like `[n]<<[-]WORD`.
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    // BuildKit ignores lexing errors here: such a line simply has no heredocs.
    let words = Lexer::words(line, true, true).unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// `^(\d*)<<(-?)([^<]*)$` plus BuildKit's checks on the delimiter word.
fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, String> {
    let digits_end = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let (digits, s) = word.split_at(digits_end);
    let Some(s) = s.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let fail = |e: String| format!("failed to process {}: {e}", go_quote(rest));
    let words = Lexer::words(rest, false, false).map_err(fail)?;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw = Lexer::words(rest, true, false).map_err(fail)?;
    if raw.len() != 1 {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    let file_descriptor = if digits.is_empty() {
        0
    } else {
        digits.parse::<u32>().unwrap_or(u32::MAX)
    };
    Ok(Some(Heredoc {
        expand: quotes(&words[0]) == quotes(&raw[0]),
        name: words.into_iter().next().unwrap_or_default(),
        content: String::new(),
        chomp,
        file_descriptor,
    }))
}

/// The part of BuildKit's shell lexer that heredoc detection uses: word splitting with
/// the escape token `\`, no variables set and unset variables left as written.
struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    raw_quotes: bool,
    raw_escapes: bool,
    depth: usize,
    /// The word being built; shared by nested scans as in BuildKit.
    buf: String,
}

#[derive(Default)]
struct Words {
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, buf: &mut String, c: char) {
        if c.is_whitespace() {
            if self.in_word && !buf.is_empty() {
                self.words.push(std::mem::take(buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(buf, c);
        }
    }

    fn add_raw_char(&mut self, buf: &mut String, c: char) {
        buf.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, buf: &mut String, s: &str) {
        for c in s.chars() {
            self.add_char(buf, c);
        }
    }

    fn add_raw_string(&mut self, buf: &mut String, s: &str) {
        buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self, buf: &mut String) -> Vec<String> {
        if !buf.is_empty() {
            self.words.push(std::mem::take(buf));
        }
        self.words
    }
}

impl<'a> Lexer<'a> {
    fn words(src: &'a str, raw_quotes: bool, raw_escapes: bool) -> Result<Vec<String>, String> {
        let src = src.strip_prefix('\u{feff}').unwrap_or(src);
        let mut lx = Lexer {
            chars: src.chars().peekable(),
            raw_quotes,
            raw_escapes,
            depth: 0,
            buf: String::new(),
        };
        lx.stop_on(None, raw_escapes).map(|(_, w)| w)
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        if self.depth >= MAX_LEX_DEPTH {
            return Err("substitutions nested too deeply".into());
        }
        self.depth += 1;
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let r = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        self.depth -= 1;
        r
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        self.buf.clear();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.chars.next();
                let w = words.finish(&mut self.buf);
                return Ok((result, w));
            }
            match ch {
                '$' => {
                    let t = self.dollar()?;
                    result.push_str(&t);
                    words.add_string(&mut self.buf, &t);
                }
                '\'' | '"' => {
                    let t = if ch == '\'' {
                        self.single_quote()?
                    } else {
                        self.double_quote()?
                    };
                    result.push_str(&t);
                    words.add_raw_string(&mut self.buf, &t);
                }
                _ => {
                    self.chars.next();
                    if ch == '\\' {
                        if self.raw_escapes {
                            words.add_raw_char(&mut self.buf, ch);
                            result.push(ch);
                        }
                        let Some(c) = self.chars.next() else { break };
                        words.add_raw_char(&mut self.buf, c);
                        result.push(c);
                    } else {
                        words.add_char(&mut self.buf, ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        let w = words.finish(&mut self.buf);
        Ok((result, w))
    }

    fn single_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let open = self.chars.next();
        if self.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.chars.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let open = self.chars.next();
        if self.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.chars.next();
                    if self.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let t = self.dollar()?;
                    out.push_str(&t);
                }
                Some(_) => {
                    let Some(mut c) = self.chars.next() else {
                        continue;
                    };
                    if c == '\\' {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            None => continue,
                            Some('"' | '$' | '\\') => {
                                c = self.chars.next().unwrap_or(c);
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// `$...` with no variables set: the text as written (or an error).
    fn dollar(&mut self) -> Result<String, String> {
        self.chars.next();
        if self.peek() != Some('{') {
            let name = self.name();
            return Ok(format!("${name}"));
        }
        self.chars.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.name();
        let missing_brace = |lx: &mut Self, e: String| {
            if lx.peek().is_none() {
                "syntax error: missing '}'".to_string()
            } else {
                e
            }
        };
        match self.chars.next() {
            Some('}') => Ok(format!("${{{name}}}")),
            Some(c @ (':' | '+' | '-' | '?' | '#' | '%')) => {
                let mut chs = c.to_string();
                let mut m = c;
                if c == ':' {
                    m = self.chars.next().unwrap_or('\u{FFFD}');
                    chs.push(m);
                }
                let raw = m == '#' || m == '%';
                if c == ':' && raw {
                    return Err(format!("unsupported modifier ({chs}) in substitution"));
                }
                let (word, _) = match self.stop_on(Some('}'), raw) {
                    Ok(r) => r,
                    Err(e) => return Err(missing_brace(self, e)),
                };
                Ok(format!("${{{name}{chs}{word}}}"))
            }
            Some('/') => {
                if self.peek() == Some('/') {
                    self.chars.next();
                }
                let (pattern, _) = match self.stop_on(Some('/'), true) {
                    Ok(r) => r,
                    Err(e) => {
                        return Err(if self.peek().is_none() {
                            "syntax error: missing '/' in ${}".to_string()
                        } else {
                            e
                        })
                    }
                };
                let (replacement, _) = match self.stop_on(Some('}'), true) {
                    Ok(r) => r,
                    Err(e) => return Err(missing_brace(self, e)),
                };
                Ok(format!("${{{name}/{pattern}/{replacement}}}"))
            }
            other => Err(format!(
                "unsupported modifier ({}) in substitution",
                other.unwrap_or('\u{FFFD}')
            )),
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_numeric() {
                while let Some(d) = self.peek().filter(|d| d.is_numeric()) {
                    self.chars.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.chars.next();
                name.push(c);
                return name;
            }
            if !c.is_alphanumeric() && c != '_' {
                break;
            }
            self.chars.next();
            name.push(c);
        }
        name
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::dump;

    fn p(src: &str) -> Dockerfile {
        parse(src).unwrap_or_else(|e| panic!("parse failed: {e:?}\n{src}"))
    }

    fn err(src: &str) -> ParseError {
        match parse(src) {
            Ok(df) => panic!("expected an error, got {}", dump(&df)),
            Err(e) => e,
        }
    }

    fn spans(df: &Dockerfile) -> Vec<(usize, usize)> {
        df.nodes
            .iter()
            .map(|n| (n.span.start, n.span.end))
            .collect()
    }

    #[test]
    fn heredoc_basic() {
        let df = p("FROM a\nRUN <<EOF\necho hi\n  echo there\nEOF\nRUN true\n");
        assert_eq!(spans(&df), vec![(1, 1), (2, 5), (6, 6)]);
        let run = &df.nodes[1];
        assert_eq!(run.args, vec!["<<EOF"]);
        assert_eq!(run.rest, "<<EOF");
        assert_eq!(run.heredocs.len(), 1);
        let h = &run.heredocs[0];
        assert_eq!(h.name, "EOF");
        assert_eq!(h.content, "echo hi\n  echo there\n");
        assert!(h.expand);
        assert!(!h.chomp);
        assert_eq!(h.file_descriptor, 0);
        assert_eq!(dump(&df), "(from \"a\")\n(run \"<<EOF\")\n(run \"true\")");
        assert_eq!(df.span, Span { start: 1, end: 6 });
    }

    #[test]
    fn heredoc_chomp_and_quotes() {
        let df = p("FROM a\nRUN <<-EOF\n\techo a\n\t\techo b\n\tEOF\n");
        let h = &df.nodes[1].heredocs[0];
        assert!(h.chomp);
        assert_eq!(h.content, "echo a\necho b\n");
        assert_eq!(df.nodes[1].span, Span { start: 2, end: 5 });

        for src in [
            "FROM a\nRUN <<'EOF'\n$HOME\nEOF\n",
            "FROM a\nRUN <<\"EOF\"\n$HOME\nEOF\n",
        ] {
            let df = p(src);
            let h = &df.nodes[1].heredocs[0];
            assert_eq!(h.name, "EOF");
            assert!(!h.expand, "{src}");
            assert_eq!(h.content, "$HOME\n");
        }
        // Without `-` a tab-indented terminator does not end the heredoc.
        let e = err("FROM a\nRUN <<EOF\n\tEOF\n");
        assert_eq!(e.message, "unterminated heredoc");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn heredoc_several_and_copy() {
        let df = p("FROM a\nCOPY <<X <<Y /dest\nY\nX\nX\nY\nRUN x\n");
        let c = &df.nodes[1];
        assert_eq!(c.args, vec!["<<X", "<<Y", "/dest"]);
        assert_eq!(c.heredocs[0].name, "X");
        assert_eq!(c.heredocs[0].content, "Y\n");
        assert_eq!(c.heredocs[1].name, "Y");
        assert_eq!(c.heredocs[1].content, "X\n");
        assert_eq!(spans(&df), vec![(1, 1), (2, 6), (7, 7)]);

        let df = p("FROM a\nRUN <<A <<B\na\nA\nb\nB\n");
        let names: Vec<_> = df.nodes[1].heredocs.iter().map(|h| &h.name).collect();
        assert_eq!(names, ["A", "B"]);

        let df = p("FROM a\nCOPY <<EOF /path\nhello\nEOF\n");
        assert_eq!(df.nodes[1].args, vec!["<<EOF", "/path"]);
        assert_eq!(df.nodes[1].heredocs[0].content, "hello\n");

        let df = p("FROM a\nADD <<EOF /x\nhi\nEOF\n");
        assert_eq!(df.nodes[1].heredocs.len(), 1);
    }

    #[test]
    fn heredoc_fd_continuation_and_non_heredocs() {
        let df = p("FROM a\nRUN cat 3<<EOF >&3\nx\nEOF\n");
        assert_eq!(df.nodes[1].heredocs[0].file_descriptor, 3);

        // The heredoc starts on a continued line; the body follows the last physical line.
        let df = p("FROM a\nRUN cat \\\n  <<EOF\nbody\nEOF\nRUN y\n");
        assert_eq!(df.nodes[1].heredocs[0].content, "body\n");
        assert_eq!(spans(&df), vec![(1, 1), (2, 5), (6, 6)]);

        // JSON form, other instructions, quoted or glued `<<` are not heredocs.
        for src in [
            "FROM a\nRUN [\"<<EOF\"]\nRUN x\n",
            "FROM a\nENV A <<EOF\nRUN x\n",
            "FROM a\nRUN echo \"<<EOF\"\nRUN x\n",
            "FROM a\nRUN echo a<<EOF\nRUN x\n",
            "FROM a\nRUN echo <<\nRUN x\n",
        ] {
            let df = p(src);
            assert_eq!(df.nodes.len(), 3, "{src}");
            assert!(df.nodes.iter().all(|n| n.heredocs.is_empty()), "{src}");
        }
    }

    #[test]
    fn heredoc_unterminated_and_onbuild() {
        let e = err("FROM a\n\nRUN <<EOF\nline\n");
        assert_eq!((e.line, e.message.as_str()), (3, "unterminated heredoc"));

        let df = p("FROM a\nONBUILD RUN <<EOF\nx\nEOF\n");
        let n = &df.nodes[1];
        assert_eq!(n.heredocs.len(), 1);
        assert_eq!(n.span, Span { start: 2, end: 4 });
        assert_eq!(
            n.next.as_ref().map(|n| n.span),
            Some(Span { start: 2, end: 4 })
        );
        assert_eq!(dump(&df), "(from \"a\")\n(onbuild (run \"<<EOF\"))");
    }

    #[test]
    fn directives() {
        let df = p("# escape=`\nFROM a\nRUN echo `\n  hi\n");
        assert_eq!(df.directives.escape, '`');
        assert_eq!(df.nodes[1].args, vec!["echo   hi"]);

        let df = p("# syntax = docker/dockerfile:1\n# check=skip=all\nFROM a\n");
        assert_eq!(
            df.directives.syntax,
            Some(("docker/dockerfile:1".to_string(), 1))
        );
        assert_eq!(df.directives.check, Some(("skip=all".to_string(), 2)));

        let e = err("# syntax=a\n# SYNTAX=b\nFROM a\n");
        assert_eq!(e.message, "only one syntax parser directive can be used");
        assert_eq!(e.line, 2);

        let e = err("# escape=x\nFROM a\n");
        assert_eq!(e.message, "invalid escape token 'x' does not match ` or \\");
        assert_eq!((e.line, e.col), (1, 10));

        // After an instruction (or an ordinary comment / blank line) it is a comment.
        for src in [
            "FROM a\n# escape=`\nRUN a \\\n b\n",
            "# hello\n# escape=`\nFROM a\nRUN a \\\n b\n",
            "\n# escape=`\nFROM a\nRUN a \\\n b\n",
        ] {
            let df = p(src);
            assert_eq!(df.directives.escape, '\\', "{src}");
            assert_eq!(
                df.nodes.last().map(|n| n.args.clone()),
                Some(vec!["a  b".to_string()])
            );
        }
        // A repeated directive after directives ended is just a comment.
        let df = p("# syntax=a\nFROM a\n# syntax=b\n");
        assert_eq!(df.directives.syntax, Some(("a".to_string(), 1)));

        let df = p("#!/bin/sh\n# syntax=x/y\nFROM a\n");
        assert_eq!(df.directives.syntax, Some(("x/y".to_string(), 2)));
    }

    #[test]
    fn bom_is_stripped() {
        let df = p("\u{feff}# escape=`\nFROM a\n");
        assert_eq!(df.directives.escape, '`');
        let df = p("\u{feff}FROM a\n");
        assert_eq!(df.nodes[0].keyword, "from");
        assert_eq!(df.nodes[0].original, "FROM a");
    }

    #[test]
    fn error_positions() {
        let e = err("FROM a\n\nENV PATH\n");
        assert_eq!(e.message, "ENV must have two arguments");
        assert_eq!((e.line, e.col), (3, 5));

        let e = err("FROM a\nCMD [ \"echo\", \\\n  [ \"nested json\" ] ]\n");
        assert_eq!((e.line, e.col), (3, 3));
        assert!(e.message.contains("strings only"));

        let e = err("FROM a\nLABEL a=b \\\n    c\n");
        assert_eq!((e.line, e.col), (3, 5));
        assert_eq!(
            e.message,
            "Syntax error - can't find = in \"c\". Must be of the form: name=value"
        );

        let e = err("");
        assert_eq!(
            (e.line, e.message.as_str()),
            (1, "file with no instructions")
        );
        let e = err("# a\n\n# b\n");
        assert_eq!(e.line, 3);

        let long = format!("FROM a\nRUN {}\n", "x".repeat(70000));
        let e = err(&long);
        assert_eq!(e.line, 2);
        assert!(e.message.contains("65535"));
    }

    #[test]
    fn flags_and_terminator() {
        let df = p("COPY --a=1 --b='x y' -- --c d\n");
        let n = &df.nodes[0];
        assert_eq!(n.flags, vec!["--a=1", "--b=x y"]);
        assert_eq!(n.args, vec!["--c", "d"]);
        assert_eq!(n.rest, "--c d");
        assert_eq!(dump(&df), "(copy [\"--a=1\" \"--b=x y\"] \"--c\" \"d\")");

        let df = p("RUN --mount=type=cache,target=/x echo hi\n");
        assert_eq!(df.nodes[0].flags, vec!["--mount=type=cache,target=/x"]);
        assert_eq!(df.nodes[0].args, vec!["echo hi"]);

        let df = p("COPY --from=a\n");
        assert_eq!(df.nodes[0].flags, vec!["--from=a"]);
        assert!(df.nodes[0].args.is_empty());
        assert_eq!(dump(&df), "(copy [\"--from=a\"])");
    }

    #[test]
    fn onbuild_nesting() {
        let df = p("ONBUILD RUN echo test\nONBUILD --x ADD [\"a\", \"b\"]\nONBUILD\n");
        let n = &df.nodes[0];
        let next = n.next.as_ref().expect("nested");
        assert_eq!(next.keyword, "run");
        assert_eq!(next.args, vec!["echo test"]);
        assert_eq!(next.original, "RUN echo test");
        assert_eq!(n.rest, "RUN echo test");
        assert!(df.nodes[1].next.as_ref().is_some_and(|n| n.json));
        assert_eq!(
            dump(&df),
            "(onbuild (run \"echo test\"))\n(onbuild [\"--x\"] (add \"a\" \"b\"))\n(onbuild)"
        );
        // BuildKit's parser accepts these; its instruction layer rejects them.
        let df = p("ONBUILD FROM x\nONBUILD MAINTAINER me\n");
        assert_eq!(
            dump(&df),
            "(onbuild (from \"x\"))\n(onbuild (maintainer \"me\"))"
        );
        let df = p("ONBUILD ONBUILD RUN x\n");
        assert_eq!(dump(&df), "(onbuild (onbuild (run \"x\")))");
        let deep = format!("{}RUN x\n", "ONBUILD ".repeat(1000));
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn instruction_shapes() {
        let df = p(concat!(
            "FROM a AS b\n",
            "ENV SCUBA 1 DUBA 3\n",
            "ARG abc=\"123 456\" def\n",
            "CMD []\n",
            "HEALTHCHECK NONE\n",
            "FOO bar baz\n",
            "USER  me \n",
        ));
        assert_eq!(
            dump(&df),
            concat!(
                "(from \"a\" \"AS\" \"b\")\n",
                "(env \"SCUBA\" \"1 DUBA 3\" \"\")\n",
                "(arg \"abc=\\\"123 456\\\"\" \"def\")\n",
                "(cmd)\n",
                "(healthcheck \"NONE\")\n",
                "(foo \"\")\n",
                "(user \"me\")"
            )
        );
        assert!(df.nodes[3].json);
        assert!(df.nodes[5].args.is_empty());
        assert_eq!(df.nodes[5].rest, "bar baz");
    }

    #[test]
    fn json_like_go() {
        let args = |src: &str| p(src).nodes[0].args.clone();
        assert_eq!(
            args("CMD [\"\\ud83d\\ude00\", \"\\ud800x\"]"),
            ["\u{1f600}", "\u{fffd}x"]
        );
        // Trailing text or invalid JSON: shell form.
        assert_eq!(args("CMD [\"a\"] b"), ["[\"a\"] b"]);
        assert_eq!(args("CMD ['a']"), ["['a']"]);
        // Out-of-range numbers make Go's decoder fail: shell form, not an error.
        assert_eq!(args("CMD [1e999]"), ["[1e999]"]);
        assert!(parse("CMD [1]").is_err());
        assert!(parse("CMD [\"a\", {\"b\": [null]}]").is_err());
        let deep = format!("CMD {}{}", "[".repeat(20000), "]".repeat(20000));
        assert_eq!(args(&deep).len(), 1);
    }

    #[test]
    fn continuation_warning() {
        let df = p("FROM a\nRUN a \\\n\n  b\n");
        assert_eq!(df.warnings.len(), 1);
        assert_eq!(df.warnings[0].line, 4);
        assert_eq!(
            df.warnings[0].message,
            "Empty continuation line found in: RUN a   b"
        );
        assert_eq!(df.nodes[1].span, Span { start: 2, end: 4 });
        // Comment lines inside continuations are dropped without a warning.
        let df = p("RUN a \\\n # c\n b\n");
        assert!(df.warnings.is_empty());
        assert_eq!(df.nodes[0].args, vec!["a  b"]);
    }

    #[test]
    fn trailing_escape_at_eof() {
        let df = p("FROM a\nRUN x \\");
        assert_eq!(df.nodes[1].args, vec!["x"]);
        let df = p("FROM a\n\\");
        assert_eq!(df.nodes[1].keyword, "");
        assert_eq!(dump(&df), "(from \"a\")\n(\"\")");
    }
}
