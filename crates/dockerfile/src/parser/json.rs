//! JSON arrays as Go's `encoding/json.Unmarshal` into `[]any` reads them (exec form).

use super::*;

pub(super) enum Json {
    Strings(Vec<String>),
    /// Valid array with a non-string element at this byte offset of the input.
    NotStrings(usize),
    /// Not a (decodable) JSON array.
    Invalid,
}

pub(super) fn parse_json(rest: &str) -> Json {
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

pub(super) struct JsonParser<'a> {
    pub(super) s: &'a str,
    pub(super) b: &'a [u8],
    pub(super) i: usize,
    /// A number out of float64 range (Go then fails the whole decode).
    pub(super) overflow: bool,
}

impl JsonParser<'_> {
    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    pub(super) fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    pub(super) fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// The whole input: strings of the top-level array and the offset of the first
    /// non-string element. `None` if the input is not valid JSON.
    pub(super) fn top_array(&mut self) -> Option<(Vec<String>, Option<usize>)> {
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
    pub(super) fn value(&mut self, depth: usize) -> Option<()> {
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
    pub(super) fn key(&mut self) -> Option<()> {
        if self.peek()? != b'"' {
            return None;
        }
        self.skip_string()?;
        self.ws();
        self.eat(b':')
    }

    pub(super) fn literal(&mut self, lit: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + lit.len())? == lit {
            self.i += lit.len();
            Some(())
        } else {
            None
        }
    }

    pub(super) fn number(&mut self) -> Option<()> {
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

    pub(super) fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
    }

    pub(super) fn skip_string(&mut self) -> Option<()> {
        self.string().map(|_| ())
    }

    /// A string starting at `"`, decoded like Go (bad surrogates become U+FFFD).
    pub(super) fn string(&mut self) -> Option<String> {
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
    pub(super) fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.i..self.i + 4)?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.i += 4;
        u32::from_str_radix(h, 16).ok()
    }

    /// Complete a `\uXXXX` escape whose value is `r` (may consume a low surrogate).
    pub(super) fn unicode_escape(&mut self, r: u32) -> char {
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
