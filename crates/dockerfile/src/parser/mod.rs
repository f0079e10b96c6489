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
    let mut comments: Vec<String> = Vec::new();

    while let Some(raw) = sc.next_line() {
        let raw = if current_line == 0 {
            raw.strip_prefix('\u{feff}').unwrap_or(raw)
        } else {
            raw
        };
        if is_comment(raw) {
            // BuildKit: the line without its first byte, trimmed (Go's TrimSpace).
            let comment = raw.get(1..).unwrap_or("").trim_matches(is_go_space);
            if comment.is_empty() {
                comments.clear();
            } else {
                comments.push(comment.to_string());
            }
        }
        let token = trim_newline(raw).trim_start();
        if dir.check(token, raw, current_line + 1, &mut directives)? {
            comments.pop();
        }
        let token = if is_comment(token) {
            &token[token.len()..]
        } else {
            token
        };
        current_line += 1;
        let start_line = current_line;
        let esc = directives.escape;

        let (first, end_of_line) = trim_continuation(token, esc);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut line = String::from(first);
        let mut segs = vec![Segment {
            logical: 0,
            line: start_line,
            physical: offset_in(raw, token),
        }];

        let has_empty_continuation = if end_of_line {
            false
        } else {
            continue_line(
                &mut sc,
                &mut dir,
                &mut directives,
                (&mut line, &mut segs),
                &mut current_line,
            )?
        };

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
            read_heredocs(
                &mut sc,
                &line,
                &mut node,
                (start_line, start_col),
                &mut current_line,
            )?;
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
        node.comments = std::mem::take(&mut comments);
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

/// Read the continuation lines of a logical line (its first piece is in `line`) up to the one
/// that does not end with the escape token, recording where each piece came from. Comment
/// lines are skipped; blank ones too, and the result says whether there was one (BuildKit
/// warns about it).
fn continue_line(
    sc: &mut Scanner,
    dir: &mut DirectiveState,
    directives: &mut Directives,
    (line, segs): (&mut String, &mut Vec<Segment>),
    current_line: &mut usize,
) -> Result<bool, ParseError> {
    let esc = directives.escape;
    let mut has_empty_continuation = false;
    while let Some(raw) = sc.next_line() {
        let token = trim_newline(raw);
        dir.check(token, raw, *current_line + 1, directives)?;
        *current_line += 1;
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
            line: *current_line,
            physical: 0,
        });
        line.push_str(piece);
        if eol {
            break;
        }
    }
    Ok(has_empty_continuation)
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

/// Go's `unicode.IsSpace`.
fn is_go_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{85}' | '\u{A0}'
    ) || c.is_whitespace()
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

mod directives;
mod heredoc;
mod json;
mod line;

use directives::{syntax_after_shebang, DirectiveState};
use heredoc::read_heredocs;
use line::{can_contain_heredoc, new_node};

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
    fn comments_above_instructions() {
        // BuildKit's PrevComment: directives left out, blank lines keep the list, an empty
        // comment clears it, comments inside a continuation are not collected.
        let df = p(concat!(
            "# check=skip=all\n",
            "# a  \n",
            "\n",
            "  #b\n",
            "FROM x\n",
            "# c\n",
            "#\n",
            "# d\n",
            "RUN a \\\n",
            "# e\n",
            " b\n",
            "RUN c\n",
        ));
        let comments: Vec<Vec<&str>> = df
            .nodes
            .iter()
            .map(|n| n.comments.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(comments, vec![vec!["a", "#b"], vec!["d"], vec![]]);
        assert_eq!(df.directives.check, Some(("skip=all".to_string(), 1)));
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
