//! Diagnostics: a Dockerfile error with a position, the offending text and a hint.

use dockerfile::Span;
use serde::Serialize;

/// A planning or parsing error, located in the Dockerfile where possible.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// What kind of error this is; tests check it instead of message text.
    pub kind: ErrorKind,
    /// 1-based line; 0 when the error is not about a place in the file (e.g. `--target`).
    pub line: usize,
    /// 1-based column (in chars) of the fault within `line`.
    pub col: usize,
    /// How many chars the caret underline spans (at least 1).
    pub width: usize,
    pub message: String,
    pub hint: Option<String>,
    /// The physical source line `line` refers to (empty when `line` is 0).
    pub source_line: String,
}

/// The error classes the frontend reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    Syntax,
    UnknownInstruction,
    UnknownFlag,
    InvalidFlag,
    InvalidArguments,
    Expansion,
    NoStages,
    InstructionBeforeFrom,
    InvalidStageName,
    BlankBaseName,
    InvalidStageIndex,
    FromVariable,
    ForwardReference,
    CircularDependency,
    TargetNotFound,
    CopyUrl,
    UnsupportedFrontend,
    InvalidBuildArg,
    /// A value or a stage's values past the expansion limits.
    TooLarge,
    /// A `RUN --mount` source (`source=`) that does not exist where `from=` points.
    MountSourceNotFound,
    /// A `FROM`/`--from` name that is neither a stage nor an image at hand, one typo away
    /// from a stage's name.
    StageNotFound,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl Diagnostic {
    /// A syntax error from the parser, with its source line attached.
    pub fn from_parse_error(source: &str, e: &dockerfile::ParseError) -> Diagnostic {
        Locator::new(source).exact(
            ErrorKind::Syntax,
            e.line,
            e.col,
            e.message.clone(),
            e.hint.clone(),
        )
    }

    /// Render as the CLI prints it:
    ///
    /// ```text
    /// error: Dockerfile:3:6: unknown flag: --foo
    ///  3 | copy --foo=bar / /
    ///    |      ^^^^^^^^^
    /// hint: did you mean --from?
    /// ```
    pub fn render(&self, file: &str) -> String {
        let mut out = String::new();
        // The Dockerfile's own text is quoted here: control characters in it are escaped
        // (ordinary UTF-8 kept), so a line cannot drive the terminal.
        let message = escape::text(&self.message);
        if self.line == 0 {
            out.push_str(&format!("error: {message}\n"));
        } else {
            out.push_str(&format!(
                "error: {}:{}:{}: {message}\n",
                escape::text(file),
                self.line,
                self.col
            ));
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            let chars: Vec<char> = self
                .source_line
                .chars()
                .map(|c| if c == '\t' { ' ' } else { c })
                .collect();
            // Columns count escaped characters as shown, so the caret stays under its text.
            let shown_len = |from: usize, to: usize| -> usize {
                let part: String = chars[from.min(chars.len())..to.min(chars.len())]
                    .iter()
                    .collect();
                escape::text(&part).chars().count()
            };
            let start = self.col.saturating_sub(1);
            let end = start + self.width.max(1);
            let caret_col = shown_len(0, start) + start.saturating_sub(chars.len());
            let caret_width =
                (shown_len(start, end) + end.saturating_sub(chars.len().max(start))).max(1);
            let line: String = chars.iter().collect();
            out.push_str(&format!(" {num} | {}\n", escape::text(&line).trim_end()));
            out.push_str(&format!(
                " {pad} | {}{}\n",
                " ".repeat(caret_col),
                "^".repeat(caret_width)
            ));
        }
        if let Some(h) = &self.hint {
            out.push_str(&format!("hint: {}\n", escape::text(h)));
        }
        out
    }
}

/// Finds where in the source a fault is, to give a line, column and caret width.
pub(crate) struct Locator<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(source: &'a str) -> Self {
        let source = source.strip_prefix('\u{feff}').unwrap_or(source);
        Locator {
            lines: source
                .split('\n')
                .map(|l| l.trim_end_matches('\r'))
                .collect(),
        }
    }

    fn line_text(&self, line: usize) -> &'a str {
        if line == 0 {
            return "";
        }
        self.lines.get(line - 1).copied().unwrap_or("")
    }

    /// A diagnostic at the first occurrence of `needle` within `span` (searching each
    /// physical line in order); at the first non-blank char of the span when not found.
    pub(crate) fn at(
        &self,
        kind: ErrorKind,
        span: Span,
        needle: Option<&str>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        let start = span.start.max(1);
        let end = span.end.max(start);
        if let Some(needle) = needle.filter(|n| !n.is_empty()) {
            for line in start..=end {
                let text = self.line_text(line);
                if let Some(byte) = text.find(needle) {
                    return Diagnostic {
                        kind,
                        line,
                        col: text[..byte].chars().count() + 1,
                        width: needle.chars().count(),
                        message: message.into(),
                        hint,
                        source_line: text.to_string(),
                    };
                }
            }
        }
        let text = self.line_text(start);
        let indent = text.chars().take_while(|c| c.is_whitespace()).count();
        let width = text.trim().chars().count().max(1);
        Diagnostic {
            kind,
            line: start,
            col: indent + 1,
            width,
            message: message.into(),
            hint,
            source_line: text.to_string(),
        }
    }

    /// A diagnostic at an exact line and column (from the parser).
    pub(crate) fn exact(
        &self,
        kind: ErrorKind,
        line: usize,
        col: usize,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        let text = self.line_text(line);
        let col = col.max(1);
        let rest: String = text.chars().skip(col - 1).collect();
        let width = rest
            .split_whitespace()
            .next()
            .map(|w| w.chars().count())
            .unwrap_or(1);
        Diagnostic {
            kind,
            line,
            col,
            width,
            message: message.into(),
            hint,
            source_line: text.to_string(),
        }
    }
}

/// A diagnostic about something outside the file (a command-line argument).
pub(crate) fn unlocated(
    kind: ErrorKind,
    message: impl Into<String>,
    hint: Option<String>,
) -> Diagnostic {
    Diagnostic {
        kind,
        line: 0,
        col: 0,
        width: 0,
        message: message.into(),
        hint,
        source_line: String::new(),
    }
}

/// Edit distance over chars where an adjacent transposition costs 1 (optimal string
/// alignment), so `bulid` is one edit from `build`.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (i, row) in d.chunks_mut(w).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// The closest candidate to `word` (case-insensitive), if it is close enough to be a typo.
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let w = word.to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = distance(&w, &c.to_lowercase());
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let (d, c) = best?;
    let limit = (w.chars().count() / 3).clamp(1, 3);
    (d > 0 && d <= limit).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("bulid", ["build", "base"]), Some("build"));
        assert_eq!(
            did_you_mean("FNTRYPOINT", ["entrypoint", "run"]),
            Some("entrypoint")
        );
        assert_eq!(did_you_mean("xyz", ["build"]), None);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("bulid", "build"), 1);
        assert_eq!(distance("", "abc"), 3);
    }

    #[test]
    fn render_has_caret_under_fault() {
        let src = "FROM scratch\ncopy --foo=bar / /\n";
        let d = Locator::new(src).at(
            ErrorKind::UnknownFlag,
            Span { start: 2, end: 2 },
            Some("--foo=bar"),
            "unknown flag: --foo",
            Some("did you mean --from?".into()),
        );
        assert_eq!((d.line, d.col, d.width), (2, 6, 9));
        assert_eq!(
            d.render("Dockerfile"),
            "error: Dockerfile:2:6: unknown flag: --foo\n 2 | copy --foo=bar / /\n   |      ^^^^^^^^^\nhint: did you mean --from?\n"
        );
    }

    #[test]
    fn render_escapes_control_characters_and_keeps_the_caret_under_them() {
        let src = "FROM scratch\ncopy --\u{1b}[2J=é / /\n";
        let d = Locator::new(src).at(
            ErrorKind::UnknownFlag,
            Span { start: 2, end: 2 },
            Some("--\u{1b}[2J=é"),
            "unknown flag: --\u{1b}[2J",
            None,
        );
        assert_eq!(
            d.render("Dockerfile"),
            "error: Dockerfile:2:6: unknown flag: --\\x1b[2J\n 2 | copy --\\x1b[2J=é / /\n   |      ^^^^^^^^^^^\n"
        );
    }
}
