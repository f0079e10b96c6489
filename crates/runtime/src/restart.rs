//! `run --restart`: docker's restart policies, which a detached container's supervisor
//! follows when the container's process exits.
//!
//! `no` (the default) never restarts; `on-failure[:N]` restarts after a non-zero exit, at
//! most N times when N is given; `always` and `unless-stopped` restart after any exit. None
//! restarts a container that `stop`, `kill` or `rm -f` ended: they leave a `stopped` marker
//! in the container's directory before they signal it, which the supervisor reads (and a
//! new start removes). Between runs the supervisor waits as docker does: 100 ms, doubled
//! after each restart, at most a minute, back to 100 ms after a run of 10 s or more.

use std::time::Duration;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// docker's `RestartPolicy` (`Name`: `no`, `always`, `unless-stopped`, `on-failure`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "MaximumRetryCount")]
    pub maximum_retry_count: i64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            name: "no".into(),
            maximum_retry_count: 0,
        }
    }
}

/// The marker `stop`/`kill`/`rm -f` leave in the container's directory.
pub(crate) const STOPPED_MARKER: &str = "stopped";

impl RestartPolicy {
    /// docker's syntax and messages: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
    pub fn parse(s: &str) -> Result<RestartPolicy> {
        let (name, count) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        let maximum_retry_count = match (name, count) {
            ("" | "no", None) => 0,
            ("always" | "unless-stopped", None) => 0,
            ("always" | "unless-stopped" | "no", Some(_)) => {
                bail!("maximum retry count cannot be used with restart policy '{name}'")
            }
            ("on-failure", None) => 0,
            ("on-failure", Some(c)) => match c.parse::<i64>() {
                Ok(n) if n >= 0 => n,
                Ok(_) => bail!("maximum retry count cannot be negative"),
                Err(_) => bail!("invalid restart policy format: maximum retry count must be an integer"),
            },
            _ => bail!("invalid restart policy format: unknown policy '{name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"),
        };
        Ok(RestartPolicy {
            name: if name.is_empty() { "no" } else { name }.into(),
            maximum_retry_count,
        })
    }

    /// Not `no`.
    pub fn restarts(&self) -> bool {
        self.name != "no"
    }

    /// Whether a run that ended with `code` is restarted, after `restarts` restarts so far,
    /// unless it was stopped by hand (`stopped`).
    pub(crate) fn should_restart(&self, code: i32, restarts: i64, stopped: bool) -> bool {
        if stopped {
            return false;
        }
        match self.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                code != 0 && (self.maximum_retry_count == 0 || restarts < self.maximum_retry_count)
            }
            _ => false,
        }
    }
}

/// docker's back-off before restart number `n` (0-based) after a run of `ran`.
pub(crate) fn delay(previous: Duration, ran: Duration) -> Duration {
    if ran >= Duration::from_secs(10) || previous.is_zero() {
        return Duration::from_millis(100);
    }
    (previous * 2).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_policies() {
        let p = RestartPolicy::parse("on-failure:2").unwrap();
        assert_eq!((p.name.as_str(), p.maximum_retry_count), ("on-failure", 2));
        assert!(p.should_restart(1, 0, false));
        assert!(p.should_restart(1, 1, false));
        assert!(!p.should_restart(1, 2, false));
        assert!(!p.should_restart(0, 0, false));
        let a = RestartPolicy::parse("always").unwrap();
        assert!(a.should_restart(0, 100, false));
        assert!(!a.should_restart(0, 0, true));
        assert!(!RestartPolicy::parse("no").unwrap().restarts());
        assert!(RestartPolicy::parse("always:3").is_err());
        assert!(RestartPolicy::parse("sometimes").is_err());
        assert!(RestartPolicy::parse("on-failure:x").is_err());
        assert_eq!(
            delay(Duration::ZERO, Duration::ZERO),
            Duration::from_millis(100)
        );
        assert_eq!(
            delay(Duration::from_millis(100), Duration::ZERO),
            Duration::from_millis(200)
        );
        assert_eq!(
            delay(Duration::from_secs(50), Duration::ZERO),
            Duration::from_secs(60)
        );
    }
}
