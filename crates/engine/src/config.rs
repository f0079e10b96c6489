//! How each metadata instruction changes an image config, as BuildKit's dispatcher does.

use std::collections::{BTreeMap, HashMap};

use plan::{Command, Instruction};
use store::image::RunConfig;

/// The shell used for shell-form commands when the image sets none.
pub const DEFAULT_SHELL: &[&str] = &["/bin/sh", "-c"];

/// Per-stage state the config rules need besides the config itself.
#[derive(Clone, Debug, Default)]
pub struct StageState {
    /// A CMD was set in this stage (then ENTRYPOINT keeps it; otherwise ENTRYPOINT clears
    /// the CMD inherited from the base).
    pub cmd_set: bool,
    /// MAINTAINER value (the config's `author`).
    pub author: Option<String>,
    /// Where each name is in the config's Env, so that an ENV costs the same with 10 or
    /// 100,000 variables set (a search of Env per ENV made 100,000 ENV lines quadratic).
    /// Rebuilt when Env changed behind its back.
    env_index: Option<EnvIndex>,
}

#[derive(Clone, Debug, Default)]
struct EnvIndex {
    slots: HashMap<String, usize>,
    /// The Env length the index describes.
    len: usize,
}

fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

impl StageState {
    /// Set `key=value` in `env`: in place where `key` is (its first entry), else appended.
    fn set_env(&mut self, env: &mut Vec<String>, key: &str, value: &str) {
        let stale = self.env_index.as_ref().is_none_or(|ix| {
            ix.len != env.len()
                || ix
                    .slots
                    .get(key)
                    .is_some_and(|&i| env.get(i).is_none_or(|e| env_key(e) != key))
        });
        if stale {
            let mut slots = HashMap::with_capacity(env.len());
            for (i, e) in env.iter().enumerate() {
                slots.entry(env_key(e).to_string()).or_insert(i);
            }
            self.env_index = Some(EnvIndex {
                slots,
                len: env.len(),
            });
        }
        let ix = self.env_index.get_or_insert_with(EnvIndex::default);
        let entry = format!("{key}={value}");
        match ix.slots.get(key).copied().filter(|&i| i < env.len()) {
            Some(i) => env[i] = entry,
            None => {
                ix.slots.insert(key.to_string(), env.len());
                env.push(entry);
                ix.len = env.len();
            }
        }
    }
}

fn shell_of(cfg: &RunConfig) -> Vec<String> {
    cfg.shell
        .clone()
        .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect())
}

/// A command as the config stores it: exec form as is, shell form through the shell.
pub fn command_args(cfg: &RunConfig, c: &Command) -> Vec<String> {
    match c {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => {
            let mut v = shell_of(cfg);
            v.push(s.clone());
            v
        }
    }
}

/// The WORKDIR BuildKit writes to the config (dispatchWorkdir, through
/// `system.NormalizeWorkdir`): an absolute path as written (`/root/` stays `/root/`), a
/// relative one `path.Join("/", current, p)`, which Go cleans.
pub fn resolve_workdir(current: Option<&str>, p: &str) -> String {
    if p.starts_with('/') {
        p.to_string()
    } else {
        clean_path(&format!("{}/{}", current.unwrap_or("/"), p))
    }
}

/// Go's `path.Clean` of `/` + `p`: the directory a WORKDIR names on the file system (and
/// what docker chdirs to, as it cleans the config's WorkingDir).
pub use escape::clean::rooted as clean_path;

/// `fmt.Sprintf("%q", args)` of a Go string slice, as BuildKit writes CMD and ENTRYPOINT
/// into the history: `["node" "dist/server.js"]`.
pub fn go_quote_list(args: &[String]) -> String {
    let q: Vec<String> = args.iter().map(|a| escape::quote(a.as_bytes())).collect();
    format!("[{}]", q.join(" "))
}

/// Apply a (planned, expanded) instruction to the runtime config. Returns false for
/// instructions that change no config (RUN, COPY, ADD, ARG).
pub fn apply(cfg: &mut RunConfig, st: &mut StageState, inst: &Instruction) -> bool {
    match inst {
        Instruction::Env { vars } => {
            let env = cfg.env.get_or_insert_with(Vec::new);
            for kv in vars {
                st.set_env(env, &kv.key, &kv.value);
            }
        }
        Instruction::Label { labels } => {
            let map = cfg.labels.get_or_insert_with(BTreeMap::new);
            for kv in labels {
                map.insert(kv.key.clone(), kv.value.clone());
            }
        }
        Instruction::Expose { ports } => {
            let map = cfg.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in ports {
                map.insert(p.clone(), serde_json::json!({}));
            }
        }
        Instruction::Volume { paths } => {
            let map = cfg.volumes.get_or_insert_with(BTreeMap::new);
            for p in paths {
                map.insert(p.clone(), serde_json::json!({}));
            }
        }
        Instruction::User { user } => cfg.user = Some(user.clone()),
        Instruction::Workdir { path } => {
            cfg.working_dir = Some(resolve_workdir(
                cfg.working_dir.as_deref().filter(|w| !w.is_empty()),
                path,
            ))
        }
        Instruction::StopSignal { signal } => cfg.stop_signal = Some(signal.clone()),
        Instruction::Shell { shell } => cfg.shell = Some(shell.clone()),
        Instruction::Cmd(c) => {
            // BuildKit's dispatchCmd: `ArgsEscaped = true`, for both forms.
            cfg.cmd = Some(command_args(cfg, c));
            cfg.extra
                .insert("ArgsEscaped".into(), serde_json::Value::Bool(true));
            st.cmd_set = true;
        }
        Instruction::Entrypoint(c) => {
            // BuildKit's dispatchEntrypoint sets no ArgsEscaped (only dispatchCmd does).
            cfg.entrypoint = Some(command_args(cfg, c));
            if !st.cmd_set {
                cfg.cmd = None;
            }
        }
        Instruction::Healthcheck(h) => {
            let mut m = serde_json::Map::new();
            match &h.test {
                None => {
                    m.insert("Test".into(), serde_json::json!(["NONE"]));
                }
                Some(c) => {
                    let test = match c {
                        Command::Exec(v) => std::iter::once("CMD".to_string())
                            .chain(v.iter().cloned())
                            .collect::<Vec<_>>(),
                        Command::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                    };
                    m.insert("Test".into(), serde_json::json!(test));
                    for (k, v) in [
                        ("Interval", h.interval),
                        ("Timeout", h.timeout),
                        ("StartPeriod", h.start_period),
                        ("StartInterval", h.start_interval),
                        ("Retries", h.retries),
                    ] {
                        if v != 0 {
                            m.insert(k.into(), serde_json::json!(v));
                        }
                    }
                }
            }
            cfg.healthcheck = Some(serde_json::Value::Object(m));
        }
        Instruction::Onbuild { trigger } => cfg
            .on_build
            .get_or_insert_with(Vec::new)
            .push(trigger.clone()),
        Instruction::Maintainer { name } => st.author = Some(name.clone()),
        Instruction::From { .. }
        | Instruction::Run(_)
        | Instruction::Copy(_)
        | Instruction::Add(_)
        | Instruction::Arg { .. } => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_of(df: &str) -> RunConfig {
        let p = plan::plan(df, &plan::PlanOptions::default(), &plan::Unresolved).unwrap();
        let mut cfg = RunConfig::default();
        let mut st = StageState::default();
        for s in &p.target_stage().steps {
            apply(&mut cfg, &mut st, &s.instruction);
        }
        cfg
    }

    #[test]
    fn entrypoint_resets_inherited_cmd_only() {
        let c = cfg_of("FROM scratch\nCMD [\"a\"]\nENTRYPOINT [\"e\"]\n");
        assert_eq!(c.cmd, Some(vec!["a".to_string()]));
        let mut cfg = RunConfig {
            cmd: Some(vec!["inherited".into()]),
            ..RunConfig::default()
        };
        let mut st = StageState::default();
        apply(
            &mut cfg,
            &mut st,
            &Instruction::Entrypoint(Command::Exec(vec!["e".into()])),
        );
        assert_eq!(cfg.cmd, None);
    }

    #[test]
    fn shell_form_uses_shell() {
        let c = cfg_of("FROM scratch\nSHELL [\"ls\"]\nENTRYPOINT my entrypoint\n");
        assert_eq!(
            c.entrypoint,
            Some(vec!["ls".to_string(), "my entrypoint".to_string()])
        );
        let c = cfg_of("FROM scratch\nCMD echo hi\n");
        assert_eq!(
            c.cmd,
            Some(vec![
                "/bin/sh".to_string(),
                "-c".to_string(),
                "echo hi".to_string()
            ])
        );
    }

    #[test]
    fn env_index_follows_the_config() {
        let mut cfg = RunConfig {
            env: Some(vec!["PATH=/bin".into(), "A=1".into(), "A=dup".into()]),
            ..RunConfig::default()
        };
        let mut st = StageState::default();
        let env = |pairs: &[(&str, &str)]| Instruction::Env {
            vars: pairs
                .iter()
                .map(|(k, v)| plan::KeyValue {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
        };
        apply(&mut cfg, &mut st, &env(&[("A", "2"), ("B", "3")]));
        // Env changed behind the index's back: it is rebuilt, not trusted.
        cfg.env.as_mut().unwrap().insert(0, "C=0".into());
        apply(
            &mut cfg,
            &mut st,
            &env(&[("B", "4"), ("C", "5"), ("D", "6")]),
        );
        assert_eq!(
            cfg.env.unwrap(),
            vec!["C=5", "PATH=/bin", "A=2", "A=dup", "B=4", "D=6"]
        );
        let mut cfg = RunConfig::default();
        let mut st = StageState::default();
        for i in 0..1000 {
            apply(
                &mut cfg,
                &mut st,
                &env(&[(&format!("V{}", i % 300), &i.to_string())]),
            );
        }
        let env = cfg.env.unwrap();
        assert_eq!(env.len(), 300);
        assert_eq!(env[0], "V0=900");
        assert_eq!(env[299], "V299=899");
    }

    #[test]
    fn env_label_expose_workdir_healthcheck() {
        let c = cfg_of("FROM scratch\nENV A=1 B=2\nENV A=3\nLABEL x=y\nEXPOSE 80 53/udp\nWORKDIR a\nWORKDIR ../b/./c\nHEALTHCHECK --interval=5s CMD true\n");
        assert_eq!(c.env, Some(vec!["A=3".to_string(), "B=2".to_string()]));
        assert_eq!(c.labels.unwrap().get("x").map(String::as_str), Some("y"));
        assert_eq!(
            c.exposed_ports.unwrap().keys().cloned().collect::<Vec<_>>(),
            vec!["53/udp", "80/tcp"]
        );
        assert_eq!(c.working_dir.as_deref(), Some("/b/c"));
        assert_eq!(
            c.healthcheck.unwrap(),
            serde_json::json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000u64})
        );
    }

    /// Issue 11, item 3: BuildKit's dispatchWorkdir keeps an absolute WORKDIR as written and
    /// joins (and cleans) a relative one onto the previous one.
    #[test]
    fn workdir_absolute_as_written_relative_joined() {
        let c = cfg_of("FROM scratch\nWORKDIR /root/\n");
        assert_eq!(c.working_dir.as_deref(), Some("/root/"));
        let c = cfg_of("FROM scratch\nWORKDIR /root/\nWORKDIR sub/\n");
        assert_eq!(c.working_dir.as_deref(), Some("/root/sub"));
        let c = cfg_of("FROM scratch\nWORKDIR /x/../y/.\n");
        assert_eq!(c.working_dir.as_deref(), Some("/x/../y/."));
        let c = cfg_of("FROM scratch\nWORKDIR /x/../y/.\nWORKDIR ./z\n");
        assert_eq!(c.working_dir.as_deref(), Some("/y/z"));
        assert_eq!(clean_path("/x/../y/."), "/y");
        assert_eq!(clean_path("/root/"), "/root");
    }

    /// Issue 11, item 5: CMD sets ArgsEscaped (both forms), ENTRYPOINT never does
    /// (dispatchCmd / dispatchEntrypoint in BuildKit's convert.go; Docker 20.10 agrees).
    #[test]
    fn args_escaped_from_cmd_only() {
        for df in [
            "FROM scratch\nENTRYPOINT [\"e\"]\n",
            "FROM scratch\nENTRYPOINT e x\n",
        ] {
            assert_eq!(cfg_of(df).extra.get("ArgsEscaped"), None, "{df}");
        }
        for df in [
            "FROM scratch\nCMD [\"c\"]\n",
            "FROM scratch\nCMD c x\n",
            "FROM scratch\nCMD c\nENTRYPOINT [\"e\"]\n",
        ] {
            assert_eq!(
                cfg_of(df).extra.get("ArgsEscaped"),
                Some(&serde_json::Value::Bool(true)),
                "{df}"
            );
        }
    }

    #[test]
    fn history_lists_quote_like_go() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            go_quote_list(&v(&["node", "dist/server.js"])),
            r#"["node" "dist/server.js"]"#
        );
        assert_eq!(
            go_quote_list(&v(&["a \"b\"", "c\\d\n"])),
            r#"["a \"b\"" "c\\d\n"]"#
        );
        assert_eq!(go_quote_list(&[]), "[]");
    }
}
