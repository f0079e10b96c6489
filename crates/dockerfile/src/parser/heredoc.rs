//! Heredocs: which words of a line start one (`[n]<<[-]WORD`), through the part of
//! BuildKit's shell lexer that heredoc detection uses.

use super::*;

/// Read the bodies of the heredocs `line` starts from the lines that follow, in order, into
/// `node`; `at` is where the instruction starts (for errors).
pub(super) fn read_heredocs(
    sc: &mut Scanner,
    line: &str,
    node: &mut Node,
    (start_line, start_col): (usize, usize),
    current_line: &mut usize,
) -> Result<(), ParseError> {
    let docs = heredocs_from_line(line).map_err(|message| ParseError {
        line: start_line,
        col: start_col,
        message,
        hint: None,
    })?;
    for mut doc in docs {
        let mut terminated = false;
        let mut content = String::new();
        while let Some(raw) = sc.next_line() {
            *current_line += 1;
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
    Ok(())
}

/// The heredocs a line starts: its shell words (quotes and escapes kept, variables left as
/// written) that look like `[n]<<[-]WORD`.
pub(super) fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
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
pub(super) fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, String> {
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
pub(super) struct Lexer<'a> {
    pub(super) chars: std::iter::Peekable<std::str::Chars<'a>>,
    pub(super) raw_quotes: bool,
    pub(super) raw_escapes: bool,
    pub(super) depth: usize,
    /// The word being built; shared by nested scans as in BuildKit.
    pub(super) buf: String,
}

#[derive(Default)]
pub(super) struct Words {
    pub(super) words: Vec<String>,
    pub(super) in_word: bool,
}

impl Words {
    pub(super) fn add_char(&mut self, buf: &mut String, c: char) {
        if c.is_whitespace() {
            if self.in_word && !buf.is_empty() {
                self.words.push(std::mem::take(buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(buf, c);
        }
    }

    pub(super) fn add_raw_char(&mut self, buf: &mut String, c: char) {
        buf.push(c);
        self.in_word = true;
    }

    pub(super) fn add_string(&mut self, buf: &mut String, s: &str) {
        for c in s.chars() {
            self.add_char(buf, c);
        }
    }

    pub(super) fn add_raw_string(&mut self, buf: &mut String, s: &str) {
        buf.push_str(s);
        self.in_word = true;
    }

    pub(super) fn finish(mut self, buf: &mut String) -> Vec<String> {
        if !buf.is_empty() {
            self.words.push(std::mem::take(buf));
        }
        self.words
    }
}

impl<'a> Lexer<'a> {
    pub(super) fn words(
        src: &'a str,
        raw_quotes: bool,
        raw_escapes: bool,
    ) -> Result<Vec<String>, String> {
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

    pub(super) fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    pub(super) fn stop_on(
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

    pub(super) fn stop_on_inner(
        &mut self,
        stop: Option<char>,
    ) -> Result<(String, Vec<String>), String> {
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

    pub(super) fn single_quote(&mut self) -> Result<String, String> {
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

    pub(super) fn double_quote(&mut self) -> Result<String, String> {
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
    pub(super) fn dollar(&mut self) -> Result<String, String> {
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

    pub(super) fn name(&mut self) -> String {
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
