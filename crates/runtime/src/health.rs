//! HEALTHCHECK for detached containers: the image's `Healthcheck` merged with `run
//! --health-*` as docker merges them, and the probe loop the supervisor runs.
//!
//! Every `Interval` the supervisor starts the probe *inside* the container (`exec::join`,
//! the container's confinement and cgroup, as `strata exec`): `CMD-SHELL` through
//! `/bin/sh -c`, `CMD` as an argv. Exit 0 is a success; anything else, a probe that cannot
//! start, or one still running after `Timeout` (killed) is a failure. docker's rules: the
//! status starts `starting`; a success makes it `healthy`; `Retries` consecutive failures
//! make it `unhealthy`, but failures during `StartPeriod` do not count (while still
//! `starting`). The last 5 results are kept in `state.json` with their output (4 KiB each).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// docker's defaults (`defaultProbeInterval`, `defaultProbeTimeout`, retries).
const DEFAULT_INTERVAL: i64 = 30_000_000_000;
const DEFAULT_TIMEOUT: i64 = 30_000_000_000;
const DEFAULT_RETRIES: i64 = 3;
/// docker keeps 5 results and 4 KiB of each probe's output.
const MAX_LOG: usize = 5;
const MAX_OUTPUT: usize = 4096;

/// docker's `HealthConfig` (durations in nanoseconds; 0 is "inherit or default").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    #[serde(rename = "Test", default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(rename = "Interval", default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(rename = "Timeout", default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(rename = "StartPeriod", default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(rename = "Retries", default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// `run`'s health flags, in docker's terms.
#[derive(Debug, Clone, Default)]
pub struct HealthOpts {
    /// `--health-cmd` (run with `/bin/sh -c`).
    pub cmd: Option<String>,
    /// `--health-interval`, `--health-timeout`, `--health-start-period` (nanoseconds).
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub start_period: Option<i64>,
    /// `--health-retries`.
    pub retries: Option<i64>,
    /// `--no-healthcheck`.
    pub none: bool,
    /// A whole test (`["CMD", ...]`, `["CMD-SHELL", "..."]`, `["NONE"]`), as compose's
    /// `healthcheck.test` gives it; over `cmd`.
    pub test: Option<Vec<String>>,
}

impl HealthOpts {
    /// The container's healthcheck: the flags over the image's (docker's merge: a field the
    /// flags leave unset comes from the image); `None` when there is none or it is disabled.
    pub(crate) fn merge(
        &self,
        image: Option<&serde_json::Value>,
    ) -> anyhow::Result<Option<Healthcheck>> {
        let flags_set = self.cmd.is_some()
            || self.test.is_some()
            || self.interval.is_some()
            || self.timeout.is_some()
            || self.start_period.is_some()
            || self.retries.is_some();
        if self.none {
            if flags_set {
                anyhow::bail!("--no-healthcheck conflicts with --health-* options");
            }
            return Ok(None);
        }
        for (name, v) in [
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
        ] {
            if let Some(v) = v {
                if v != 0 && v < 1_000_000 {
                    anyhow::bail!("{name} in Healthcheck cannot be less than 1ms");
                }
            }
        }
        if self.retries.is_some_and(|r| r < 0) {
            anyhow::bail!("Retries in Healthcheck cannot be negative");
        }
        let mut h: Healthcheck = image
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        if let Some(c) = &self.cmd {
            h.test = vec!["CMD-SHELL".into(), c.clone()];
        }
        if let Some(t) = &self.test {
            h.test = t.clone();
        }
        h.interval = self.interval.unwrap_or(h.interval);
        h.timeout = self.timeout.unwrap_or(h.timeout);
        h.start_period = self.start_period.unwrap_or(h.start_period);
        h.retries = self.retries.unwrap_or(h.retries);
        match h.test.first().map(String::as_str) {
            None | Some("NONE") => Ok(None),
            Some("CMD") | Some("CMD-SHELL") if h.test.len() > 1 => Ok(Some(h)),
            _ => Ok(None),
        }
    }
}

impl Healthcheck {
    /// The probe's argv.
    pub(crate) fn argv(&self) -> Vec<String> {
        match self.test.first().map(String::as_str) {
            Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), self.test[1..].join(" ")],
            _ => self.test[1..].to_vec(),
        }
    }

    fn nanos(v: i64, default: i64) -> Duration {
        Duration::from_nanos(if v > 0 { v as u64 } else { default as u64 })
    }

    pub(crate) fn interval(&self) -> Duration {
        Self::nanos(self.interval, DEFAULT_INTERVAL)
    }

    pub(crate) fn timeout(&self) -> Duration {
        Self::nanos(self.timeout, DEFAULT_TIMEOUT)
    }

    pub(crate) fn start_period(&self) -> Duration {
        Self::nanos(self.start_period, 0)
    }

    pub(crate) fn retries(&self) -> i64 {
        if self.retries > 0 {
            self.retries
        } else {
            DEFAULT_RETRIES
        }
    }
}

/// docker's `State.Health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "FailingStreak")]
    pub failing_streak: i64,
    #[serde(rename = "Log")]
    pub log: Vec<HealthResult>,
}

/// One probe: docker's `HealthcheckResult`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    #[serde(rename = "Start")]
    pub start: String,
    #[serde(rename = "End")]
    pub end: String,
    #[serde(rename = "ExitCode")]
    pub exit_code: i64,
    #[serde(rename = "Output")]
    pub output: String,
}

pub const STARTING: &str = "starting";
pub const HEALTHY: &str = "healthy";
pub const UNHEALTHY: &str = "unhealthy";

impl Health {
    pub(crate) fn starting() -> Health {
        Health {
            status: STARTING.into(),
            ..Health::default()
        }
    }

    /// docker's `handleProbeResult`: record `r` and move the status; `in_start_period`
    /// failures do not count while the container is still `starting`.
    pub(crate) fn record(&mut self, mut r: HealthResult, retries: i64, in_start_period: bool) {
        if r.output.len() > MAX_OUTPUT {
            let mut cut = MAX_OUTPUT;
            while !r.output.is_char_boundary(cut) {
                cut -= 1;
            }
            r.output.truncate(cut);
        }
        let ok = r.exit_code == 0;
        self.log.push(r);
        if self.log.len() > MAX_LOG {
            let extra = self.log.len() - MAX_LOG;
            self.log.drain(..extra);
        }
        if ok {
            self.failing_streak = 0;
            self.status = HEALTHY.into();
            return;
        }
        if in_start_period && self.status == STARTING {
            // Failures in the start period are not counted.
            return;
        }
        self.failing_streak += 1;
        if self.failing_streak >= retries {
            self.status = UNHEALTHY.into();
        }
    }
}

impl crate::Container {
    /// Run the healthcheck's probe once in this (running) container: its result, a
    /// failure (-1) when it could not be started or ran past the timeout (then killed).
    pub(crate) fn probe(&self, h: &Healthcheck) -> HealthResult {
        let start = store::now_rfc3339();
        let (exit_code, output) = match self.run_probe(h) {
            Ok(r) => r,
            Err(message) => (-1, message),
        };
        HealthResult {
            start,
            end: store::now_rfc3339(),
            exit_code,
            output,
        }
    }

    fn run_probe(&self, h: &Healthcheck) -> Result<(i64, String), String> {
        use std::io::{Read, Seek};
        let st = &self.state;
        let pidfd = crate::signal::pidfd_open(st.pid).ok_or("container is not running")?;
        if !crate::container::alive(st.pid, st.pid_start) {
            return Err("container is not running".into());
        }
        let e = crate::Exec {
            command: h.argv(),
            ..crate::Exec::default()
        };
        let mut spec = self
            .join_spec(&e, std::sync::Arc::new(pidfd))
            .map_err(|e| e.message)?;
        // Output (stdout and stderr together) to a file of the container, read back after.
        let out_path = self.dir.join("health.out");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&out_path)
            .map_err(|e| format!("open {}: {e}", out_path.display()))?;
        let out = std::sync::Arc::new(out);
        spec.stdout = exec::Stdio::File(out.clone());
        spec.stderr = exec::Stdio::File(out.clone());
        let mut running = exec::join(&spec).map_err(|e| e.to_string())?;
        let pid = running.pid();
        let pid_start = crate::container::proc_start(pid).unwrap_or(0);
        let timeout = h.timeout();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            let timed_out = matches!(
                rx.recv_timeout(timeout),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            );
            if timed_out {
                let _ = crate::signal::send(pid, pid_start, libc::SIGKILL);
            }
            timed_out
        });
        let status = running.wait();
        let _ = tx.send(());
        let timed_out = watchdog.join().unwrap_or(false);
        if timed_out {
            return Err(format!(
                "Health check exceeded timeout ({})",
                humantime::format_duration(timeout)
            ));
        }
        let status = status.map_err(|e| e.to_string())?;
        let mut text = Vec::new();
        let mut f = &*out;
        let _ = f.rewind();
        let _ = f.take(MAX_OUTPUT as u64).read_to_end(&mut text);
        let _ = std::fs::remove_file(&out_path);
        Ok((
            status.code.into(),
            String::from_utf8_lossy(&text).into_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: i64) -> HealthResult {
        HealthResult {
            exit_code: code,
            output: "x".repeat(5000),
            ..HealthResult::default()
        }
    }

    #[test]
    fn docker_transitions() {
        let mut h = Health::starting();
        h.record(result(1), 2, true);
        assert_eq!((h.status.as_str(), h.failing_streak), (STARTING, 0));
        h.record(result(1), 2, false);
        assert_eq!((h.status.as_str(), h.failing_streak), (STARTING, 1));
        h.record(result(1), 2, false);
        assert_eq!((h.status.as_str(), h.failing_streak), (UNHEALTHY, 2));
        h.record(result(0), 2, false);
        assert_eq!((h.status.as_str(), h.failing_streak), (HEALTHY, 0));
        for _ in 0..4 {
            h.record(result(1), 2, false);
        }
        assert_eq!(h.log.len(), 5);
        assert_eq!(h.log[0].exit_code, 0, "the oldest three dropped");
        assert_eq!(h.log[1].exit_code, 1);
        assert_eq!(h.log[0].output.len(), 4096);
        assert_eq!(h.status, UNHEALTHY);
    }

    #[test]
    fn flags_over_image() {
        let image = serde_json::json!({"Test": ["CMD", "true"], "Interval": 5_000_000_000i64, "Retries": 7});
        let opts = HealthOpts {
            cmd: Some("test -f /ok".into()),
            interval: Some(1_000_000_000),
            ..HealthOpts::default()
        };
        let h = opts.merge(Some(&image)).unwrap().unwrap();
        assert_eq!(h.argv(), vec!["/bin/sh", "-c", "test -f /ok"]);
        assert_eq!(h.interval(), Duration::from_secs(1));
        assert_eq!(h.retries(), 7);
        assert_eq!(h.timeout(), Duration::from_secs(30));
        let h = HealthOpts::default().merge(Some(&image)).unwrap().unwrap();
        assert_eq!(h.argv(), vec!["true"]);
        let none = HealthOpts {
            none: true,
            ..HealthOpts::default()
        };
        assert_eq!(none.merge(Some(&image)).unwrap(), None);
        let disabled = serde_json::json!({"Test": ["NONE"]});
        assert_eq!(HealthOpts::default().merge(Some(&disabled)).unwrap(), None);
        assert_eq!(HealthOpts::default().merge(None).unwrap(), None);
        // compose's whole test, exec form.
        let test = HealthOpts {
            test: Some(vec!["CMD".into(), "wget".into(), "-q".into()]),
            ..HealthOpts::default()
        };
        assert_eq!(test.merge(None).unwrap().unwrap().argv(), ["wget", "-q"]);
    }
}
