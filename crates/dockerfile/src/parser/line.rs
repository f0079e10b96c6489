//! One logical line into a node: keyword, leading `--flags`, and the arguments each
//! instruction splits its own way.

use super::json::{parse_json, Json};
use super::*;

/// An error while turning a logical line into a node; `at` is a byte offset in the line.
pub(super) struct NodeError {
    pub(super) message: String,
    pub(super) hint: Option<String>,
    pub(super) at: usize,
}

/// Build the node for `text` (a sub-slice of the logical line `base`).
pub(super) fn new_node(text: &str, base: &str, esc: char, depth: usize) -> Result<Node, NodeError> {
    let (cmd, flags, rest) = split_command(text);
    let keyword = go_lower(cmd);
    let mut node = Node {
        keyword,
        flags,
        args: Vec::new(),
        json: false,
        rest: rest.to_string(),
        original: text.to_string(),
        next: None,
        heredocs: Vec::new(),
        comments: Vec::new(),
        span: Span::default(),
    };
    let at = |s: &str| offset_in(base, s);
    match node.keyword.as_str() {
        "add" | "copy" | "volume" => match parse_json(rest) {
            Json::Strings(v) => {
                node.args = v;
                node.json = true;
            }
            Json::NotStrings(off) => return Err(not_strings(at(rest) + off)),
            Json::Invalid => node.args = split_ws(rest),
        },
        "cmd" | "entrypoint" | "run" | "shell" => {
            let (args, json) = maybe_json(rest).map_err(|off| not_strings(at(rest) + off))?;
            node.args = args;
            node.json = json;
        }
        "env" | "label" => {
            let key = if node.keyword == "env" {
                "ENV"
            } else {
                "LABEL"
            };
            node.args = name_val(rest, key, esc).map_err(|(message, hint, off)| NodeError {
                message,
                hint,
                at: at(rest) + off,
            })?;
        }
        "arg" => node.args = parse_words(rest, esc).into_iter().map(|w| w.0).collect(),
        "expose" | "from" => node.args = split_ws(rest),
        "maintainer" | "stopsignal" | "user" | "workdir" if !rest.is_empty() => {
            node.args = vec![rest.to_string()];
        }
        "healthcheck" => {
            let sep = rest.find(|c: char| is_ascii_space(c)).unwrap_or(rest.len());
            if sep > 0 {
                let typ = &rest[..sep];
                let cmd = rest[sep..].trim_start_matches(is_ascii_space);
                let (args, json) = maybe_json(cmd).map_err(|off| not_strings(at(cmd) + off))?;
                node.args = std::iter::once(typ.to_string()).chain(args).collect();
                node.json = json;
            }
        }
        "onbuild" if !rest.is_empty() => {
            if depth >= MAX_ONBUILD_DEPTH {
                return Err(NodeError {
                    message: format!("ONBUILD nested more than {MAX_ONBUILD_DEPTH} levels"),
                    hint: Some("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
                    at: at(rest),
                });
            }
            node.next = Some(Box::new(new_node(rest, base, esc, depth + 1)?));
        }
        _ => {}
    }
    Ok(node)
}

pub(super) fn not_strings(at: usize) -> NodeError {
    NodeError {
        message: "when using JSON array syntax, arrays must be comprised of strings only".into(),
        hint: Some("quote every element, e.g. [\"echo\", \"hello\"]".into()),
        at,
    }
}

/// Keyword, leading `--flags` and the trimmed rest of a logical line.
pub(super) fn split_command(line: &str) -> (&str, Vec<String>, &str) {
    let (cmd, args) = split2(line.trim());
    match args {
        Some(args) => {
            let (rest, flags) = extract_flags(args);
            (cmd, flags, rest.trim())
        }
        None => (cmd, Vec::new(), &cmd[cmd.len()..]),
    }
}

#[derive(PartialEq, Clone, Copy)]
pub(super) enum Phase {
    Spaces,
    Word,
    Quote,
}

/// Leading words that start with `--` (quotes removed, `\` escapes the next character;
/// a lone `--` ends the flags). Returns the text after the flags and the flags.
pub(super) fn extract_flags(line: &str) -> (&str, Vec<String>) {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut k = 0;
    while k < n {
        let (pos, ch) = chars[k];
        if phase == Phase::Spaces {
            if is_ascii_space(ch) {
                k += 1;
                continue;
            }
            let next_dash = chars.get(k + 1).is_some_and(|&(_, c)| c == '-');
            if ch != '-' || !next_dash {
                return (&line[pos..], words);
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if is_ascii_space(ch) {
                phase = Phase::Spaces;
                if word == "--" {
                    return (&line[pos..], words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                k += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                k += 1;
                continue;
            }
            let mut c = ch;
            if ch == '\\' {
                if k + 1 == n {
                    k += 1;
                    continue;
                }
                k += 1;
                c = chars[k].1;
            }
            word.push(c);
            k += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
            k += 1;
            continue;
        }
        let mut c = ch;
        if ch == '\\' {
            if k + 1 == n {
                phase = Phase::Word;
                k += 1;
                continue;
            }
            k += 1;
            c = chars[k].1;
        }
        word.push(c);
        k += 1;
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    (&line[line.len()..], words)
}

/// Words split on whitespace outside quotes; quotes and escapes are kept. Each word comes
/// with its byte offset in `rest`.
pub(super) fn parse_words(rest: &str, esc: char) -> Vec<(String, usize)> {
    let chars: Vec<(usize, char)> = rest.char_indices().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut start = 0;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut k = 0;
    while k < n {
        let (pos, ch) = chars[k];
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                k += 1;
                continue;
            }
            phase = Phase::Word;
            start = pos;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push((std::mem::take(&mut word), start));
                }
                blank_ok = false;
                k += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            let mut c = ch;
            if ch == esc {
                if k + 1 == n {
                    k += 1;
                    continue;
                }
                word.push(ch);
                k += 1;
                c = chars[k].1;
            }
            word.push(c);
            k += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
        }
        let mut c = ch;
        if ch == esc && quote != '\'' {
            if k + 1 == n {
                phase = Phase::Word;
                k += 1;
                continue;
            }
            word.push(ch);
            k += 1;
            c = chars[k].1;
        }
        word.push(c);
        k += 1;
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        words.push((word, start));
    }
    words
}

/// ENV / LABEL: `key value sep` triples. Error: (message, hint, byte offset in `rest`).
pub(super) fn name_val(
    rest: &str,
    key: &str,
    esc: char,
) -> Result<Vec<String>, (String, Option<String>, usize)> {
    let words = parse_words(rest, esc);
    let Some((first, _)) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        return match split2(rest) {
            (k, Some(v)) => Ok(vec![k.to_string(), v.to_string(), String::new()]),
            (_, None) => Err((
                format!("{key} must have two arguments"),
                Some(format!("use `{key} name=value` (or `{key} name value`)")),
                0,
            )),
        };
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for (word, off) in words {
        let Some((k, v)) = word.split_once('=') else {
            return Err((
                format!(
                    "Syntax error - can't find = in {}. Must be of the form: name=value",
                    go_quote(&word)
                ),
                None,
                off,
            ));
        };
        out.push(k.to_string());
        out.push(v.to_string());
        out.push("=".to_string());
    }
    Ok(out)
}

/// Go `reWhitespace.Split(rest, -1)` for a trimmed, possibly empty `rest`.
pub(super) fn split_ws(rest: &str) -> Vec<String> {
    rest.split(is_sep)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// RUN/CMD/ENTRYPOINT/SHELL: a JSON array of strings, or the whole text as one argument.
/// `Err(offset)` for a JSON array with a non-string element.
pub(super) fn maybe_json(rest: &str) -> Result<(Vec<String>, bool), usize> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_json(rest) {
        Json::Strings(v) => Ok((v, true)),
        Json::NotStrings(off) => Err(off),
        Json::Invalid => Ok((vec![rest.to_string()], false)),
    }
}

pub(super) fn can_contain_heredoc(node: &Node) -> bool {
    let node = match (&node.next, node.keyword.as_str()) {
        (Some(next), "onbuild") => next,
        _ => node,
    };
    matches!(node.keyword.as_str(), "run" | "copy" | "add") && !node.json
}
