//! Build progress on the terminal: BuildKit's plain format on stderr, or a live display.

use std::sync::Mutex;

use engine::{Event, Plain, Progress};

/// BuildKit's `--progress=plain` format on stderr.
pub fn plain_stderr() -> Plain {
    Plain::new(Box::new(std::io::stderr()))
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
            Event::Message { line } => eprintln!("{line}"),
        }
    }
}
