//! `docker exec`: a new process in a running detached container ("join a running
//! container").
//!
//! The container's pid 1 is found in its `state.json` (host pid and start time); a pidfd
//! of it is opened and the start time checked again after the open, so the pidfd is that
//! process and never a recycled pid. The executor ([`exec::join`]) joins its namespaces
//! through that pidfd and starts the process with the container's confinement
//! ([`spec::confinement`]: the same seccomp filter and `no_new_privs`; the executor gives
//! it the same capability set). The process is in the container's pid namespace, so it
//! dies when the container stops.
//!
//! As docker: the environment is the container's (image ENV, `run -e`, docker's defaults)
//! with the exec's `-e` replacing or adding variables (a bare `KEY` unsets it), `TERM=xterm`
//! with a tty; USER and the working directory default to the container's. Exit codes: the
//! process's, 126 when it cannot be started (not executable, unknown user, missing working
//! directory), 127 when the command is not found, 1 when the container is not running.

use std::path::PathBuf;
use std::sync::Arc;

use crate::container::{Container, Status};
use crate::foreground::{attached, Attach};
use crate::spec::{self, env_key, env_value};
use crate::{signal, RunError};

/// docker's exit code for an error of the daemon (the container is not running, ...).
pub const EXIT_ERROR: u8 = 1;
/// docker's exit code when the exec'd command cannot be started.
pub const EXIT_CANNOT_EXEC: u8 = 126;
/// docker's exit code when the exec'd command is not found.
pub const EXIT_NOT_FOUND: u8 = 127;

/// What `docker exec` runs, in docker's terms.
#[derive(Debug, Clone, Default)]
pub struct Exec {
    /// The command and its arguments (not empty).
    pub command: Vec<String>,
    /// `KEY=VALUE`, or a bare `KEY`: this process's value of `KEY`, else `KEY` unset.
    pub env: Vec<String>,
    /// `name|uid[:group|gid]`; the container's USER when `None`.
    pub user: Option<String>,
    /// An absolute working directory (it must exist); the container's when `None`.
    pub workdir: Option<String>,
    /// A pseudo-terminal.
    pub tty: bool,
    /// Start the process and return at once; it runs on, its output discarded.
    pub detach: bool,
}

impl Container {
    /// Run `e` in this container (which must be running) attached to `attach`: the
    /// process's exit code, or why it could not be run with docker's code. With
    /// [`Exec::detach`], 0 once the process runs.
    pub fn exec(&self, e: &Exec, attach: Attach) -> Result<u8, RunError> {
        let not_running = || RunError {
            code: EXIT_ERROR,
            message: format!("container {} is not running", self.config.id),
        };
        if self.status() != Status::Running {
            return Err(not_running());
        }
        let st = &self.state;
        let Some(pidfd) = signal::pidfd_open(st.pid) else {
            return Err(not_running());
        };
        // The pidfd pins a process: if the pid still has the recorded start time after it
        // was opened, the pidfd is the container's pid 1.
        if !crate::container::alive(st.pid, st.pid_start) {
            return Err(not_running());
        }
        let mut spec = self.join_spec(e, Arc::new(pidfd))?;
        if e.detach {
            spec.detach = true;
            let running = exec::join(&spec).map_err(|err| self.exec_error(err))?;
            running.detach();
            return Ok(0);
        }
        if e.tty {
            spec.tty = true;
            spec.winsize = attach.winsize();
        } else {
            spec.stdin = if attach.interactive {
                exec::Stdio::Inherit
            } else {
                exec::Stdio::Null
            };
            spec.stdout = exec::Stdio::Inherit;
            spec.stderr = exec::Stdio::Inherit;
        }
        attached(spec.tty, attach, Vec::new(), || {
            exec::join(&spec).map_err(|err| self.exec_error(err))
        })
    }

    /// The executor's spec: the container's environment, user, working directory and
    /// confinement with the exec's overrides.
    pub(crate) fn join_spec(
        &self,
        e: &Exec,
        target: Arc<std::os::fd::OwnedFd>,
    ) -> Result<exec::JoinSpec, RunError> {
        let c = &self.config;
        let usage = |message: String| RunError {
            code: crate::EXIT_START,
            message,
        };
        if e.command.is_empty() {
            return Err(usage("exec needs a command to run".into()));
        }
        let cwd = match e.workdir.as_deref() {
            None | Some("") => c.cwd.clone(),
            Some(w) if !w.starts_with('/') => {
                return Err(usage(format!(
                    "the working directory '{w}' is invalid, it needs to be an absolute path"
                )))
            }
            Some(w) => w.to_string(),
        };
        let user = match e.user.as_deref() {
            Some(u) if !u.is_empty() => Some(u.to_string()),
            _ => c.user.clone(),
        };
        let overrides = e
            .env
            .iter()
            .map(|v| env_value(v))
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(|err| usage(format!("{err:#}")))?;
        let mut env = c.env.clone();
        // HOME is the container user's home unless the image or `run -e` set it: another
        // user gets their own from passwd (the executor adds it), as docker's exec does.
        if user != c.user {
            let default_home = format!("HOME={}", spec::home_dir(&c.lower, c.user.as_deref()));
            env.retain(|v| *v != default_home);
        }
        if e.tty && !env.iter().any(|v| env_key(v) == "TERM") {
            env.push("TERM=xterm".into());
        }
        let env = replace_or_append(env, &overrides);
        let confinement = spec::confinement(c).map_err(|err| usage(format!("{err:#}")))?;
        let mut spec = exec::JoinSpec::new(target, self.state.pid, e.command.clone());
        spec.env = env;
        spec.cwd = PathBuf::from(cwd);
        spec.user = user;
        spec.seccomp = confinement.seccomp;
        spec.no_new_privs = confinement.no_new_privs;
        // The container's cgroup: its limits hold for what runs in it.
        let root = crate::cgroup::root().unwrap_or_default();
        if let Some(cg) = crate::cgroup::Cgroup::existing(&root, &c.id, &c.resources) {
            spec.cgroups = cg.dirs;
        }
        Ok(spec)
    }

    fn exec_error(&self, e: exec::Error) -> RunError {
        let code = match &e {
            exec::Error::Gone => {
                return RunError {
                    code: EXIT_ERROR,
                    message: format!("container {} is not running", self.config.id),
                }
            }
            exec::Error::Exec {
                kind: exec::ExecFailure::NotFound,
                ..
            } => EXIT_NOT_FOUND,
            _ => EXIT_CANNOT_EXEC,
        };
        RunError {
            code,
            message: e.to_string(),
        }
    }
}

/// docker's `ReplaceOrAppendEnvValues`: each override replaces the variable of its name or
/// is appended; a bare `KEY` removes `KEY`.
fn replace_or_append(mut env: Vec<String>, overrides: &[String]) -> Vec<String> {
    for o in overrides {
        let key = env_key(o);
        let pos = env.iter().position(|v| env_key(v) == key);
        match (o.contains('='), pos) {
            (true, Some(i)) => env[i] = o.clone(),
            (true, None) => env.push(o.clone()),
            (false, Some(i)) => {
                env.remove(i);
            }
            (false, None) => {}
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_append_and_unset() {
        let env = vec!["PATH=/bin".to_string(), "A=1".into(), "B=2".into()];
        let over = vec!["A=x".to_string(), "C=3".into(), "B".into(), "NOPE".into()];
        assert_eq!(
            replace_or_append(env, &over),
            vec!["PATH=/bin", "A=x", "C=3"]
        );
    }
}
