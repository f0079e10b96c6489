//! One parser per instruction: AST node in, typed [`Instruction`] out (unexpanded).

use dockerfile::Node;

use super::flags::{command_of, need_args, parse_duration, parse_flags, FlagKind};
use super::mounts::parse_mount;
use super::{ArgDecl, Command, Copy, Healthcheck, Instruction, KeyValue, Run, KEYWORDS};
use crate::diag::{did_you_mean, Diagnostic, ErrorKind, Locator};

/// Convert one AST node into a typed instruction (unexpanded).
pub(crate) fn from_node(node: &Node, loc: &Locator) -> Result<Instruction, Diagnostic> {
    let kw = node.keyword.as_str();
    match kw {
        "from" => from(node, loc),
        "run" => run(node, loc),
        "cmd" => cmd(node, loc),
        "entrypoint" => entrypoint(node, loc),
        "shell" => shell(node, loc),
        "copy" | "add" => copy_or_add(node, loc),
        "env" | "label" => env_or_label(node, loc),
        "arg" => arg(node, loc),
        "expose" => expose(node, loc),
        "volume" => volume(node, loc),
        "user" | "workdir" | "stopsignal" | "maintainer" => one_value(node, loc),
        "healthcheck" => healthcheck(node, loc),
        "onbuild" => onbuild(node, loc),
        _ => unknown(node, loc),
    }
}

/// FROM.
fn from(node: &Node, loc: &Locator) -> Result<Instruction, Diagnostic> {
    use FlagKind::*;
    let flags = parse_flags(node, &[("platform", Str)], loc)?;
    let (image, name) = match node.args.as_slice() {
        [image] => (image.clone(), None),
        [image, as_, name] if as_.eq_ignore_ascii_case("as") => (image.clone(), Some(name.clone())),
        _ => {
            return Err(loc.at(
                ErrorKind::InvalidArguments,
                node.span,
                None,
                "FROM requires either one or three arguments",
                Some("write FROM IMAGE or FROM IMAGE AS NAME".into()),
            ))
        }
    };
    Ok(Instruction::From {
        image,
        name,
        platform: flags.str("platform"),
    })
}

/// RUN.
fn run(node: &Node, loc: &Locator) -> Result<Instruction, Diagnostic> {
    use FlagKind::*;
    let flags = parse_flags(
        node,
        &[
            ("mount", List),
            ("network", Str),
            ("security", Str),
            ("device", List),
        ],
        loc,
    )?;
    need_args(node, 1, "at least one argument", loc)?;
    let mut mounts = Vec::new();
    for spec in flags.list("mount") {
        mounts.push(parse_mount(&spec, node, loc)?);
    }
    let network = flags.str("network");
    if let Some(n) = &network {
        if !["default", "none", "host"].contains(&n.as_str()) {
            return Err(loc.at(
                ErrorKind::InvalidFlag,
                node.span,
                Some(n),
                format!("unsupported network mode {n:?}"),
                Some("use --network=default, none or host".into()),
            ));
        }
    }
    let security = flags.str("security");
    if let Some(s) = &security {
        if !["sandbox", "insecure"].contains(&s.as_str()) {
            return Err(loc.at(
                ErrorKind::InvalidFlag,
                node.span,
                Some(s),
                format!("unsupported security mode {s:?}"),
                Some("use --security=sandbox or insecure".into()),
            ));
        }
    }
    Ok(Instruction::Run(Run {
        command: command_of(node),
        mounts,
        network,
        security,
        heredocs: node.heredocs.clone(),
    }))
}

/// CMD.
fn cmd(node: &Node, loc: &Locator) -> Result<Instruction, Diagnostic> {
    parse_flags(node, &[], loc)?;
    Ok(Instruction::Cmd(command_of(node)))
}

/// ENTRYPOINT.
fn entrypoint(node: &Node, loc: &Locator) -> Result<Instruction, Diagnostic> {
    parse_flags(node, &[], loc)?;
    Ok(Instruction::Entrypoint(command_of(node)))
}

/// SHELL.
fn shell(node: &Node, loc: &Locator) -> Result<Instruction, Diagnostic> {
    parse_flags(node, &[], loc)?;
    if !node.json {
        return Err(loc.at(
            ErrorKind::InvalidArguments,
            node.span,
            None,
            "SHELL requires the arguments to be in JSON form",
            Some(r#"write SHELL ["/bin/sh", "-c"]"#.into()),
        ));
    }
    need_args(node, 1, "at least one argument", loc)?;
    Ok(Instruction::Shell {
        shell: node.args.clone(),
    })
}

/// COPY | ADD.
fn copy_or_add(node: &Node, loc: &Locator) -> Result<Instruction, Diagnostic> {
    use FlagKind::*;
    let kw = node.keyword.as_str();
    let is_add = kw == "add";
    let mut specs = vec![
        ("chown", Str),
        ("chmod", Str),
        ("link", Bool),
        ("exclude", List),
    ];
    if is_add {
        specs.extend([("checksum", Str), ("keep-git-dir", Bool), ("unpack", Bool)]);
    } else {
        specs.extend([("from", Str), ("parents", Bool)]);
    }
    let flags = parse_flags(node, &specs, loc)?;
    if node.args.len() < 2 {
        let kwu = kw.to_uppercase();
        return Err(loc.at(
            ErrorKind::InvalidArguments,
            node.span,
            None,
            format!("{kwu} requires at least two arguments, but only {} provided. Destination could not be determined", node.args.len()),
            Some(format!("write {kwu} SOURCE... DEST")),
        ));
    }
    let (dest, sources) = node.args.split_last().expect("checked above");
    if !is_add {
        if let Some(url) = sources
            .iter()
            .find(|s| s.starts_with("http://") || s.starts_with("https://"))
        {
            return Err(loc.at(
                ErrorKind::CopyUrl,
                node.span,
                Some(url),
                "source can't be a URL for COPY",
                Some("use ADD to fetch a URL".into()),
            ));
        }
    }
    let c = Copy {
        sources: sources.to_vec(),
        dest: dest.clone(),
        from: flags.str("from"),
        chown: flags.str("chown"),
        chmod: flags.str("chmod"),
        link: flags.bool("link").unwrap_or(false),
        parents: flags.bool("parents").unwrap_or(false),
        excludes: flags.list("exclude"),
        checksum: flags.str("checksum"),
        keep_git_dir: flags.bool("keep-git-dir").unwrap_or(false),
        unpack: flags.bool("unpack"),
        heredocs: node.heredocs.clone(),
    };
    if is_add {
        Ok(Instruction::Add(c))
    } else {
        Ok(Instruction::Copy(c))
    }
}

/// ENV | LABEL.
fn env_or_label(node: &Node, loc: &Locator) -> Result<Instruction, Diagnostic> {
    let kw = node.keyword.as_str();
    parse_flags(node, &[], loc)?;
    let kwu = kw.to_uppercase();
    if node.args.is_empty() {
        return Err(loc.at(
            ErrorKind::InvalidArguments,
            node.span,
            None,
            format!("{kwu} requires at least one argument"),
            Some(format!("write {kwu} KEY=VALUE")),
        ));
    }
    let pairs: Vec<KeyValue> = node
        .args
        .chunks(3)
        .map(|c| KeyValue {
            key: c[0].clone(),
            value: c.get(1).cloned().unwrap_or_default(),
        })
        .collect();
    if kw == "env" {
        Ok(Instruction::Env { vars: pairs })
    } else {
        Ok(Instruction::Label { labels: pairs })
    }
}

/// ARG.
fn arg(node: &Node, loc: &Locator) -> Result<Instruction, Diagnostic> {
    parse_flags(node, &[], loc)?;
    need_args(node, 1, "at least one argument", loc)?;
    let mut args = Vec::new();
    for word in &node.args {
        let (name, default) = match word.split_once('=') {
            Some((n, d)) => (n.to_string(), Some(d.to_string())),
            None => (word.clone(), None),
        };
        if name.is_empty() {
            return Err(loc.at(
                ErrorKind::InvalidArguments,
                node.span,
                Some(word),
                "ARG names can not be blank",
                None,
            ));
        }
        args.push(ArgDecl { name, default });
    }
    Ok(Instruction::Arg { args })
}

/// EXPOSE.
fn expose(node: &Node, loc: &Locator) -> Result<Instruction, Diagnostic> {
    parse_flags(node, &[], loc)?;
    need_args(node, 1, "at least one argument", loc)?;
    Ok(Instruction::Expose {
        ports: node.args.clone(),
    })
}

/// VOLUME.
fn volume(node: &Node, loc: &Locator) -> Result<Instruction, Diagnostic> {
    parse_flags(node, &[], loc)?;
    need_args(node, 1, "at least one argument", loc)?;
    Ok(Instruction::Volume {
        paths: node.args.clone(),
    })
}

/// USER | WORKDIR | STOPSIGNAL | MAINTAINER.
fn one_value(node: &Node, loc: &Locator) -> Result<Instruction, Diagnostic> {
    let kw = node.keyword.as_str();
    parse_flags(node, &[], loc)?;
    let kwu = kw.to_uppercase();
    let value = match node.args.as_slice() {
        [one] if !one.trim().is_empty() => one.trim().to_string(),
        _ => {
            return Err(loc.at(
                ErrorKind::InvalidArguments,
                node.span,
                None,
                format!("{kwu} requires exactly one argument"),
                None,
            ))
        }
    };
    match kw {
        "user" => Ok(Instruction::User { user: value }),
        "workdir" => Ok(Instruction::Workdir { path: value }),
        "stopsignal" => Ok(Instruction::StopSignal { signal: value }),
        _ => Ok(Instruction::Maintainer { name: value }),
    }
}

/// HEALTHCHECK.
fn healthcheck(node: &Node, loc: &Locator) -> Result<Instruction, Diagnostic> {
    use FlagKind::*;
    let flags = parse_flags(
        node,
        &[
            ("interval", Str),
            ("timeout", Str),
            ("start-period", Str),
            ("start-interval", Str),
            ("retries", Str),
        ],
        loc,
    )?;
    need_args(node, 1, "at least one argument", loc)?;
    let typ = node.args[0].to_uppercase();
    match typ.as_str() {
        "NONE" => {
            if node.args.len() > 1 || !node.flags.is_empty() {
                return Err(loc.at(
                    ErrorKind::InvalidArguments,
                    node.span,
                    None,
                    "HEALTHCHECK NONE takes no arguments",
                    None,
                ));
            }
            Ok(Instruction::Healthcheck(Healthcheck {
                test: None,
                interval: 0,
                timeout: 0,
                start_period: 0,
                start_interval: 0,
                retries: 0,
            }))
        }
        "CMD" => {
            let rest = &node.args[1..];
            if rest.is_empty() || (!node.json && rest[0].trim().is_empty()) {
                return Err(loc.at(
                    ErrorKind::InvalidArguments,
                    node.span,
                    None,
                    "missing command after HEALTHCHECK CMD",
                    None,
                ));
            }
            let test = if node.json {
                Command::Exec(rest.to_vec())
            } else {
                Command::Shell(rest[0].clone())
            };
            let dur = |name: &str| -> Result<u64, Diagnostic> {
                match flags.str(name) {
                    None => Ok(0),
                    Some(v) => {
                        let d = parse_duration(&v).ok_or_else(|| {
                            loc.at(
                                ErrorKind::InvalidFlag,
                                node.span,
                                Some(&v),
                                format!("invalid duration for --{name}: {v:?}"),
                                Some("durations look like 30s, 1m30s or 500ms".into()),
                            )
                        })?;
                        if d != 0 && d < 1_000_000 {
                            return Err(loc.at(
                                ErrorKind::InvalidFlag,
                                node.span,
                                Some(&v),
                                format!("--{name} cannot be less than 1ms"),
                                None,
                            ));
                        }
                        Ok(d)
                    }
                }
            };
            let retries = match flags.str("retries") {
                None => 0,
                Some(v) => v.parse::<u64>().map_err(|_| {
                    loc.at(
                        ErrorKind::InvalidFlag,
                        node.span,
                        Some(&v),
                        format!("invalid value for --retries: {v:?}"),
                        Some("--retries takes a whole number".into()),
                    )
                })?,
            };
            Ok(Instruction::Healthcheck(Healthcheck {
                test: Some(test),
                interval: dur("interval")?,
                timeout: dur("timeout")?,
                start_period: dur("start-period")?,
                start_interval: dur("start-interval")?,
                retries,
            }))
        }
        other => Err(loc.at(
            ErrorKind::InvalidArguments,
            node.span,
            Some(&node.args[0]),
            format!("unknown type {other:?} in HEALTHCHECK"),
            Some("try HEALTHCHECK CMD ... or HEALTHCHECK NONE".into()),
        )),
    }
}

/// ONBUILD.
fn onbuild(node: &Node, loc: &Locator) -> Result<Instruction, Diagnostic> {
    parse_flags(node, &[], loc)?;
    let Some(next) = &node.next else {
        return Err(loc.at(
            ErrorKind::InvalidArguments,
            node.span,
            None,
            "ONBUILD requires at least one argument",
            None,
        ));
    };
    match next.keyword.as_str() {
        "onbuild" => {
            return Err(loc.at(
                ErrorKind::InvalidArguments,
                node.span,
                None,
                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                None,
            ))
        }
        "from" | "maintainer" => {
            return Err(loc.at(
                ErrorKind::InvalidArguments,
                node.span,
                None,
                format!(
                    "{} isn't allowed as an ONBUILD trigger",
                    next.keyword.to_uppercase()
                ),
                None,
            ))
        }
        _ => {}
    }
    // Validate the trigger now so a typo is reported where it is written.
    from_node(next, loc)?;
    let trigger = next.original.trim().to_string();
    Ok(Instruction::Onbuild { trigger })
}

/// An unknown keyword.
fn unknown(node: &Node, loc: &Locator) -> Result<Instruction, Diagnostic> {
    let kw = node.keyword.as_str();
    let other = kw;
    let upper = other.to_uppercase();
    let hint = did_you_mean(other, KEYWORDS.iter().copied())
        .map(|s| format!("did you mean {}?", s.to_uppercase()));
    let written = node
        .original
        .split_whitespace()
        .next()
        .unwrap_or(&upper)
        .to_string();
    Err(loc.at(
        ErrorKind::UnknownInstruction,
        node.span,
        Some(&written),
        format!("unknown instruction: {upper}"),
        hint,
    ))
}
