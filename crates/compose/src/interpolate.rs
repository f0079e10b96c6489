//! Compose's variable interpolation: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?err}`, `${VAR?err}`, `${VAR:+alt}`, `${VAR+alt}`, and `$$` for a literal `$`.
//! Defaults, alternatives and messages are themselves interpolated (`${A:-${B}}`).

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpolationError {
    /// `${VAR:?msg}` / `${VAR?msg}`: compose's `required variable VAR is missing a value: msg`.
    Required { var: String, message: String },
    /// An unclosed `${`, a bad name, or a `$` followed by something else.
    Invalid,
}

/// Interpolates `text`. `lookup` gives a variable's value (None when unset); every unset
/// variable substituted by a plain `$VAR`/`${VAR}` is pushed on `unset` (compose warns).
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
) -> Result<String, InterpolationError> {
    expand(text, lookup, unset, 0)
}

/// How deep `${A:-${B:-...}}` may nest (the stack is the limit otherwise).
const MAX_NESTING: usize = 32;

fn expand(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
    depth: usize,
) -> Result<String, InterpolationError> {
    if depth > MAX_NESTING {
        return Err(InterpolationError::Invalid);
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let Some(off) = text[i..].find('$') else {
            out.push_str(&text[i..]);
            break;
        };
        out.push_str(&text[i..i + off]);
        i += off;
        match b.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(b'{') => {
                let close = matching_brace(text, i + 2).ok_or(InterpolationError::Invalid)?;
                out.push_str(&braced(&text[i + 2..close], lookup, unset, depth)?);
                i = close + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let end = name_end(b, i + 1);
                let name = &text[i + 1..end];
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => unset.push(name.to_string()),
                }
                i = end;
            }
            _ => return Err(InterpolationError::Invalid),
        }
    }
    Ok(out)
}

fn name_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
        i += 1;
    }
    i
}

/// The index of the `}` closing a `${` whose body starts at `start`, nested `${...}` skipped.
fn matching_brace(text: &str, start: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(
    body: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
    depth: usize,
) -> Result<String, InterpolationError> {
    let b = body.as_bytes();
    if b.is_empty() || !(b[0].is_ascii_alphabetic() || b[0] == b'_') {
        return Err(InterpolationError::Invalid);
    }
    let end = name_end(b, 0);
    let name = &body[..end];
    let rest = &body[end..];
    let value = lookup(name);
    let (colon, op, arg) = if let Some(r) = rest.strip_prefix(':') {
        let op = r.chars().next().ok_or(InterpolationError::Invalid)?;
        (true, op, &r[1..])
    } else if let Some(op) = rest.chars().next() {
        (false, op, &rest[1..])
    } else {
        return Ok(match value {
            Some(v) => v,
            None => {
                unset.push(name.to_string());
                String::new()
            }
        });
    };
    // `:` tests "unset or empty", no colon tests "unset".
    let missing = match &value {
        None => true,
        Some(v) => colon && v.is_empty(),
    };
    match op {
        '-' if missing => expand(arg, lookup, unset, depth + 1),
        '-' => Ok(value.unwrap_or_default()),
        '+' if missing => Ok(String::new()),
        '+' => expand(arg, lookup, unset, depth + 1),
        '?' if missing => Err(InterpolationError::Required {
            var: name.to_string(),
            message: expand(arg, lookup, unset, depth + 1)?,
        }),
        '?' => Ok(value.unwrap_or_default()),
        _ => Err(InterpolationError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<String, InterpolationError> {
        let env = |k: &str| match k {
            "A" => Some("a".to_string()),
            "E" => Some(String::new()),
            _ => None,
        };
        interpolate(text, &env, &mut Vec::new())
    }

    #[test]
    fn operators() {
        assert_eq!(run("x$A-${A}y").unwrap(), "xa-ay");
        assert_eq!(run("${U:-d}|${E:-d}|${E-d}|${U-d}").unwrap(), "d|d||d");
        assert_eq!(
            run("${A:+alt}|${E:+alt}|${E+alt}|${U+alt}").unwrap(),
            "alt||alt|"
        );
        assert_eq!(run("$$A $${A}").unwrap(), "$A ${A}");
        assert_eq!(run("${U:-${A}-x}").unwrap(), "a-x");
        assert_eq!(run("$U.").unwrap(), ".");
        assert_eq!(
            run("${U:?need it}"),
            Err(InterpolationError::Required {
                var: "U".into(),
                message: "need it".into()
            })
        );
        assert_eq!(run("${E?m}").unwrap(), "");
        assert_eq!(run("${A"), Err(InterpolationError::Invalid));
        assert_eq!(run("a $ b"), Err(InterpolationError::Invalid));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "${U:-".repeat(10_000) + &"}".repeat(10_000);
        assert_eq!(run(&deep), Err(InterpolationError::Invalid));
        let ok = "${U:-".repeat(20) + "x" + &"}".repeat(20);
        assert_eq!(run(&ok).unwrap(), "x");
    }

    #[test]
    fn unset_are_reported() {
        let mut unset = Vec::new();
        interpolate("$X ${Y} ${Z:-d}", &|_| None, &mut unset).unwrap();
        assert_eq!(unset, ["X", "Y"]);
    }
}
