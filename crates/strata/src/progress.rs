//! Build progress on the terminal: BuildKit's plain format on stderr, or a live display.

use std::sync::Mutex;

use engine::{Event, Plain, Progress};

/// BuildKit's `--progress=plain` format on stderr.
pub fn plain_stderr() -> Plain {
    Plain::new(Box::new(std::io::stderr()))
}

/// A live display for terminals, like BuildKit's tty mode: a header `[+] Building 3.6s
/// (5/9)`, a line per running step with its elapsed time, `CACHED` marks, finished steps
/// collapsing to one line each (blue; errors red; no colour with `NO_COLOR`), the export
/// at the end, and (with `explain`) why each cache miss happened.
pub struct Tty {
    multi: indicatif::MultiProgress,
    header: indicatif::ProgressBar,
    bars: Mutex<Vec<(usize, indicatif::ProgressBar, String)>>,
    /// Steps started and steps finished (done, cached or failed).
    counts: Mutex<(usize, usize)>,
    explain: bool,
    color: bool,
}

/// Whether to colour a terminal's output: not when `NO_COLOR` is set to anything.
pub fn color_wanted() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

impl Tty {
    pub fn new(explain: bool) -> Tty {
        let multi =
            indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr());
        let header = multi.add(indicatif::ProgressBar::new_spinner());
        header.set_style(
            indicatif::ProgressStyle::with_template("[+] Building {secs} ({msg})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner())
                .with_key(
                    "secs",
                    |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.1}s", s.elapsed().as_secs_f64());
                    },
                ),
        );
        header.set_message("0/0");
        header.enable_steady_tick(std::time::Duration::from_millis(100));
        Tty {
            multi,
            header,
            bars: Mutex::new(Vec::new()),
            counts: Mutex::new((0, 0)),
            explain,
            color: color_wanted(),
        }
    }

    fn with_bar(&self, id: usize, f: impl FnOnce(&indicatif::ProgressBar, &str)) {
        let bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, b, name)) = bars.iter().find(|(i, _, _)| *i == id) {
            f(b, name);
        }
    }

    /// Count a started (`started`) or a finished step, and show the counts in the header.
    fn count(&self, started: bool) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if started {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
        self.header.set_message(format!("{}/{}", c.1, c.0));
    }

    /// `text` in `code`'s colour (an SGR number), or plain.
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// End the display: the export's lines under the steps, and the header frozen with
    /// `FINISHED` (or `ERROR`).
    pub fn finish(&self, export: &[String], ok: bool) {
        for line in export {
            let b = self.multi.add(indicatif::ProgressBar::new_spinner());
            b.set_style(
                indicatif::ProgressStyle::with_template("{msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            b.finish_with_message(self.paint("34", line));
        }
        let c = *self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let t = self.header.elapsed().as_secs_f64();
        let state = if ok { "FINISHED" } else { "ERROR" };
        self.header.set_style(
            indicatif::ProgressStyle::with_template("{msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        self.header
            .finish_with_message(format!("[+] Building {t:.1}s ({}/{}) {state}", c.1, c.0));
    }
}

impl Progress for Tty {
    fn event(&self, e: Event) {
        match e {
            Event::Start { id, name } => {
                let b = self.multi.add(indicatif::ProgressBar::new_spinner());
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} {prefix} {msg} {elapsed:>4}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                b.set_prefix(name.clone());
                b.enable_steady_tick(std::time::Duration::from_millis(100));
                self.bars
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((id, b, name));
                self.count(true);
            }
            Event::Log { id, line } => self.with_bar(id, |b, _| {
                let short: String = line.chars().take(60).collect();
                b.set_message(format!("| {short}"));
            }),
            Event::Miss { id, reason } => {
                if self.explain {
                    self.with_bar(id, |_, name| {
                        let _ = self
                            .multi
                            .println(format!("  cache miss for {name}: {reason}"));
                    })
                }
            }
            Event::Cached { id } => {
                self.with_bar(id, |b, name| {
                    b.set_style(
                        indicatif::ProgressStyle::with_template("{msg}")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                    );
                    b.finish_with_message(self.paint("34", &format!(" => CACHED {name}")));
                });
                self.count(false);
            }
            Event::Done { id } => {
                self.with_bar(id, |b, name| {
                    let t = b.elapsed().as_secs_f64();
                    b.set_style(
                        indicatif::ProgressStyle::with_template("{msg}")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                    );
                    b.finish_with_message(self.paint("34", &format!(" => {name} {t:.1}s")));
                });
                self.count(false);
            }
            Event::Error { id, message } => {
                self.with_bar(id, |b, name| {
                    b.set_style(
                        indicatif::ProgressStyle::with_template("{msg}")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                    );
                    b.finish_with_message(
                        self.paint("31", &format!(" => ERROR {name}: {message}")),
                    );
                });
                self.count(false);
            }
            Event::Message { line } => {
                let _ = self.multi.println(line);
            }
            Event::Context { files, read, bytes } => {
                let b = self.multi.add(indicatif::ProgressBar::new_spinner());
                b.set_style(
                    indicatif::ProgressStyle::with_template("{msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                let line = format!(
                    " => [internal] load build context: {files} files, {read} read ({})",
                    crate::format::human_size(bytes)
                );
                b.finish_with_message(self.paint("34", &line));
            }
        }
    }
}

impl Progress for &Tty {
    fn event(&self, e: Event) {
        (**self).event(e)
    }
}

/// buildx's `--progress=rawjson`: BuildKit's solve status (`vertexes`, `logs`), one JSON
/// object per line. A vertex's digest is made from its number (strata's steps have no LLB
/// digest); log data is base64, as BuildKit's.
pub struct RawJson {
    out: Mutex<Box<dyn std::io::Write + Send>>,
    /// Each started vertex: its number, name and start time.
    started: Mutex<Vec<(usize, String, String)>>,
}

impl RawJson {
    pub fn new(out: Box<dyn std::io::Write + Send>) -> RawJson {
        RawJson {
            out: Mutex::new(out),
            started: Mutex::new(Vec::new()),
        }
    }

    fn now() -> String {
        humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
    }

    fn digest(id: usize) -> String {
        format!("sha256:{:064x}", id)
    }

    fn emit(&self, v: serde_json::Value) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = serde_json::to_writer(&mut *out, &v);
        let _ = out.write_all(b"\n");
    }

    /// A vertex as it stands: name and start from when it started, plus `extra`.
    fn vertex(&self, id: usize, extra: serde_json::Value) -> serde_json::Value {
        let started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        let (name, start) = started
            .iter()
            .find(|(i, ..)| *i == id)
            .map(|(_, n, t)| (n.clone(), t.clone()))
            .unwrap_or_default();
        let mut v = serde_json::json!({
            "digest": Self::digest(id),
            "inputs": [],
            "name": name,
            "started": start,
        });
        if let (Some(o), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    }
}

impl Progress for RawJson {
    fn event(&self, e: Event) {
        use base64::Engine as _;
        use serde_json::json;
        match e {
            Event::Start { id, name } => {
                let now = Self::now();
                self.started
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((id, name, now));
                self.emit(json!({ "vertexes": [self.vertex(id, json!({}))] }));
            }
            Event::Log { id, line } => {
                let data = base64::engine::general_purpose::STANDARD.encode(format!("{line}\n"));
                self.emit(json!({ "logs": [{
                    "vertex": Self::digest(id),
                    "stream": 1,
                    "data": data,
                    "timestamp": Self::now(),
                }] }));
            }
            Event::Cached { id } => {
                let now = Self::now();
                self.emit(json!({ "vertexes": [self.vertex(id, json!({"cached": true, "completed": now}))] }));
            }
            Event::Miss { .. } | Event::Context { .. } => {}
            Event::Done { id } => {
                let now = Self::now();
                self.emit(json!({ "vertexes": [self.vertex(id, json!({"completed": now}))] }));
            }
            Event::Error { id, message } => {
                let now = Self::now();
                self.emit(json!({ "vertexes": [self.vertex(id, json!({"completed": now, "error": message}))] }));
            }
            Event::Message { line } => {
                let data = base64::engine::general_purpose::STANDARD.encode(format!("{line}\n"));
                self.emit(json!({ "logs": [{
                    "vertex": Self::digest(0),
                    "stream": 2,
                    "data": data,
                    "timestamp": Self::now(),
                }] }));
            }
        }
    }
}
