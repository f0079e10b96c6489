//! `--fix`: the mechanical fixes of BuildKit's warnings, line for line. Only one-line
//! instructions are rewritten, and only where the rewrite cannot change what the build does:
//! the keyword's casing (ConsistentInstructionCasing), the `AS` keyword's casing
//! (FromAsCasing), the stage name's casing (StageNameCasing: stage names are matched without
//! case), `MAINTAINER x` as the label docker documents (MaintainerDeprecated), legacy
//! `ENV a b` / `LABEL a b` as `a=b` with the value quoted (LegacyKeyValueFormat, when the value
//! has no quote, backslash or `$`), and a shell-form CMD/ENTRYPOINT of plain words in JSON
//! form (JSONArgsRecommended: no shell syntax, so no shell was needed).

use crate::Report;

/// The fixed text (the input unchanged where nothing applies).
pub fn fix(dockerfile: &str, report: &Report) -> String {
    let mut lines: Vec<String> = dockerfile.split('\n').map(str::to_string).collect();
    // The keyword's casing first: the `AS` keyword follows the fixed keyword.
    let casing = |w: &&crate::Warning| w.rule == "ConsistentInstructionCasing";
    let ordered = report
        .warnings
        .iter()
        .filter(casing)
        .chain(report.warnings.iter().filter(|w| !casing(w)));
    for w in ordered {
        if w.line != w.end_line || w.line == 0 || w.line > lines.len() {
            continue;
        }
        let line = &lines[w.line - 1];
        if let Some(new) = fix_line(line, w.rule, &w.detail) {
            lines[w.line - 1] = new;
        }
    }
    lines.join("\n")
}

/// The line's indentation, keyword and the rest (after the white space that follows it).
fn split(line: &str) -> Option<(&str, &str, &str, &str)> {
    let body = line.trim_start();
    let indent = &line[..line.len() - body.len()];
    let end = body.find(char::is_whitespace).unwrap_or(body.len());
    let (kw, rest) = body.split_at(end);
    let args = rest.trim_start();
    let gap = &rest[..rest.len() - args.len()];
    (!kw.is_empty()).then_some((indent, kw, gap, args))
}

fn fix_line(line: &str, rule: &str, detail: &str) -> Option<String> {
    let (indent, kw, gap, args) = split(line)?;
    if line.trim_end().ends_with('\\') {
        return None;
    }
    match rule {
        "ConsistentInstructionCasing" => {
            let kw = if detail.ends_with("(lowercase)") {
                kw.to_lowercase()
            } else {
                kw.to_uppercase()
            };
            Some(format!("{indent}{kw}{gap}{args}"))
        }
        "FromAsCasing" | "StageNameCasing" => {
            let words: Vec<&str> = args.split_whitespace().collect();
            let i = words.iter().position(|w| w.eq_ignore_ascii_case("as"))?;
            if i + 2 != words.len() {
                return None;
            }
            let as_kw = if rule == "FromAsCasing" {
                if kw == kw.to_lowercase() {
                    "as".to_string()
                } else {
                    "AS".to_string()
                }
            } else {
                words[i].to_string()
            };
            let name = if rule == "StageNameCasing" {
                words[i + 1].to_lowercase()
            } else {
                words[i + 1].to_string()
            };
            let head = words[..i].join(" ");
            Some(format!("{indent}{kw}{gap}{head} {as_kw} {name}"))
        }
        "MaintainerDeprecated" => {
            let v = args.trim_end();
            if v.contains(['"', '\\', '$']) {
                return None;
            }
            let label = if kw == kw.to_lowercase() {
                "label"
            } else {
                "LABEL"
            };
            Some(format!(
                "{indent}{label}{gap}org.opencontainers.image.authors=\"{v}\""
            ))
        }
        "LegacyKeyValueFormat" => {
            let (key, value) = args.trim_end().split_once(char::is_whitespace)?;
            let value = value.trim_start();
            if key.contains('=') || value.contains(['"', '\'', '\\', '$']) {
                return None;
            }
            let value = if value.is_empty() || value.contains(char::is_whitespace) {
                format!("\"{value}\"")
            } else {
                value.to_string()
            };
            Some(format!("{indent}{kw}{gap}{key}={value}"))
        }
        "JSONArgsRecommended" => {
            let cmd = args.trim_end();
            let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c);
            if cmd.is_empty() || !cmd.chars().all(|c| plain(c) || c == ' ' || c == '\t') {
                return None;
            }
            let words: Vec<String> = cmd.split_whitespace().map(|w| format!("\"{w}\"")).collect();
            Some(format!("{indent}{kw}{gap}[{}]", words.join(", ")))
        }
        _ => None,
    }
}

/// A unified diff of two texts that have the same lines but changed ones (what [`fix`]
/// makes), 3 lines of context, as `diff -u` prints it.
pub fn unified_diff(old: &str, new: &str, name: &str) -> String {
    let a: Vec<&str> = old.split('\n').collect();
    let b: Vec<&str> = new.split('\n').collect();
    if a == b || a.len() != b.len() {
        return String::new();
    }
    // A trailing newline leaves an empty last element: not a line.
    let n = if a.last() == Some(&"") {
        a.len() - 1
    } else {
        a.len()
    };
    let changed: Vec<usize> = (0..n).filter(|&i| a[i] != b[i]).collect();
    let mut out = format!("--- {name}\n+++ {name}\n");
    let mut i = 0;
    while i < changed.len() {
        let start = changed[i].saturating_sub(3);
        let mut j = i;
        while j + 1 < changed.len() && changed[j + 1] <= changed[j] + 6 {
            j += 1;
        }
        let end = (changed[j] + 4).min(n);
        let count = end - start;
        out.push_str(&format!(
            "@@ -{},{count} +{},{count} @@\n",
            start + 1,
            start + 1
        ));
        for k in start..end {
            if a[k] == b[k] {
                out.push_str(&format!(" {}\n", a[k]));
            } else {
                out.push_str(&format!("-{}\n", a[k]));
            }
            if a[k] != b[k] {
                out.push_str(&format!("+{}\n", b[k]));
            }
        }
        i = j + 1;
    }
    out
}
