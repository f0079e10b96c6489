//! `.env` and `env_file` files as compose reads them: `KEY=VALUE` lines, `export KEY=VALUE`,
//! `#` comments (also after an unquoted value, when preceded by a space), single quotes
//! (literal), double quotes (`\n`, `\t`, `\"`, `\\` escapes, interpolated), unquoted values
//! interpolated and trimmed, and `KEY` alone taking the value from the lookup when set.

use crate::interpolate::{interpolate, InterpolationError};
use indexmap::IndexMap;

/// Parses `text`; `lookup` resolves variables in values (earlier lines of the file win over it).
/// Errors carry the 1-based line.
pub fn parse(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, (usize, String)> {
    let mut out: IndexMap<String, String> = IndexMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim_start())),
            None => (line, None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err((
                n + 1,
                format!("unexpected character in variable name {key:?}"),
            ));
        }
        let Some(value) = value else {
            if let Some(v) = out.get(key).cloned().or_else(|| lookup(key)) {
                out.insert(key.to_string(), v);
            }
            continue;
        };
        let look = |k: &str| out.get(k).cloned().or_else(|| lookup(k));
        let interp = |s: &str| {
            interpolate(s, &look, &mut Vec::new()).map_err(|e| match e {
                InterpolationError::Required { var, message } => (
                    n + 1,
                    format!("required variable {var} is missing a value: {message}"),
                ),
                InterpolationError::Invalid => (n + 1, format!("invalid interpolation in {s:?}")),
            })
        };
        let v = if let Some(rest) = value.strip_prefix('\'') {
            let end = rest
                .find('\'')
                .ok_or((n + 1, "unterminated quoted value".to_string()))?;
            rest[..end].to_string()
        } else if let Some(rest) = value.strip_prefix('"') {
            let mut s = String::new();
            let mut chars = rest.chars();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some('r') => s.push('\r'),
                        Some(c) => s.push(c),
                        None => s.push('\\'),
                    },
                    c => s.push(c),
                }
            }
            if !closed {
                return Err((n + 1, "unterminated quoted value".to_string()));
            }
            interp(&s)?
        } else {
            let v = match value.find(" #") {
                Some(i) => &value[..i],
                None => value,
            };
            interp(v.trim_end())?
        };
        out.insert(key.to_string(), v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let text =
            "# c\nA=1\nexport B = two words # note\nC='lit $A'\nD=\"q\\n$A\"\nE=${A}x\nHOME\nF=\n";
        let env = parse(text, &|k| (k == "HOME").then(|| "/root".to_string())).unwrap();
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("A", "1"),
                ("B", "two words"),
                ("C", "lit $A"),
                ("D", "q\n1"),
                ("E", "1x"),
                ("HOME", "/root"),
                ("F", "")
            ]
        );
    }
}
