//! Typed instructions: one [`Instruction`] per AST node, flags validated, arguments still
//! unexpanded (the planner expands them with the scope of the step).

use dockerfile::Heredoc;
use serde::Serialize;

mod flags;
pub use flags::parse_duration;
mod mounts;
mod parse;

pub(crate) use parse::from_node;

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

/// What a `RUN --mount` mounts (its `type=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// Files of the context, a stage or an image (`from=`); the default.
    #[default]
    Bind,
    /// A directory kept across builds.
    Cache,
    Tmpfs,
    /// A `--secret` file.
    Secret,
    /// A `--ssh` agent socket.
    Ssh,
}

impl MountKind {
    /// The `type=` value, as written.
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Cache => "cache",
            MountKind::Tmpfs => "tmpfs",
            MountKind::Secret => "secret",
            MountKind::Ssh => "ssh",
        }
    }

    /// The kind `type=` names (lower case), if any.
    pub fn parse(s: &str) -> Option<MountKind> {
        [
            MountKind::Bind,
            MountKind::Cache,
            MountKind::Tmpfs,
            MountKind::Secret,
            MountKind::Ssh,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for MountKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `RUN --mount=...`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: MountKind,
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

/// Typed instructions of one Dockerfile's nodes, one at a time (the `check` crate reports
/// the first error as BuildKit's instruction parser does, after the lint calls before it).
pub struct InstructionParser<'a>(crate::diag::Locator<'a>);

impl<'a> InstructionParser<'a> {
    /// `source` is the Dockerfile text the nodes were parsed from (errors are located in it).
    pub fn new(source: &'a str) -> Self {
        InstructionParser(crate::diag::Locator::new(source))
    }

    /// The node as a typed instruction, or the error that rejects it.
    pub fn parse(&self, node: &dockerfile::Node) -> Result<Instruction, crate::Diagnostic> {
        from_node(node, &self.0)
    }
}
