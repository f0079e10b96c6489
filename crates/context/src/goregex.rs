//! The two halves of patternmatcher's `Pattern.compile`:
//!
//! 1. [`compile`] turns a cleaned ignore pattern into the match type and the Go regular
//!    expression text patternmatcher builds (`^…$`), character for character.
//! 2. [`translate`] reads that text the way Go's `regexp/syntax` parser does (Perl flags:
//!    one-line `^`/`$`, `.` not matching `\n`, ASCII `\d \s \w \b`, `[[:alpha:]]`, `\pL`,
//!    octal and `\xHH` escapes, `\Q…\E`, `]` first in a class is literal, `-` anywhere)
//!    and writes an equivalent pattern for the `regex` crate, escaping everything that
//!    the `regex` crate would read differently (nested classes, `&&`/`--`/`~~` set
//!    operators, `\<`, Unicode `\d`, …).
//!
//! Patterns reach the translator only after `filepath.Match` has accepted them, but the
//! translator does not rely on that: any input gives `Ok` or `Err`, never a panic.

/// How a pattern is matched, as patternmatcher's `matchType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchType {
    /// `path == pattern`.
    Exact,
    /// `pattern` ends in `**` after literal text: `path` starts with the text.
    Prefix,
    /// `pattern` starts with `**`: `path` ends with the rest (or equals it without its `/`).
    Suffix,
    /// A regular expression.
    Regexp,
}

/// Characters patternmatcher escapes because they mean something to a regexp but nothing
/// to `filepath.Match`.
fn should_escape(c: char) -> bool {
    matches!(c, '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$')
}

/// patternmatcher's `compile` with `/` as separator: the match type and, for
/// [`MatchType::Regexp`], the Go regular expression.
pub fn compile(pattern: &str) -> (MatchType, Option<String>) {
    let mut chars: Vec<char> = pattern.chars().collect();
    // text/scanner drops a byte order mark at the very start of its input.
    if chars.first() == Some(&'\u{FEFF}') {
        chars.remove(0);
    }
    let mut re = String::from("^");
    let mut ty = MatchType::Exact;
    let mut idx = 0;
    let mut i = 0usize;
    while idx < chars.len() {
        let ch = chars[idx];
        idx += 1;
        if ch == '*' {
            if chars.get(idx) == Some(&'*') {
                idx += 1;
                // Treat **/ as **.
                if chars.get(idx) == Some(&'/') {
                    idx += 1;
                }
                if idx == chars.len() {
                    // "**" at the end accepts everything, as in .gitignore.
                    if ty == MatchType::Exact {
                        ty = MatchType::Prefix;
                    } else {
                        re.push_str(".*");
                        ty = MatchType::Regexp;
                    }
                } else {
                    re.push_str("(.*/)?");
                    ty = MatchType::Regexp;
                }
                if i == 0 {
                    ty = MatchType::Suffix;
                }
            } else {
                re.push_str("[^/]*");
                ty = MatchType::Regexp;
            }
        } else if ch == '?' {
            re.push_str("[^/]");
            ty = MatchType::Regexp;
        } else if should_escape(ch) {
            re.push('\\');
            re.push(ch);
        } else if ch == '\\' {
            if idx < chars.len() {
                re.push('\\');
                re.push(chars[idx]);
                idx += 1;
                ty = MatchType::Regexp;
            } else {
                re.push('\\');
            }
        } else if ch == '[' || ch == ']' {
            re.push(ch);
            ty = MatchType::Regexp;
        } else {
            re.push(ch);
        }
        i += 1;
    }
    if ty == MatchType::Regexp {
        re.push('$');
        (ty, Some(re))
    } else {
        (ty, None)
    }
}

/// Reads Go regexp syntax and writes the same language in `regex` crate syntax.
pub fn translate(go: &str) -> Result<String, String> {
    let chars: Vec<char> = go.chars().collect();
    let mut p = Parser { s: &chars, i: 0 };
    let alts = p.parse_alternation(0)?;
    if p.i < chars.len() {
        return Err("unexpected )".into());
    }
    let mut out = String::new();
    emit_alts(&alts, &mut out);
    Ok(out)
}

#[derive(Debug)]
enum Node {
    Lit(char),
    /// A complete class in `regex` syntax, `[...]`.
    Class(String),
    AnyNotNl,
    BeginText,
    EndText,
    WordBoundary,
    NoWordBoundary,
    Group(Vec<Vec<Node>>),
    Repeat(Box<Node>, String),
}

fn emit_alts(alts: &[Vec<Node>], out: &mut String) {
    for (k, seq) in alts.iter().enumerate() {
        if k > 0 {
            out.push('|');
        }
        for n in seq {
            emit(n, out);
        }
    }
}

fn emit(n: &Node, out: &mut String) {
    match n {
        Node::Lit(c) => out.push_str(&regex::escape(c.encode_utf8(&mut [0u8; 4]))),
        Node::Class(c) => out.push_str(c),
        Node::AnyNotNl => out.push_str("[^\\n]"),
        Node::BeginText => out.push_str("\\A"),
        Node::EndText => out.push_str("\\z"),
        Node::WordBoundary => out.push_str("(?-u:\\b)"),
        Node::NoWordBoundary => out.push_str("(?-u:\\B)"),
        Node::Group(alts) => {
            out.push_str("(?:");
            emit_alts(alts, out);
            out.push(')');
        }
        Node::Repeat(inner, op) => {
            out.push_str("(?:");
            emit(inner, out);
            out.push(')');
            out.push_str(op);
        }
    }
}

/// Ranges plus Unicode general categories, the pieces of one class.
#[derive(Default)]
struct ClassBuf {
    ranges: Vec<(u32, u32)>,
    unicode: Vec<String>,
}

impl ClassBuf {
    fn add(&mut self, lo: u32, hi: u32) {
        self.ranges.push((lo, hi));
    }

    fn add_negated(&mut self, set: &[(u32, u32)]) {
        let mut next = 0u32;
        let mut sorted = set.to_vec();
        sorted.sort_unstable();
        for (lo, hi) in sorted {
            if lo > next {
                self.add(next, lo - 1);
            }
            next = next.max(hi + 1);
        }
        if next <= 0x10FFFF {
            self.add(next, 0x10FFFF);
        }
    }

    fn add_group(&mut self, set: &[(u32, u32)], negated: bool) {
        if negated {
            self.add_negated(set);
        } else {
            for &(lo, hi) in set {
                self.add(lo, hi);
            }
        }
    }

    fn render(&self, negated: bool) -> String {
        let mut s = String::from("[");
        if negated {
            s.push('^');
        }
        for &(lo, hi) in &self.ranges {
            // Surrogates cannot be written as single characters; ranges over them are fine.
            let lo = if (0xD800..=0xDFFF).contains(&lo) {
                0xE000
            } else {
                lo
            };
            let hi = if (0xD800..=0xDFFF).contains(&hi) {
                0xD7FF
            } else {
                hi
            };
            if lo > hi {
                continue;
            }
            if lo == hi {
                s.push_str(&format!("\\x{{{lo:X}}}"));
            } else {
                s.push_str(&format!("\\x{{{lo:X}}}-\\x{{{hi:X}}}"));
            }
        }
        for u in &self.unicode {
            s.push_str(u);
        }
        if self.ranges.is_empty() && self.unicode.is_empty() {
            // Cannot happen with Go syntax (a class has at least one item); keep the
            // meaning "matches nothing" / "matches anything" all the same.
            return if negated {
                "[\\x{0}-\\x{10FFFF}]".into()
            } else {
                "[^\\x{0}-\\x{10FFFF}]".into()
            };
        }
        s.push(']');
        s
    }
}

const DIGIT: &[(u32, u32)] = &[(0x30, 0x39)];
const SPACE: &[(u32, u32)] = &[(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)];
const WORD: &[(u32, u32)] = &[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)];

fn posix_group(name: &str) -> Option<&'static [(u32, u32)]> {
    Some(match name {
        "alnum" => &[(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
        "alpha" => &[(0x41, 0x5A), (0x61, 0x7A)],
        "ascii" => &[(0x00, 0x7F)],
        "blank" => &[(0x09, 0x09), (0x20, 0x20)],
        "cntrl" => &[(0x00, 0x1F), (0x7F, 0x7F)],
        "digit" => DIGIT,
        "graph" => &[(0x21, 0x7E)],
        "lower" => &[(0x61, 0x7A)],
        "print" => &[(0x20, 0x7E)],
        "punct" => &[(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
        "space" => &[(0x09, 0x0D), (0x20, 0x20)],
        "upper" => &[(0x41, 0x5A)],
        "word" => WORD,
        "xdigit" => &[(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
        _ => return None,
    })
}

fn perl_group(c: char) -> Option<(&'static [(u32, u32)], bool)> {
    Some(match c {
        'd' => (DIGIT, false),
        'D' => (DIGIT, true),
        's' => (SPACE, false),
        'S' => (SPACE, true),
        'w' => (WORD, false),
        'W' => (WORD, true),
        _ => return None,
    })
}

struct Parser<'a> {
    s: &'a [char],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn at(&self, k: usize) -> Option<char> {
        self.s.get(self.i + k).copied()
    }

    /// Parses until the end or an unmatched `)` (left in place when `depth > 0`).
    fn parse_alternation(&mut self, depth: usize) -> Result<Vec<Vec<Node>>, String> {
        let mut alts: Vec<Vec<Node>> = vec![Vec::new()];
        let mut last_repeat = false;
        while let Some(c) = self.peek() {
            let mut repeat = false;
            match c {
                '(' => {
                    if self.at(1) == Some('?') {
                        return Err("unsupported group flags".into());
                    }
                    if depth >= 200 {
                        return Err("expression nests too deeply".into());
                    }
                    self.i += 1;
                    let inner = self.parse_alternation(depth + 1)?;
                    if self.peek() != Some(')') {
                        return Err("missing closing )".into());
                    }
                    self.i += 1;
                    cur(&mut alts).push(Node::Group(inner));
                }
                ')' => {
                    if depth == 0 {
                        return Err("unexpected )".into());
                    }
                    return Ok(alts);
                }
                '|' => {
                    self.i += 1;
                    alts.push(Vec::new());
                }
                '^' => {
                    self.i += 1;
                    cur(&mut alts).push(Node::BeginText);
                }
                '$' => {
                    self.i += 1;
                    cur(&mut alts).push(Node::EndText);
                }
                '.' => {
                    self.i += 1;
                    cur(&mut alts).push(Node::AnyNotNl);
                }
                '[' => {
                    self.i += 1;
                    let class = self.parse_class()?;
                    cur(&mut alts).push(class);
                }
                '*' | '+' | '?' => {
                    self.i += 1;
                    let mut op = c.to_string();
                    if self.peek() == Some('?') {
                        self.i += 1;
                        op.push('?');
                    }
                    if last_repeat {
                        return Err("invalid nested repetition operator".into());
                    }
                    self.apply_repeat(&mut alts, op)?;
                    repeat = true;
                }
                '{' => match self.parse_repeat_braces() {
                    Some((op, len)) => {
                        self.i += len;
                        let mut op = op?;
                        if self.peek() == Some('?') {
                            self.i += 1;
                            op.push('?');
                        }
                        if last_repeat {
                            return Err("invalid nested repetition operator".into());
                        }
                        self.apply_repeat(&mut alts, op)?;
                        repeat = true;
                    }
                    None => {
                        self.i += 1;
                        cur(&mut alts).push(Node::Lit('{'));
                    }
                },
                '\\' => {
                    let node = self.parse_top_escape()?;
                    if let Some(n) = node {
                        cur(&mut alts).push(n);
                    }
                }
                _ => {
                    self.i += 1;
                    cur(&mut alts).push(Node::Lit(c));
                }
            }
            last_repeat = repeat;
        }
        Ok(alts)
    }

    fn apply_repeat(&mut self, alts: &mut [Vec<Node>], op: String) -> Result<(), String> {
        let seq = cur(alts);
        match seq.pop() {
            Some(n) => {
                seq.push(Node::Repeat(Box::new(n), op));
                Ok(())
            }
            None => Err("missing argument to repetition operator".into()),
        }
    }

    /// `{n}`, `{n,}`, `{n,m}` at the cursor: the operator (or an error for counts over
    /// 1000) and its length; `None` when it is not a repetition (then `{` is a literal).
    fn parse_repeat_braces(&self) -> Option<(Result<String, String>, usize)> {
        let mut k = 1;
        let num = |k: &mut usize| -> Option<u32> {
            let start = *k;
            while let Some(c) = self.at(*k) {
                if c.is_ascii_digit() {
                    *k += 1;
                } else {
                    break;
                }
            }
            if *k == start {
                return None;
            }
            let text: String = self.s[self.i + start..self.i + *k].iter().collect();
            if text.len() > 1 && text.starts_with('0') {
                return None;
            }
            Some(text.parse::<u32>().unwrap_or(u32::MAX))
        };
        let min = num(&mut k)?;
        let max = if self.at(k) == Some(',') {
            k += 1;
            if self.at(k) == Some('}') {
                None
            } else {
                Some(num(&mut k)?)
            }
        } else {
            Some(min)
        };
        if self.at(k) != Some('}') {
            return None;
        }
        k += 1;
        let op = if min > 1000 || max.is_some_and(|m| m > 1000 || m < min) {
            Err("invalid repeat count".to_string())
        } else {
            Ok(match max {
                None => format!("{{{min},}}"),
                Some(m) if m == min => format!("{{{min}}}"),
                Some(m) => format!("{{{min},{m}}}"),
            })
        };
        Some((op, k))
    }

    /// A backslash outside a class. `Ok(None)` for an empty `\Q\E`.
    fn parse_top_escape(&mut self) -> Result<Option<Node>, String> {
        match self.at(1) {
            Some('A') => {
                self.i += 2;
                return Ok(Some(Node::BeginText));
            }
            Some('z') => {
                self.i += 2;
                return Ok(Some(Node::EndText));
            }
            Some('b') => {
                self.i += 2;
                return Ok(Some(Node::WordBoundary));
            }
            Some('B') => {
                self.i += 2;
                return Ok(Some(Node::NoWordBoundary));
            }
            Some('C') => return Err("invalid escape sequence: \\C".into()),
            Some('Q') => {
                // \Q ... \E: everything up to \E (or the end) is literal.
                self.i += 2;
                let mut lits = Vec::new();
                while let Some(c) = self.peek() {
                    if c == '\\' && self.at(1) == Some('E') {
                        self.i += 2;
                        break;
                    }
                    lits.push(Node::Lit(c));
                    self.i += 1;
                }
                return Ok(match lits.len() {
                    0 => None,
                    1 => lits.pop(),
                    _ => Some(Node::Group(vec![lits])),
                });
            }
            _ => {}
        }
        let mut buf = ClassBuf::default();
        if self.parse_unicode_class(&mut buf)? || self.parse_perl_class(&mut buf) {
            return Ok(Some(Node::Class(buf.render(false))));
        }
        let c = self.parse_escape()?;
        Ok(Some(Node::Lit(c)))
    }

    /// `\pX` / `\PX`. Go's one-letter names are the general categories C L M N P S Z;
    /// braces cannot appear here because patternmatcher escapes `{`.
    fn parse_unicode_class(&mut self, buf: &mut ClassBuf) -> Result<bool, String> {
        if self.peek() != Some('\\') || !matches!(self.at(1), Some('p') | Some('P')) {
            return Ok(false);
        }
        let negated = self.at(1) == Some('P');
        match self.at(2) {
            Some(c @ ('C' | 'L' | 'M' | 'N' | 'P' | 'S' | 'Z')) => {
                self.i += 3;
                buf.unicode
                    .push(format!("\\{}{}", if negated { 'P' } else { 'p' }, c));
                Ok(true)
            }
            _ => Err("invalid character class range".into()),
        }
    }

    fn parse_perl_class(&mut self, buf: &mut ClassBuf) -> bool {
        if self.peek() != Some('\\') {
            return false;
        }
        match self.at(1).and_then(perl_group) {
            Some((set, neg)) => {
                self.i += 2;
                buf.add_group(set, neg);
                true
            }
            None => false,
        }
    }

    /// Go's `parseEscape`: a single escaped character.
    fn parse_escape(&mut self) -> Result<char, String> {
        self.i += 1; // the backslash
        let c = match self.peek() {
            Some(c) => c,
            None => return Err("trailing backslash at end of expression".into()),
        };
        self.i += 1;
        let bad = || Err(format!("invalid escape sequence: \\{c}"));
        match c {
            '1'..='7' | '0' => {
                if c != '0' && !matches!(self.peek(), Some('0'..='7')) {
                    return bad();
                }
                let mut r = c as u32 - '0' as u32;
                for _ in 1..3 {
                    match self.peek() {
                        Some(d @ '0'..='7') => {
                            r = r * 8 + (d as u32 - '0' as u32);
                            self.i += 1;
                        }
                        _ => break,
                    }
                }
                char::from_u32(r).ok_or_else(|| "invalid escape".to_string())
            }
            'x' => {
                let hex = |c: Option<char>| c.and_then(|c| c.to_digit(16));
                match (hex(self.peek()), hex(self.at(1))) {
                    (Some(x), Some(y)) => {
                        self.i += 2;
                        char::from_u32(x * 16 + y).ok_or_else(|| "invalid escape".to_string())
                    }
                    _ => bad(),
                }
            }
            'a' => Ok('\x07'),
            'f' => Ok('\x0C'),
            'n' => Ok('\n'),
            'r' => Ok('\r'),
            't' => Ok('\t'),
            'v' => Ok('\x0B'),
            c if (c as u32) < 0x80 && !c.is_ascii_alphanumeric() => Ok(c),
            _ => bad(),
        }
    }

    /// After `[`: Go's `parseClass`.
    fn parse_class(&mut self) -> Result<Node, String> {
        let mut buf = ClassBuf::default();
        let mut negated = false;
        if self.peek() == Some('^') {
            negated = true;
            self.i += 1;
        }
        let mut first = true;
        loop {
            match self.peek() {
                Some(']') if !first => {
                    self.i += 1;
                    break;
                }
                None => return Err("missing closing ]".into()),
                _ => {}
            }
            first = false;
            // POSIX [:alnum:] and friends.
            if self.peek() == Some('[') && self.at(1) == Some(':') {
                let rest = &self.s[self.i + 2..];
                if let Some(end) = rest.windows(2).position(|w| w == [':', ']']) {
                    let name: String = rest[..end].iter().collect();
                    let (neg, bare) = match name.strip_prefix('^') {
                        Some(b) => (true, b.to_string()),
                        None => (false, name.clone()),
                    };
                    match posix_group(&bare) {
                        Some(set) => {
                            buf.add_group(set, neg);
                            self.i += 2 + end + 2;
                            continue;
                        }
                        None => return Err(format!("invalid character class range: [:{name}:]")),
                    }
                }
            }
            if self.parse_unicode_class(&mut buf)? || self.parse_perl_class(&mut buf) {
                continue;
            }
            let lo = self.parse_class_char()?;
            let mut hi = lo;
            if self.peek() == Some('-') && self.at(1).is_some_and(|c| c != ']') {
                self.i += 1;
                hi = self.parse_class_char()?;
                if hi < lo {
                    return Err(format!("invalid character class range: {lo}-{hi}"));
                }
            }
            buf.add(lo as u32, hi as u32);
        }
        Ok(Node::Class(buf.render(negated)))
    }

    fn parse_class_char(&mut self) -> Result<char, String> {
        match self.peek() {
            None => Err("missing closing ]".into()),
            Some('\\') => self.parse_escape(),
            Some(c) => {
                self.i += 1;
                Ok(c)
            }
        }
    }
}

fn cur(alts: &mut [Vec<Node>]) -> &mut Vec<Node> {
    // parse_alternation starts with one sequence and only ever adds more.
    let n = alts.len();
    &mut alts[n - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rx(go: &str) -> regex::Regex {
        let t = translate(go).unwrap_or_else(|e| panic!("{go}: {e}"));
        regex::Regex::new(&t).unwrap_or_else(|e| panic!("{go} -> {t}: {e}"))
    }

    #[test]
    fn go_class_quirks() {
        // `[[^/]` is a class of '[', '^' and '/' in Go.
        let r = rx("^[[^/]]$");
        assert!(r.is_match("[]") && r.is_match("^]") && r.is_match("/]"));
        assert!(!r.is_match("a]"));
        // `]` first is literal; `-` last is literal.
        assert!(rx("^[]a]$").is_match("]"));
        assert!(rx("^[a-]$").is_match("-"));
        // Set operators of the regex crate are plain characters in Go.
        let r = rx("^[a&&b]$");
        assert!(r.is_match("&") && r.is_match("a"));
        // POSIX and Perl classes are ASCII.
        assert!(rx("^[[:alpha:]]$").is_match("q"));
        assert!(!rx("^\\d$").is_match("٣"));
        assert!(rx("^[^\\d]$").is_match("٣"));
        assert!(rx("^\\pL$").is_match("ä"));
        // Escapes.
        assert!(rx("^a\\<$").is_match("a<"));
        assert!(rx("^\\x41\\101$").is_match("AA"));
        assert!(rx("^a\\Qb*$").is_match("ab*$tail"));
        // \b is an ASCII word boundary.
        assert!(rx("^a\\b").is_match("a b") && !rx("^a\\b").is_match("ab"));
        assert!(rx("^a\\b").is_match("aé"));
    }

    #[test]
    fn go_errors() {
        for bad in [
            "[l-O]",
            "\\1",
            "a**",
            "*a",
            "[",
            "\\pQ",
            "\\q",
            "a)",
            "(a",
            "[[:foo:]]",
            "\\",
        ] {
            assert!(translate(bad).is_err(), "{bad} should be an error");
        }
    }

    #[test]
    fn word_boundary_compiles() {
        assert!(rx("^a\\b.\\B$").is_match("a-"));
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;

    /// Random Go-regexp-ish text straight into the translator: never a panic, and what it
    /// accepts the regex crate compiles.
    #[test]
    fn translate_never_panics() {
        const ATOMS: &[&str] = &[
            "^",
            "$",
            ".",
            "*",
            "+",
            "?",
            "(",
            ")",
            "|",
            "[",
            "]",
            "[^",
            "\\",
            "\\Q",
            "\\E",
            "\\d",
            "\\pL",
            "\\x41",
            "\\0",
            "\\7",
            "{2}",
            "{1,3}",
            "{",
            "}",
            "[:alpha:]",
            "[:^digit:]",
            "a",
            "-",
            "z",
            "é",
            "&&",
            "~~",
            "--",
            "\\b",
            "\\B",
            "\\A",
            "\\z",
            "/",
            "\\-",
            "\\]",
        ];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut ok = 0;
        for _ in 0..8_000 {
            let n = next() % 10;
            let s: String = (0..n)
                .map(|_| ATOMS[(next() % ATOMS.len() as u64) as usize])
                .collect();
            if let Ok(rs) = translate(&s) {
                ok += 1;
                if let Err(e) = regex::Regex::new(&rs) {
                    panic!("{s:?} -> {rs:?} does not compile: {e}");
                }
            }
        }
        assert!(ok > 400, "{ok}");
    }
}
