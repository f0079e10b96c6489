//! Build progress: events from the solver, printed BuildKit-style.
//!
//! `--progress=plain` copies BuildKit's plain output: each vertex is `#N NAME`, its output
//! lines `#N 0.123 text`, and it ends with `#N DONE 1.2s`, `#N CACHED` or `#N ERROR: ...`;
//! vertices are separated by blank lines.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

/// What happened to a vertex (a step, or an internal action such as loading the context).
#[derive(Clone, Debug)]
pub enum Event {
    Start {
        id: usize,
        name: String,
    },
    Log {
        id: usize,
        line: String,
    },
    Cached {
        id: usize,
    },
    /// Why a step's cache missed (plain mode prints it; tty shows it with --explain-cache).
    Miss {
        id: usize,
        reason: String,
    },
    Done {
        id: usize,
    },
    Error {
        id: usize,
        message: String,
    },
}

/// A consumer of progress events. Must be shareable across the stage threads.
pub trait Progress: Sync {
    fn event(&self, e: Event);
}

/// Prints nothing (`-q`).
pub struct Quiet;

impl Progress for Quiet {
    fn event(&self, _: Event) {}
}

/// BuildKit's `--progress=plain` format on stderr.
pub struct Plain {
    inner: Mutex<PlainState>,
}

struct PlainState {
    out: Box<dyn Write + Send>,
    started: Vec<(usize, Instant)>,
    last: Option<usize>,
}

impl Plain {
    pub fn new(out: Box<dyn Write + Send>) -> Plain {
        Plain {
            inner: Mutex::new(PlainState {
                out,
                started: Vec::new(),
                last: None,
            }),
        }
    }

    pub fn stderr() -> Plain {
        Plain::new(Box::new(std::io::stderr()))
    }
}

impl PlainState {
    fn elapsed(&self, id: usize) -> f64 {
        self.started
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, t)| t.elapsed().as_secs_f64())
            .unwrap_or(0.0)
    }

    /// A vertex's header again when its lines interleave with another's.
    fn switch_to(&mut self, id: usize) {
        if self.last != Some(id) {
            if self.last.is_some() {
                let _ = writeln!(self.out);
            }
            self.last = Some(id);
        }
    }
}

impl Progress for Plain {
    fn event(&self, e: Event) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            Event::Start { id, name } => {
                if s.last.is_some() {
                    let _ = writeln!(s.out);
                }
                s.last = Some(id);
                s.started.push((id, Instant::now()));
                let _ = writeln!(s.out, "#{id} {name}");
            }
            Event::Log { id, line } => {
                s.switch_to(id);
                let t = s.elapsed(id);
                let _ = writeln!(s.out, "#{id} {t:.3} {line}");
            }
            Event::Miss { id, reason } => {
                s.switch_to(id);
                let _ = writeln!(s.out, "#{id} cache miss: {reason}");
            }
            Event::Cached { id } => {
                s.switch_to(id);
                let _ = writeln!(s.out, "#{id} CACHED");
            }
            Event::Done { id } => {
                s.switch_to(id);
                let t = s.elapsed(id);
                let _ = writeln!(s.out, "#{id} DONE {t:.1}s");
            }
            Event::Error { id, message } => {
                s.switch_to(id);
                let _ = writeln!(s.out, "#{id} ERROR: {message}");
            }
        }
        let _ = s.out.flush();
    }
}

/// A live display for terminals, like BuildKit's tty mode: a line per running step with its
/// elapsed time, `CACHED` marks, finished steps collapsing to one line each, and (with
/// `explain`) why each cache miss happened.
pub struct Tty {
    multi: indicatif::MultiProgress,
    bars: Mutex<Vec<(usize, indicatif::ProgressBar, String)>>,
    explain: bool,
}

impl Tty {
    pub fn new(explain: bool) -> Tty {
        Tty {
            multi: indicatif::MultiProgress::with_draw_target(
                indicatif::ProgressDrawTarget::stderr(),
            ),
            bars: Mutex::new(Vec::new()),
            explain,
        }
    }

    fn with_bar(&self, id: usize, f: impl FnOnce(&indicatif::ProgressBar, &str)) {
        let bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, b, name)) = bars.iter().find(|(i, _, _)| *i == id) {
            f(b, name);
        }
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
            Event::Cached { id } => self.with_bar(id, |b, name| {
                b.set_style(
                    indicatif::ProgressStyle::with_template("{msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                b.finish_with_message(format!(" => CACHED {name}"));
            }),
            Event::Done { id } => self.with_bar(id, |b, name| {
                let t = b.elapsed().as_secs_f64();
                b.set_style(
                    indicatif::ProgressStyle::with_template("{msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                b.finish_with_message(format!(" => {name} {t:.1}s"));
            }),
            Event::Error { id, message } => self.with_bar(id, |b, name| {
                b.set_style(
                    indicatif::ProgressStyle::with_template("{msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                b.finish_with_message(format!(" => ERROR {name}: {message}"));
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_format() {
        let buf = Buf::default();
        let p = Plain::new(Box::new(buf.clone()));
        p.event(Event::Start {
            id: 1,
            name: "[base 1/2] FROM docker.io/library/busybox:local".into(),
        });
        p.event(Event::Done { id: 1 });
        p.event(Event::Start {
            id: 2,
            name: "[base 2/2] RUN echo hi".into(),
        });
        p.event(Event::Log {
            id: 2,
            line: "hi".into(),
        });
        p.event(Event::Error {
            id: 2,
            message: "exit code: 3".into(),
        });
        p.event(Event::Start {
            id: 3,
            name: "[base 2/2] COPY a b".into(),
        });
        p.event(Event::Cached { id: 3 });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "#1 [base 1/2] FROM docker.io/library/busybox:local"
        );
        assert!(lines[1].starts_with("#1 DONE ") && lines[1].ends_with('s'));
        assert_eq!(lines[2], "");
        assert!(
            lines[4].starts_with("#2 0.") && lines[4].ends_with(" hi"),
            "{text}"
        );
        assert_eq!(lines[5], "#2 ERROR: exit code: 3");
        assert_eq!(lines[8], "#3 CACHED");
    }
}
