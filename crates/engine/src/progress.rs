//! Build progress: events from the solver, and BuildKit's plain format for them. The engine
//! has no terminal: the CLI gives `Plain` its writer and owns the tty display.
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
    /// A line of the build's own (`#0 pulling ...`, `#0 exporting cache ...`), outside any
    /// vertex.
    Message {
        line: String,
    },
    /// What the build took from its context: files looked at, files read (the others were
    /// known by their stat), and the bytes read. The tty view shows it; the plain format
    /// has no such line (BuildKit's `load build context` vertex is not strata's).
    Context {
        files: usize,
        read: u64,
        bytes: u64,
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

/// BuildKit's `--progress=plain` format, on any writer the caller gives it.
pub struct Plain {
    inner: Mutex<PlainState>,
}

struct PlainState {
    out: Box<dyn Write + Send>,
    /// Each started vertex: its start, its name, whether it ended.
    started: Vec<(usize, Instant, String, bool)>,
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
}

impl PlainState {
    fn elapsed(&self, id: usize) -> f64 {
        self.started
            .iter()
            .find(|(i, ..)| *i == id)
            .map(|(_, t, ..)| t.elapsed().as_secs_f64())
            .unwrap_or(0.0)
    }

    /// Leave the vertex printed last, as BuildKit's plain printer does: `#N ...` when it
    /// has not ended yet, then a blank line.
    fn leave_last(&mut self) {
        if let Some(last) = self.last {
            let open = self
                .started
                .iter()
                .any(|(i, .., ended)| *i == last && !ended);
            if open {
                let _ = writeln!(self.out, "#{last} ...");
            }
            let _ = writeln!(self.out);
        }
    }

    /// A vertex's header again when its lines interleave with another's.
    fn switch_to(&mut self, id: usize) {
        if self.last != Some(id) {
            self.leave_last();
            self.last = Some(id);
            if let Some((.., name, _)) = self.started.iter().find(|(i, ..)| *i == id) {
                let _ = writeln!(self.out, "#{id} {name}");
            }
        }
    }

    fn end(&mut self, id: usize) {
        if let Some(v) = self.started.iter_mut().find(|(i, ..)| *i == id) {
            v.3 = true;
        }
    }
}

impl Progress for Plain {
    fn event(&self, e: Event) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            Event::Start { id, name } => {
                s.leave_last();
                s.last = Some(id);
                let _ = writeln!(s.out, "#{id} {name}");
                s.started.push((id, Instant::now(), name, false));
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
                s.end(id);
                let _ = writeln!(s.out, "#{id} CACHED");
            }
            Event::Done { id } => {
                s.switch_to(id);
                s.end(id);
                let t = s.elapsed(id);
                let _ = writeln!(s.out, "#{id} DONE {t:.1}s");
            }
            Event::Error { id, message } => {
                s.switch_to(id);
                s.end(id);
                let _ = writeln!(s.out, "#{id} ERROR: {message}");
            }
            Event::Message { line } => {
                let _ = writeln!(s.out, "{line}");
            }
            Event::Context { .. } => {}
        }
        let _ = s.out.flush();
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

    /// Interleaved vertices print as BuildKit's plain printer does (Docker 20.10 on the
    /// parallel scenario): `#N ...` when leaving a vertex that has not ended, its header
    /// again when coming back to it.
    #[test]
    fn plain_interleaved() {
        let buf = Buf::default();
        let p = Plain::new(Box::new(buf.clone()));
        p.event(Event::Start {
            id: 5,
            name: "[a 2/2] RUN sleep 3".into(),
        });
        p.event(Event::Start {
            id: 7,
            name: "[b 2/2] RUN true".into(),
        });
        p.event(Event::Done { id: 7 });
        p.event(Event::Log {
            id: 5,
            line: "a".into(),
        });
        p.event(Event::Done { id: 5 });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..5],
            [
                "#5 [a 2/2] RUN sleep 3",
                "#5 ...",
                "",
                "#7 [b 2/2] RUN true",
                lines[4]
            ],
            "{text}"
        );
        assert!(lines[4].starts_with("#7 DONE "), "{text}");
        assert_eq!(lines[5..7], ["", "#5 [a 2/2] RUN sleep 3"], "{text}");
        assert!(
            lines[7].starts_with("#5 0.") && lines[7].ends_with(" a"),
            "{text}"
        );
        assert!(lines[8].starts_with("#5 DONE "), "{text}");
        assert_eq!(lines.len(), 9, "{text}");
    }
}
