//! Parser directives (`# syntax=`, `# escape=`, `# check=`) at the top of the file, and a
//! `# syntax=` after a shebang line.

use super::*;

#[derive(Default)]
pub(super) struct DirectiveState {
    pub(super) done: bool,
    pub(super) seen: Vec<String>,
}

impl DirectiveState {
    /// Look at one line while directives are still possible. `raw` is the physical line
    /// `token` was cut from (for the column of errors). True when the line was a directive.
    pub(super) fn check(
        &mut self,
        token: &str,
        raw: &str,
        line_no: usize,
        dirs: &mut Directives,
    ) -> Result<bool, ParseError> {
        if self.done {
            return Ok(false);
        }
        let Some((key, value)) = match_directive(token, "#") else {
            self.done = true;
            return Ok(false);
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(false);
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
        Ok(true)
    }
}

/// Go RE2 `\s`.
pub(super) fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{0C}' | '\r' | ' ')
}

/// `^<comment>\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` → (key, value).
pub(super) fn match_directive<'a>(line: &'a str, comment: &str) -> Option<(&'a str, &'a str)> {
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
pub(super) fn syntax_after_shebang(sc: &Scanner) -> Option<(String, usize)> {
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
