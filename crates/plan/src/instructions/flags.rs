//! Instruction flags (`--name=value`), argument counts, the command forms and durations.

use dockerfile::Node;

use super::Command;
use crate::diag::{did_you_mean, Diagnostic, ErrorKind, Locator};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum FlagKind {
    Bool,
    Str,
    List,
}

/// Parsed leading flags of one instruction.
#[derive(Default)]
pub(super) struct Flags {
    values: Vec<(&'static str, Vec<String>)>,
}

impl Flags {
    pub(super) fn str(&self, name: &str) -> Option<String> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.last().cloned())
    }
    pub(super) fn list(&self, name: &str) -> Vec<String> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
    pub(super) fn bool(&self, name: &str) -> Option<bool> {
        self.str(name).map(|v| v == "true")
    }
}

pub(super) fn parse_flags(
    node: &Node,
    specs: &[(&'static str, FlagKind)],
    loc: &Locator,
) -> Result<Flags, Diagnostic> {
    let mut flags = Flags::default();
    let kw = node.keyword.to_uppercase();
    for word in &node.flags {
        let Some(body) = word.strip_prefix("--") else {
            return Err(loc.at(
                ErrorKind::InvalidFlag,
                node.span,
                Some(word),
                format!("invalid flag {word:?} on {kw}: flags start with --"),
                None,
            ));
        };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(&(spec_name, kind)) = specs.iter().find(|(n, _)| *n == name) else {
            let hint = did_you_mean(name, specs.iter().map(|(n, _)| *n))
                .map(|s| format!("did you mean --{s}?"))
                .or_else(|| {
                    if specs.is_empty() {
                        Some(format!("{kw} takes no flags"))
                    } else {
                        Some(format!(
                            "{kw} accepts {}",
                            specs
                                .iter()
                                .map(|(n, _)| format!("--{n}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    }
                });
            return Err(loc.at(
                ErrorKind::UnknownFlag,
                node.span,
                Some(word),
                format!("unknown flag: --{name}"),
                hint,
            ));
        };
        let value = match (kind, value) {
            (FlagKind::Bool, None) => "true".to_string(),
            (FlagKind::Bool, Some(v)) => match v.to_lowercase().as_str() {
                "true" | "" => "true".into(),
                "false" => "false".into(),
                _ => {
                    return Err(loc.at(
                        ErrorKind::InvalidFlag,
                        node.span,
                        Some(word),
                        format!("expecting boolean value for flag --{name}, not: {v}"),
                        None,
                    ))
                }
            },
            (_, None) => {
                return Err(loc.at(
                    ErrorKind::InvalidFlag,
                    node.span,
                    Some(word),
                    format!("missing a value on flag: --{name}"),
                    Some(format!("write --{name}=VALUE")),
                ))
            }
            (_, Some(v)) => v.to_string(),
        };
        match flags.values.iter_mut().find(|(n, _)| *n == spec_name) {
            Some((_, vals)) => {
                if kind != FlagKind::List {
                    return Err(loc.at(
                        ErrorKind::InvalidFlag,
                        node.span,
                        Some(word),
                        format!("duplicate flag specified: --{name}"),
                        None,
                    ));
                }
                vals.push(value);
            }
            None => flags.values.push((spec_name, vec![value])),
        }
    }
    Ok(flags)
}

pub(super) fn command_of(node: &Node) -> Command {
    if node.json {
        Command::Exec(node.args.clone())
    } else {
        match node.args.first() {
            Some(s) => Command::Shell(s.clone()),
            None => Command::Exec(Vec::new()),
        }
    }
}

/// Go-style duration (`1m30s`, `500ms`, `1.5h`) in nanoseconds, as `time.ParseDuration`
/// reads them (HEALTHCHECK's flags, and `run --health-*`).
pub fn parse_duration(s: &str) -> Option<u64> {
    if s == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * mult;
    }
    (total.is_finite() && total < 9.2e18).then_some(total as u64)
}

pub(super) fn need_args(
    node: &Node,
    min: usize,
    what: &str,
    loc: &Locator,
) -> Result<(), Diagnostic> {
    if node.args.len() < min {
        let kw = node.keyword.to_uppercase();
        return Err(loc.at(
            ErrorKind::InvalidArguments,
            node.span,
            None,
            format!("{kw} requires {what}"),
            None,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(30_000_000_000));
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("1x"), None);
    }
}
