//! Text from outside (tar member names, archive manifests, registry responses, a
//! Dockerfile's lines) made safe to print in a message: nothing it holds can move the
//! cursor, retitle the terminal, reorder the line or hide what follows.
//!
//! Escaped, in the style of Go's `strconv.Quote` (which docker's messages use through `%q`):
//! C0 controls and DEL as `\x1b` (with `\t`, `\n`, `\r` by name), C1 controls and the Unicode
//! bidi and line/paragraph separator controls as `\u0085`, `\u202e`, and bytes that are not
//! UTF-8 as `\xff`. Ordinary text, UTF-8 letters included, is left as it is.
//!
//! * [`text`] / [`bytes`]: a name to put inside a message.
//! * [`quote`]: the same inside double quotes, with `"` and `\` escaped too (Go's `%q`).
//! * [`message`]: a whole (possibly multi-line) message: newlines and tabs kept.
//! * [`clean`]: the other way a name from outside is made safe: lexical path cleaning that
//!   keeps it from escaping its root (Go's `Clean`, clamped at the root, `..` refused).
//!
//! This crate has no dependencies and sits below every other: the layer reader, the store,
//! archive, registry, the Dockerfile diagnostics and the CLI's last line of defence use it.

pub mod clean;

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` is printed escaped.
fn unsafe_char(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        // bidi embedding/override/isolate controls, marks, line and paragraph separators
        | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        | '\u{061c}' | '\u{feff}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
    }
}

fn escape_str(s: &str, keep_lines: bool, quoted: bool) -> Cow<'_, str> {
    let special = |c: char| {
        (unsafe_char(c) && !(keep_lines && (c == '\n' || c == '\t')))
            || (quoted && (c == '"' || c == '\\'))
    };
    if !s.chars().any(special) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !special(c) {
            out.push(c);
        } else if quoted && (c == '"' || c == '\\') {
            out.push('\\');
            out.push(c);
        } else {
            push_escaped(&mut out, c);
        }
    }
    Cow::Owned(out)
}

fn escape_bytes(b: &[u8], quoted: bool) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(&escape_str(chunk.valid(), false, quoted));
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// `s` with its control characters escaped (a name inside a message).
pub fn text(s: &str) -> Cow<'_, str> {
    escape_str(s, false, false)
}

/// Raw bytes (a tar header's name): invalid UTF-8 as `\xHH`, controls escaped.
pub fn bytes(b: &[u8]) -> String {
    escape_bytes(b, false)
}

/// A path as [`bytes`] (its bytes, not a lossy decoding).
pub fn path(p: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    bytes(p.as_os_str().as_bytes())
}

/// Go's `%q`: double-quoted, with `"` and `\` escaped as well.
pub fn quote(b: &[u8]) -> String {
    format!("\"{}\"", escape_bytes(b, true))
}

/// A whole message, possibly several lines: newlines and tabs kept, every other control
/// escaped. The CLI passes every error through this before printing it.
pub fn message(s: &str) -> Cow<'_, str> {
    escape_str(s, true, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_text_is_kept() {
        assert_eq!(text("\u{1b}[31mred\u{7}"), "\\x1b[31mred\\x07");
        assert_eq!(text("a\tb\nc\rd\u{7f}"), "a\\tb\\nc\\rd\\x7f");
        assert_eq!(text("c1\u{85}\u{9b}"), "c1\\u0085\\u009b");
        assert_eq!(text("abc\u{202e}gpj.exe"), "abc\\u202egpj.exe");
        // Ordinary text, accents, CJK and emoji pass untouched (and unallocated).
        for s in ["/usr/lib/x86_64/é/日本/🦀", "back\\slash \"q\""] {
            assert!(matches!(text(s), Cow::Borrowed(_)), "{s}");
        }
    }

    #[test]
    fn bytes_escape_invalid_utf8() {
        assert_eq!(bytes(b"ok\xff\xfe\x1b"), "ok\\xff\\xfe\\x1b");
        assert_eq!(bytes("é".as_bytes()), "é");
        assert_eq!(bytes(b"\xc3"), "\\xc3");
    }

    #[test]
    fn quote_is_gos_percent_q() {
        // Go: fmt.Sprintf("%q", "a\"b\\c\x1b\n") == `"a\"b\\c\x1b\n"`
        assert_eq!(quote(b"a\"b\\c\x1b\n"), r#""a\"b\\c\x1b\n""#);
        assert_eq!(quote("日本".as_bytes()), "\"日本\"");
    }

    #[test]
    fn messages_keep_their_lines() {
        assert_eq!(
            message("error: x\n  | \u{1b}]0;t\u{7}\n\thint"),
            "error: x\n  | \\x1b]0;t\\x07\n\thint"
        );
        // No escaped output holds a control byte.
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        for out in [text(&all).into_owned(), message(&all).into_owned()] {
            assert!(!out
                .chars()
                .any(|c| unsafe_char(c) && c != '\n' && c != '\t'));
        }
        assert!(!text(&all).contains('\n'));
    }
}
