//! docker's output conventions: human sizes and durations, `--format` templates.

mod template;

pub use template::Template;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// docker's `units.HumanSizeWithPrecision(size, 3)`: decimal units, `%.3g`.
pub fn human_size(size: u64) -> String {
    human_size_prec(size, 3)
}

/// docker's `units.HumanSize(size)` (precision 4: `%.4g`), as the prune commands print.
pub fn human_size_4(size: u64) -> String {
    human_size_prec(size, 4)
}

fn human_size_prec(size: u64, prec: i32) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut s = size as f64;
    let mut i = 0;
    while s >= 1000.0 && i < UNITS.len() - 1 {
        s /= 1000.0;
        i += 1;
    }
    format!("{}{}", fmt_g(s, prec), UNITS[i])
}

/// Go's `%.<prec>g` for a non-negative value below 1000 (and its 1e+03 corner).
fn fmt_g(v: f64, prec: i32) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let exp = v.log10().floor() as i32;
    // Round to `prec` significant digits first; rounding may bump the exponent.
    let scale = 10f64.powi(prec - 1 - exp);
    let rounded = (v * scale).round() / scale;
    let exp = rounded.log10().floor() as i32;
    if exp >= prec {
        return format!("{}e+{:02}", (rounded / 10f64.powi(exp)).round() as i64, exp);
    }
    let decimals = (prec - 1 - exp).max(0) as usize;
    let s = format!("{rounded:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// docker's `units.HumanDuration`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    let seconds = secs as i64;
    let minutes = (secs / 60.0) as i64;
    let hours = (secs / 3600.0 + 0.5) as i64;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

/// `9 seconds ago` for an RFC 3339 time; empty when unknown.
pub fn since(created: Option<&str>) -> String {
    match created.and_then(|c| humantime::parse_rfc3339_weak(c.trim_end_matches('Z')).ok()) {
        Some(t) => {
            let d = SystemTime::now().duration_since(t).unwrap_or_default();
            format!("{} ago", human_duration(d))
        }
        None => String::new(),
    }
}

/// docker's `CreatedAt` column: `2026-11-25 05:27:07 +0000 UTC`.
pub fn created_at(created: Option<&str>) -> String {
    match created.and_then(|c| humantime::parse_rfc3339_weak(c.trim_end_matches('Z')).ok()) {
        Some(t) => {
            let s = humantime::format_rfc3339_seconds(t).to_string();
            format!("{} +0000 UTC", s.trim_end_matches('Z').replace('T', " "))
        }
        None => String::new(),
    }
}

/// docker's `stringutils.Ellipsis`: at most `max` chars, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A row for `--format`: field name → value, in column order.
pub type Row = Vec<(&'static str, String)>;

/// Render rows as docker does: a `table` (aligned columns with headers), `json` (one JSON
/// object per line, like `{{json .}}`), or a Go template ([`Template`]) applied to each row
/// (an object of the row's fields: `{{.Field}}`, `{{json .}}`, `{{.Field | upper}}`...),
/// where `\t`/`\n` are escapes; `table TEMPLATE` adds a header line and aligns the columns.
/// A template that does not parse is an error.
pub fn render(
    rows: &[Row],
    headers: &[(&'static str, &'static str)],
    format: Option<&str>,
) -> anyhow::Result<String> {
    Ok(match format {
        None | Some("table") => table(rows, headers),
        Some("json") => rows.iter().map(|r| json_line(r) + "\n").collect(),
        Some(f) => {
            let (is_table, tmpl) = match f.strip_prefix("table") {
                Some(rest) => (true, rest.trim()),
                None => (false, f.trim()),
            };
            let tmpl = Template::parse(&tmpl.replace("\\t", "\t").replace("\\n", "\n"))?;
            let mut out = String::new();
            if is_table {
                // The header of a field is its column's name, else the field's name in
                // capitals.
                let mut hdr: Row = headers.iter().map(|(k, h)| (*k, h.to_string())).collect();
                for (k, _) in rows.iter().flatten() {
                    if !hdr.iter().any(|(hk, _)| hk == k) {
                        hdr.push((*k, k.to_uppercase()));
                    }
                }
                out.push_str(&tmpl.execute(&row_value(&hdr))?);
                out.push('\n');
            }
            for r in rows {
                out.push_str(&tmpl.execute(&row_value(r))?);
                out.push('\n');
            }
            if is_table {
                align_tabs(&out)
            } else {
                out
            }
        }
    })
}

/// A row as the object a template sees: its fields, keys sorted (as docker's `{{json .}}`).
fn row_value(r: &Row) -> serde_json::Value {
    let m: BTreeMap<&str, &str> = r.iter().map(|(k, v)| (*k, v.as_str())).collect();
    serde_json::to_value(m).unwrap_or_default()
}

fn json_line(r: &Row) -> String {
    row_value(r).to_string()
}

fn align_tabs(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let cols = lines.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for l in &lines {
        for (i, c) in l.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for l in &lines {
        let mut line = String::new();
        for (i, c) in l.iter().enumerate() {
            line.push_str(c);
            if i + 1 < l.len() {
                line.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// docker's default tables: columns padded to the widest cell plus three spaces.
pub fn table(rows: &[Row], headers: &[(&'static str, &'static str)]) -> String {
    let mut text = headers
        .iter()
        .map(|(_, h)| *h)
        .collect::<Vec<_>>()
        .join("\t");
    text.push('\n');
    for r in rows {
        let cells: Vec<&str> = headers
            .iter()
            .map(|(k, _)| {
                r.iter()
                    .find(|(rk, _)| rk == k)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("")
            })
            .collect();
        text.push_str(&cells.join("\t"));
        text.push('\n');
    }
    align_tabs(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(589), "589B");
        assert_eq!(human_size(1_990_000), "1.99MB");
        assert_eq!(human_size(1_994_999), "1.99MB");
        assert_eq!(human_size(784_000_000), "784MB");
        assert_eq!(human_size(100_000), "100kB");
        assert_eq!(human_size(1_500), "1.5kB");
        assert_eq!(human_size(999_999), "1e+03kB");
        assert_eq!(human_size(2_140_160), "2.14MB");
        // units.HumanSize (precision 4), as the prune commands print it.
        assert_eq!(human_size_4(0), "0B");
        assert_eq!(human_size_4(2_468), "2.468kB");
        assert_eq!(human_size_4(2_140_160), "2.14MB");
        assert_eq!(human_size_4(12_345_678), "12.35MB");
        assert_eq!(human_size_4(999_999), "1000kB");
    }

    #[test]
    fn durations_like_docker() {
        assert_eq!(human_duration(Duration::from_secs(9)), "9 seconds");
        assert_eq!(human_duration(Duration::from_secs(90)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(3600)), "About an hour");
        assert_eq!(human_duration(Duration::from_secs(3 * 3600)), "3 hours");
        assert_eq!(human_duration(Duration::from_secs(3 * 86400)), "3 days");
    }

    #[test]
    fn templates() {
        let rows = vec![vec![("ID", "abc".to_string()), ("Size", "1B".to_string())]];
        let r = |f: &str| render(&rows, &[("ID", "IMAGE ID")], Some(f)).unwrap();
        assert_eq!(r("{{.ID}}\\t{{.Size}}"), "abc\t1B\n");
        assert_eq!(r("json"), "{\"ID\":\"abc\",\"Size\":\"1B\"}\n");
        assert_eq!(r("{{json .}}"), "{\"ID\":\"abc\",\"Size\":\"1B\"}\n");
        assert_eq!(r("{{ .ID | upper }} {{json .Size}}"), "ABC \"1B\"\n");
        assert_eq!(
            r("table {{.ID}}\\t{{.Size}}"),
            "IMAGE ID   SIZE\nabc        1B\n"
        );
        assert!(render(&rows, &[], Some("{{.ID")).is_err());
        assert_eq!(ellipsis("abcdef", 4), "abc…");
    }
}
