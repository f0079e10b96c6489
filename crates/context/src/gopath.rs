//! Go's `path/filepath` pieces that Docker's rules are written in, for Unix, byte for byte:
//! `Match` (the glob of COPY sources and the syntax check of ignore patterns), `Clean`,
//! `Dir`, and the per-byte UTF-8 decoding Go uses for strings.

use std::borrow::Cow;

/// `filepath.ErrBadPattern`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPattern;

/// Decodes one rune as Go's `utf8.DecodeRune` does: an invalid byte is U+FFFD of width 1,
/// an empty input is U+FFFD of width 0.
pub(crate) fn decode_rune(b: &[u8]) -> (char, usize) {
    if b.is_empty() {
        return ('\u{FFFD}', 0);
    }
    let n = b.len().min(4);
    let valid = match std::str::from_utf8(&b[..n]) {
        Ok(s) => s,
        Err(e) => match std::str::from_utf8(&b[..e.valid_up_to()]) {
            Ok(s) if !s.is_empty() => s,
            _ => return ('\u{FFFD}', 1),
        },
    };
    match valid.chars().next() {
        Some(c) => (c, c.len_utf8()),
        None => ('\u{FFFD}', 1),
    }
}

/// The string Go's regexp and `text/scanner` see for these bytes: every byte that is not
/// part of a valid UTF-8 sequence becomes one U+FFFD.
pub fn go_lossy(b: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(b) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(b.len() + 8);
    let mut rest = b;
    while !rest.is_empty() {
        let (c, n) = decode_rune(rest);
        out.push(c);
        rest = &rest[n.max(1)..];
    }
    Cow::Owned(out)
}

/// `filepath.Clean` for Unix paths.
pub use escape::clean::go as clean;

/// `filepath.Clean` on a string.
pub fn clean_str(path: &str) -> String {
    // Clean only removes or inserts ASCII bytes at ASCII boundaries: UTF-8 stays valid.
    String::from_utf8(clean(path.as_bytes()))
        .unwrap_or_else(|e| go_lossy(e.as_bytes()).into_owned())
}

/// `filepath.Dir`.
pub fn dir(path: &[u8]) -> Vec<u8> {
    let mut i = path.len();
    while i > 0 && path[i - 1] != b'/' {
        i -= 1;
    }
    clean(&path[..i])
}

/// `filepath.Join("/", p)`: the cleaned absolute form of a path.
pub fn join_root(p: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(p.len() + 1);
    v.push(b'/');
    v.extend_from_slice(p);
    clean(&v)
}

/// BuildKit's and fsutil's `containsWildcards`: `*`, `?` or `[`, skipping any byte escaped
/// by a backslash.
pub fn contains_wildcards(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// `filepath.Match(pattern, name)`.
pub fn go_match(mut pattern: &[u8], mut name: &[u8]) -> Result<bool, BadPattern> {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // Trailing * matches the rest of the string unless it has a /.
            return Ok(!name.contains(&b'/'));
        }
        // Look for a match at the current position.
        let first = match_chunk(chunk, name);
        if let Ok(Some(t)) = first {
            if t.is_empty() || !pattern.is_empty() {
                name = t;
                continue;
            }
        }
        first?;
        if star {
            // Look for a match skipping i+1 bytes; * cannot skip '/'.
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                if let Some(t) = match_chunk(chunk, &name[i + 1..])? {
                    // The last chunk must exhaust the name.
                    if !pattern.is_empty() || t.is_empty() {
                        name = t;
                        continue 'pattern;
                    }
                }
                i += 1;
            }
        }
        // Before returning false, check that the rest of the pattern is well formed.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, b"")?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while let Some(b'*') = pattern.first() {
        pattern = &pattern[1..];
        star = true;
    }
    let mut inrange = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            // An escaped byte is skipped (a trailing backslash is an error later).
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => inrange = true,
            b']' => inrange = false,
            b'*' if !inrange => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Matches one chunk at the start of `s`; returns the rest of `s` on success. Like Go's,
/// it keeps scanning the chunk after a mismatch so that syntax errors are always found.
fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> Result<Option<&'a [u8]>, BadPattern> {
    let mut failed = false;
    while !chunk.is_empty() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match chunk[0] {
            b'[' => {
                let mut r = '\0';
                if !failed {
                    let (c, n) = decode_rune(s);
                    r = c;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let mut negated = false;
                if chunk.first() == Some(&b'^') {
                    negated = true;
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if chunk.first() == Some(&b']') && nrange > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = get_esc(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk[0] == b'-' {
                        let (h, rest) = get_esc(&chunk[1..])?;
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s[0] == b'/' {
                        failed = true;
                    }
                    let (_, n) = decode_rune(s);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
            }
            c => {
                let lit = if c == b'\\' {
                    chunk = &chunk[1..];
                    match chunk.first() {
                        Some(&b) => b,
                        None => return Err(BadPattern),
                    }
                } else {
                    c
                };
                if !failed {
                    if lit != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    if failed {
        Ok(None)
    } else {
        Ok(Some(s))
    }
}

/// One possibly escaped character of a `[...]` class; the rest of the chunk must not be
/// empty afterwards.
fn get_esc(mut chunk: &[u8]) -> Result<(char, &[u8]), BadPattern> {
    match chunk.first() {
        None | Some(b'-') | Some(b']') => return Err(BadPattern),
        Some(b'\\') => {
            chunk = &chunk[1..];
            if chunk.is_empty() {
                return Err(BadPattern);
            }
        }
        _ => {}
    }
    let (r, n) = decode_rune(chunk);
    if r == '\u{FFFD}' && n == 1 {
        return Err(BadPattern);
    }
    let rest = &chunk[n..];
    if rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((r, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_like_go() {
        for (i, o) in [
            ("a/b/c", "a/b"),
            ("a", "."),
            ("/a", "/"),
            ("", "."),
            ("a/b/", "a/b"),
        ] {
            assert_eq!(String::from_utf8(dir(i.as_bytes())).unwrap(), o);
        }
    }

    #[test]
    fn wildcards() {
        assert!(contains_wildcards(b"a*"));
        assert!(contains_wildcards(b"a[b]"));
        assert!(!contains_wildcards(b"a\\*b"));
        assert!(!contains_wildcards(b"plain"));
    }

    #[test]
    fn lossy_per_byte() {
        assert_eq!(go_lossy(b"a\xe2\x82b"), "a\u{FFFD}\u{FFFD}b");
        assert_eq!(go_lossy("ä".as_bytes()), "ä");
    }
}
