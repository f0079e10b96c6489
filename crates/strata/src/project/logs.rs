//! Several containers' logs as one stream, each line prefixed with the container's name
//! padded to the longest (`demo-web-1  | listening`), coloured on a terminal, as docker
//! compose prints them.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use anyhow::Result;
use store::Store;

/// docker compose's rotation of prefix colours (ANSI), skipped when `NO_COLOR` is set or
/// stdout is no terminal.
const COLOURS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

/// A line-buffering printer of one container's frames.
struct Lines<'a> {
    prefix: String,
    partial: [Vec<u8>; 3],
    out: &'a Mutex<()>,
}

impl Lines<'_> {
    fn push(&mut self, stream: u8, payload: &[u8]) -> Result<()> {
        let slot = usize::from(stream.min(2));
        self.partial[slot].extend_from_slice(payload);
        while let Some(i) = self.partial[slot].iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial[slot].drain(..=i).collect();
            self.emit(stream, &line)?;
        }
        Ok(())
    }

    fn emit(&self, stream: u8, line: &[u8]) -> Result<()> {
        let _g = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let mut buf = Vec::with_capacity(self.prefix.len() + line.len() + 1);
        buf.extend_from_slice(self.prefix.as_bytes());
        buf.extend_from_slice(line);
        if !buf.ends_with(b"\n") {
            buf.push(b'\n');
        }
        // Both streams go to stdout, as compose's attached output (stderr stays for
        // compose's own messages); the order within a container is kept.
        let _ = stream;
        let mut o = std::io::stdout().lock();
        o.write_all(&buf)?;
        o.flush()?;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        for slot in 0..3 {
            if !self.partial[slot].is_empty() {
                let rest = std::mem::take(&mut self.partial[slot]);
                self.emit(slot as u8, &rest)?;
            }
        }
        Ok(())
    }
}

/// Print the logs of the containers `names` (the last `tail` lines of each, or all), with
/// prefixes when `prefix`; with `follow`, until each has stopped. One thread per container.
pub fn print(
    store: &Store,
    names: &[String],
    follow: bool,
    tail: Option<usize>,
    prefix: bool,
) -> Result<()> {
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let out = Mutex::new(());
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let out = &out;
                scope.spawn(move || -> Result<()> {
                    let mut c = runtime::find(store, name)?;
                    let pad = format!("{name:width$}  | ");
                    let p = match (prefix, colour) {
                        (false, _) => String::new(),
                        (true, false) => pad,
                        (true, true) => {
                            format!("\x1b[{}m{pad}\x1b[0m", COLOURS[i % COLOURS.len()])
                        }
                    };
                    let mut lines = Lines {
                        prefix: p,
                        partial: Default::default(),
                        out,
                    };
                    let mut sink = |frames: &[runtime::logs::Frame]| -> Result<()> {
                        for (stream, payload) in frames {
                            lines.push(*stream, payload)?;
                        }
                        Ok(())
                    };
                    if follow {
                        runtime::logs::follow(&mut c, tail, &mut sink)?;
                    } else {
                        runtime::logs::read(&c, tail, &mut sink)?;
                    }
                    lines.finish()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a log thread panicked")))
            })
            .collect()
    });
    results.into_iter().collect()
}
