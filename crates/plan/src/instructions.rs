//! Typed instructions: one [`Instruction`] per AST node, flags validated, arguments still
//! unexpanded (the planner expands them with the scope of the step).

use dockerfile::{Heredoc, Node};
use serde::Serialize;

use crate::diag::{did_you_mean, Diagnostic, ErrorKind, Locator};

/// Every keyword the Dockerfile syntax knows.
pub use dockerfile::INSTRUCTIONS as KEYWORDS;

/// Exec form (`["a", "b"]`) or shell form (`a b`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "form", content = "value", rename_all = "lowercase")]
pub enum Command {
    Exec(Vec<String>),
    Shell(String),
}

impl Command {
    fn display(&self) -> String {
        match self {
            Command::Exec(v) => serde_json::to_string(v).unwrap_or_default(),
            Command::Shell(s) => s.clone(),
        }
    }
}

/// `RUN --mount=...`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// bind, cache, tmpfs, secret or ssh.
    #[serde(rename = "type")]
    pub kind: String,
    pub target: Option<String>,
    pub source: Option<String>,
    /// A stage name or index, or an image, the mount's source comes from.
    pub from: Option<String>,
    pub readonly: bool,
    pub id: Option<String>,
    pub sharing: Option<String>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub required: bool,
    pub size: Option<String>,
    pub env: Option<String>,
    /// The flag's value as written (expanded like the fields), which the step's name
    /// prints as BuildKit does: in its own order, `source=` and `id=` included.
    #[serde(skip)]
    pub spec: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Run {
    pub command: Command,
    pub mounts: Vec<Mount>,
    pub network: Option<String>,
    pub security: Option<String>,
    pub heredocs: Vec<Heredoc>,
}

/// COPY and ADD.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Copy {
    /// Source paths, globs or URLs (ADD); heredoc sources appear as their `<<NAME` word.
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<String>,
    /// ADD only.
    pub checksum: Option<String>,
    /// ADD only.
    pub keep_git_dir: bool,
    /// ADD only: `--unpack` given explicitly.
    pub unpack: Option<bool>,
    pub heredocs: Vec<Heredoc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    pub name: String,
    /// The default as written (unexpanded in raw instructions; expanded in plan steps).
    pub default: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    /// `NONE` disables; otherwise `CMD` with a command.
    pub test: Option<Command>,
    /// Durations in nanoseconds, as the image config stores them (0 = inherit default).
    pub interval: u64,
    pub timeout: u64,
    pub start_period: u64,
    pub start_interval: u64,
    pub retries: u64,
}

/// A typed, validated instruction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Instruction {
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Run(Run),
    Cmd(Command),
    Entrypoint(Command),
    Shell {
        shell: Vec<String>,
    },
    Copy(Copy),
    Add(Copy),
    Env {
        vars: Vec<KeyValue>,
    },
    Label {
        labels: Vec<KeyValue>,
    },
    Arg {
        args: Vec<ArgDecl>,
    },
    Expose {
        ports: Vec<String>,
    },
    Volume {
        paths: Vec<String>,
    },
    User {
        user: String,
    },
    Workdir {
        path: String,
    },
    StopSignal {
        signal: String,
    },
    Healthcheck(Healthcheck),
    Onbuild {
        trigger: String,
    },
    Maintainer {
        name: String,
    },
}

impl Instruction {
    /// The keyword, upper-case.
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::From { .. } => "FROM",
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Shell { .. } => "SHELL",
            Instruction::Copy(_) => "COPY",
            Instruction::Add(_) => "ADD",
            Instruction::Env { .. } => "ENV",
            Instruction::Label { .. } => "LABEL",
            Instruction::Arg { .. } => "ARG",
            Instruction::Expose { .. } => "EXPOSE",
            Instruction::Volume { .. } => "VOLUME",
            Instruction::User { .. } => "USER",
            Instruction::Workdir { .. } => "WORKDIR",
            Instruction::StopSignal { .. } => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Onbuild { .. } => "ONBUILD",
            Instruction::Maintainer { .. } => "MAINTAINER",
        }
    }

    /// Whether the step produces a filesystem layer (and a numbered progress step).
    pub fn creates_layer(&self) -> bool {
        matches!(
            self,
            Instruction::Run(_)
                | Instruction::Copy(_)
                | Instruction::Add(_)
                | Instruction::Workdir { .. }
        )
    }

    /// A one-line rendering with expanded values, as progress output shows a step.
    pub fn display(&self) -> String {
        let kw = self.keyword();
        let kv = |v: &[KeyValue]| {
            v.iter()
                .map(|p| format!("{}={}", p.key, quote_if_needed(&p.value)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        match self {
            Instruction::From {
                image,
                name,
                platform,
            } => {
                let mut s = String::from("FROM ");
                if let Some(p) = platform {
                    s.push_str(&format!("--platform={p} "));
                }
                s.push_str(image);
                if let Some(n) = name {
                    s.push_str(&format!(" AS {n}"));
                }
                s
            }
            Instruction::Run(r) => {
                let mut s = String::from("RUN ");
                for m in &r.mounts {
                    if !m.spec.is_empty() {
                        s.push_str(&format!("--mount={} ", m.spec));
                        continue;
                    }
                    s.push_str(&format!("--mount=type={}", m.kind));
                    if let Some(t) = &m.target {
                        s.push_str(&format!(",target={t}"));
                    }
                    if let Some(f) = &m.from {
                        s.push_str(&format!(",from={f}"));
                    }
                    s.push(' ');
                }
                if let Some(n) = &r.network {
                    s.push_str(&format!("--network={n} "));
                }
                s.push_str(&r.command.display());
                s
            }
            Instruction::Cmd(c) | Instruction::Entrypoint(c) => format!("{kw} {}", c.display()),
            Instruction::Shell { shell } => {
                format!("SHELL {}", serde_json::to_string(shell).unwrap_or_default())
            }
            Instruction::Copy(c) | Instruction::Add(c) => {
                let mut s = format!("{kw} ");
                if let Some(f) = &c.from {
                    s.push_str(&format!("--from={f} "));
                }
                if let Some(o) = &c.chown {
                    s.push_str(&format!("--chown={o} "));
                }
                if let Some(m) = &c.chmod {
                    s.push_str(&format!("--chmod={m} "));
                }
                if c.link {
                    s.push_str("--link ");
                }
                if c.parents {
                    s.push_str("--parents ");
                }
                for e in &c.excludes {
                    s.push_str(&format!("--exclude={e} "));
                }
                s.push_str(&c.sources.join(" "));
                s.push(' ');
                s.push_str(&c.dest);
                s
            }
            Instruction::Env { vars } => format!("ENV {}", kv(vars)),
            Instruction::Label { labels } => format!("LABEL {}", kv(labels)),
            Instruction::Arg { args } => {
                let parts: Vec<String> = args
                    .iter()
                    .map(|a| match &a.default {
                        Some(d) => format!("{}={}", a.name, quote_if_needed(d)),
                        None => a.name.clone(),
                    })
                    .collect();
                format!("ARG {}", parts.join(" "))
            }
            Instruction::Expose { ports } => format!("EXPOSE {}", ports.join(" ")),
            Instruction::Volume { paths } => {
                format!(
                    "VOLUME {}",
                    serde_json::to_string(paths).unwrap_or_default()
                )
            }
            Instruction::User { user } => format!("USER {user}"),
            Instruction::Workdir { path } => format!("WORKDIR {path}"),
            Instruction::StopSignal { signal } => format!("STOPSIGNAL {signal}"),
            Instruction::Healthcheck(h) => match &h.test {
                None => "HEALTHCHECK NONE".into(),
                Some(c) => format!("HEALTHCHECK CMD {}", c.display()),
            },
            Instruction::Onbuild { trigger } => format!("ONBUILD {trigger}"),
            Instruction::Maintainer { name } => format!("MAINTAINER {name}"),
        }
    }
}

fn quote_if_needed(v: &str) -> String {
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c == '"') {
        serde_json::to_string(v).unwrap_or_default()
    } else {
        v.to_string()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    Bool,
    Str,
    List,
}

/// Parsed leading flags of one instruction.
#[derive(Default)]
struct Flags {
    values: Vec<(&'static str, Vec<String>)>,
}

impl Flags {
    fn str(&self, name: &str) -> Option<String> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.last().cloned())
    }
    fn list(&self, name: &str) -> Vec<String> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
    fn bool(&self, name: &str) -> Option<bool> {
        self.str(name).map(|v| v == "true")
    }
}

fn parse_flags(
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

fn command_of(node: &Node) -> Command {
    if node.json {
        Command::Exec(node.args.clone())
    } else {
        match node.args.first() {
            Some(s) => Command::Shell(s.clone()),
            None => Command::Exec(Vec::new()),
        }
    }
}

/// Go-style duration (`1m30s`, `500ms`, `1.5h`) in nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Option<u64> {
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

fn need_args(node: &Node, min: usize, what: &str, loc: &Locator) -> Result<(), Diagnostic> {
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

/// Parse `--mount` values (BuildKit's CSV `key=value` form).
fn parse_mount(spec: &str, node: &Node, loc: &Locator) -> Result<Mount, Diagnostic> {
    let err = |msg: String| {
        loc.at(
            ErrorKind::InvalidFlag,
            node.span,
            Some(spec),
            msg,
            Some("e.g. --mount=type=cache,target=/root/.cache".into()),
        )
    };
    let mut m = Mount {
        kind: "bind".into(),
        spec: spec.to_string(),
        ..Mount::default()
    };
    let mut readonly: Option<bool> = None;
    let fields: Vec<&str> = spec.split(',').collect();
    for field in fields.iter().filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_lowercase(), Some(v.trim())),
            None => (field.trim().to_lowercase(), None),
        };
        let need = |v: Option<&str>| {
            v.map(str::to_string)
                .ok_or_else(|| err(format!("invalid mount field {field:?}: missing a value")))
        };
        let num = |v: Option<&str>, octal: bool| -> Result<u32, Diagnostic> {
            let v =
                v.ok_or_else(|| err(format!("invalid mount field {field:?}: missing a value")))?;
            let r = if octal {
                u32::from_str_radix(v, 8)
            } else {
                v.parse()
            };
            r.map_err(|_| err(format!("invalid value for {key}: {v}")))
        };
        let boolean = |v: Option<&str>| -> Result<bool, Diagnostic> {
            match v.map(str::to_lowercase).as_deref() {
                None | Some("true") | Some("1") => Ok(true),
                Some("false") | Some("0") => Ok(false),
                Some(o) => Err(err(format!("invalid value for {key}: {o}"))),
            }
        };
        match key.as_str() {
            "type" => {
                let t = need(value)?.to_lowercase();
                if !["bind", "cache", "tmpfs", "secret", "ssh"].contains(&t.as_str()) {
                    return Err(err(format!("unsupported mount type {t:?}")));
                }
                m.kind = t;
            }
            "target" | "dst" | "destination" => m.target = Some(need(value)?),
            "source" | "src" => m.source = Some(need(value)?),
            "from" => m.from = Some(need(value)?),
            "readonly" | "ro" => readonly = Some(boolean(value)?),
            "readwrite" | "rw" => readonly = Some(!boolean(value)?),
            "id" => m.id = Some(need(value)?),
            "sharing" => {
                let s = need(value)?.to_lowercase();
                if !["shared", "private", "locked"].contains(&s.as_str()) {
                    return Err(err(format!("unsupported sharing value {s:?}")));
                }
                m.sharing = Some(s);
            }
            "mode" => m.mode = Some(num(value, true)?),
            "uid" => m.uid = Some(num(value, false)?),
            "gid" => m.gid = Some(num(value, false)?),
            "required" => m.required = boolean(value)?,
            "size" => m.size = Some(need(value)?),
            "env" => m.env = Some(need(value)?),
            _ => return Err(err(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    m.readonly = readonly.unwrap_or(m.kind == "bind");
    match m.kind.as_str() {
        "secret" => {
            if m.id.is_none() && m.target.is_none() && m.env.is_none() {
                return Err(err("secret mount needs an id or a target".into()));
            }
            if m.id.is_none() {
                if let Some(t) = &m.target {
                    m.id = t.rsplit('/').next().map(str::to_string);
                }
            }
            if m.target.is_none() && m.env.is_none() {
                m.target = m.id.as_ref().map(|id| format!("/run/secrets/{id}"));
            }
        }
        "ssh" => {
            if m.id.is_none() {
                m.id = Some("default".into());
            }
        }
        _ => {
            if m.target.is_none() {
                return Err(err("mount target is required".into()));
            }
        }
    }
    Ok(m)
}

/// Convert one AST node into a typed instruction (unexpanded).
pub(crate) fn from_node(node: &Node, loc: &Locator) -> Result<Instruction, Diagnostic> {
    use FlagKind::*;
    let kw = node.keyword.as_str();
    let inst = match kw {
        "from" => {
            let flags = parse_flags(node, &[("platform", Str)], loc)?;
            let (image, name) = match node.args.as_slice() {
                [image] => (image.clone(), None),
                [image, as_, name] if as_.eq_ignore_ascii_case("as") => {
                    (image.clone(), Some(name.clone()))
                }
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
            Instruction::From {
                image,
                name,
                platform: flags.str("platform"),
            }
        }
        "run" => {
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
            Instruction::Run(Run {
                command: command_of(node),
                mounts,
                network,
                security,
                heredocs: node.heredocs.clone(),
            })
        }
        "cmd" => {
            parse_flags(node, &[], loc)?;
            Instruction::Cmd(command_of(node))
        }
        "entrypoint" => {
            parse_flags(node, &[], loc)?;
            Instruction::Entrypoint(command_of(node))
        }
        "shell" => {
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
            Instruction::Shell {
                shell: node.args.clone(),
            }
        }
        "copy" | "add" => {
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
                Instruction::Add(c)
            } else {
                Instruction::Copy(c)
            }
        }
        "env" | "label" => {
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
                Instruction::Env { vars: pairs }
            } else {
                Instruction::Label { labels: pairs }
            }
        }
        "arg" => {
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
            Instruction::Arg { args }
        }
        "expose" => {
            parse_flags(node, &[], loc)?;
            need_args(node, 1, "at least one argument", loc)?;
            Instruction::Expose {
                ports: node.args.clone(),
            }
        }
        "volume" => {
            parse_flags(node, &[], loc)?;
            need_args(node, 1, "at least one argument", loc)?;
            Instruction::Volume {
                paths: node.args.clone(),
            }
        }
        "user" | "workdir" | "stopsignal" | "maintainer" => {
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
                "user" => Instruction::User { user: value },
                "workdir" => Instruction::Workdir { path: value },
                "stopsignal" => Instruction::StopSignal { signal: value },
                _ => Instruction::Maintainer { name: value },
            }
        }
        "healthcheck" => {
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
                    Instruction::Healthcheck(Healthcheck {
                        test: None,
                        interval: 0,
                        timeout: 0,
                        start_period: 0,
                        start_interval: 0,
                        retries: 0,
                    })
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
                    Instruction::Healthcheck(Healthcheck {
                        test: Some(test),
                        interval: dur("interval")?,
                        timeout: dur("timeout")?,
                        start_period: dur("start-period")?,
                        start_interval: dur("start-interval")?,
                        retries,
                    })
                }
                other => {
                    return Err(loc.at(
                        ErrorKind::InvalidArguments,
                        node.span,
                        Some(&node.args[0]),
                        format!("unknown type {other:?} in HEALTHCHECK"),
                        Some("try HEALTHCHECK CMD ... or HEALTHCHECK NONE".into()),
                    ))
                }
            }
        }
        "onbuild" => {
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
            Instruction::Onbuild { trigger }
        }
        other => {
            let upper = other.to_uppercase();
            let hint = did_you_mean(other, KEYWORDS.iter().copied())
                .map(|s| format!("did you mean {}?", s.to_uppercase()));
            let written = node
                .original
                .split_whitespace()
                .next()
                .unwrap_or(&upper)
                .to_string();
            return Err(loc.at(
                ErrorKind::UnknownInstruction,
                node.span,
                Some(&written),
                format!("unknown instruction: {upper}"),
                hint,
            ));
        }
    };
    Ok(inst)
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
