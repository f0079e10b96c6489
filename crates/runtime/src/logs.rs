//! A container's log: docker's stdcopy frames (8-byte header: stream 1 or 2, three zero
//! bytes, length u32 big-endian; then the payload), one frame per line, long lines cut at
//! 16 KiB. The supervisor writes it (`pump`); `read` and `follow` hand its frames to the
//! caller, which prints them.

use std::fs::File;
use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::container::{Container, Status};

/// Docker's limit for one log message.
const MAX_LINE: usize = 16 * 1024;

/// One frame: its stream (1 stdout, 2 stderr) and payload.
pub type Frame<'a> = (u8, &'a [u8]);

/// The frames logged so far, the last `tail` only (`None`: all), passed to `sink` at once.
pub fn read(
    c: &Container,
    tail: Option<usize>,
    sink: &mut dyn FnMut(&[Frame]) -> Result<()>,
) -> Result<()> {
    read_from(c, tail, sink).map(|_| ())
}

/// As `read`, then every frame logged afterwards, batch by batch, until the container is no
/// longer running (its log then complete).
pub fn follow(
    c: &mut Container,
    tail: Option<usize>,
    sink: &mut dyn FnMut(&[Frame]) -> Result<()>,
) -> Result<()> {
    let mut offset = read_from(c, tail, sink)?;
    loop {
        // Read the state before the log: once it says stopped, the log is complete.
        let stopped = c.reload().is_err() || c.status() != Status::Running;
        let more = read_log(c, offset)?;
        let (frames, used) = parse_frames(&more);
        sink(&frames)?;
        offset += used;
        if stopped {
            return Ok(());
        }
        if frames.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `read`, returning the offset just past the frames read.
fn read_from(
    c: &Container,
    tail: Option<usize>,
    sink: &mut dyn FnMut(&[Frame]) -> Result<()>,
) -> Result<usize> {
    let bytes = read_log(c, 0)?;
    let (frames, offset) = parse_frames(&bytes);
    let skip = tail.map_or(0, |n| frames.len().saturating_sub(n));
    sink(&frames[skip..])?;
    Ok(offset)
}

/// The log's bytes from `from` on (none when there is no log yet).
fn read_log(c: &Container, from: usize) -> Result<Vec<u8>> {
    let path = c.dir.join("log");
    match std::fs::read(&path) {
        Ok(b) => Ok(b.get(from..).unwrap_or_default().to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// Copy one stream into the log, a frame per line.
pub(crate) fn pump(mut r: Box<dyn Read + Send>, stream: u8, log: &Mutex<File>) {
    let mut buf = [0u8; 16 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // EIO from a terminal whose processes are all gone.
            Err(_) => break,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(i) = pending[start..].iter().position(|&b| b == b'\n') {
            write_frame(log, stream, &pending[start..start + i + 1]);
            start += i + 1;
        }
        while pending.len() - start >= MAX_LINE {
            write_frame(log, stream, &pending[start..start + MAX_LINE]);
            start += MAX_LINE;
        }
        pending.drain(..start);
    }
    if !pending.is_empty() {
        write_frame(log, stream, &pending);
    }
}

fn write_frame(log: &Mutex<File>, stream: u8, payload: &[u8]) {
    let mut frame = Vec::with_capacity(8 + payload.len());
    frame.extend_from_slice(&[stream, 0, 0, 0]);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    if let Ok(mut f) = log.lock() {
        // A full disk loses log lines, never the container.
        let _ = f.write_all(&frame);
    }
}

/// The complete frames in `bytes`: (stream, payload) and the number of bytes they span.
pub fn parse_frames(bytes: &[u8]) -> (Vec<(u8, &[u8])>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 8 {
        let len = u32::from_be_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
            as usize;
        if bytes.len() - at - 8 < len {
            break;
        }
        out.push((bytes[at], &bytes[at + 8..at + 8 + len]));
        at += 8 + len;
    }
    (out, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_partial_frames_wait() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let log = Mutex::new(File::create(&p).unwrap());
        pump(Box::new(&b"one\ntwo\nthree"[..]), 1, &log);
        pump(Box::new(&b"err\n"[..]), 2, &log);
        let bytes = std::fs::read(&p).unwrap();
        let (frames, used) = parse_frames(&bytes);
        assert_eq!(used, bytes.len());
        let got: Vec<(u8, &[u8])> = frames;
        assert_eq!(
            got,
            vec![
                (1, &b"one\n"[..]),
                (1, &b"two\n"[..]),
                (1, &b"three"[..]),
                (2, &b"err\n"[..])
            ]
        );
        let (frames, used) = parse_frames(&bytes[..bytes.len() - 1]);
        assert_eq!(frames.len(), 3);
        assert_eq!(used, bytes.len() - 12);
    }

    #[test]
    fn read_gives_the_last_frames_of_a_container() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store::Store::open(tmp.path().join("s")).unwrap();
        let containers = crate::Containers::open(&store).unwrap();
        let id = "d".repeat(64);
        let dir = containers.dir.join(&id);
        std::fs::create_dir(&dir).unwrap();
        let config = serde_json::json!({
            "id": id, "name": "logger", "image": "i", "image_id": "sha256:a",
            "manifest": "sha256:b", "created": "2026-01-01T00:00:00Z", "args": ["x"],
            "env": [], "cwd": "/", "user": null, "hostname": "h", "network": "none",
            "lower": [], "tty": false, "ports": [], "auto_remove": false, "stop_signal": null,
        });
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        let mut c = crate::find(&store, "logger").unwrap();
        let mut got: Vec<(u8, Vec<u8>)> = Vec::new();
        // No log yet: nothing, and `follow` returns at once for a container not running.
        follow(&mut c, None, &mut |f| {
            got.extend(f.iter().map(|(s, p)| (*s, p.to_vec())));
            Ok(())
        })
        .unwrap();
        assert!(got.is_empty());
        let log = Mutex::new(File::create(dir.join("log")).unwrap());
        pump(Box::new(&b"a\nb\nc\n"[..]), 1, &log);
        pump(Box::new(&b"oops\n"[..]), 2, &log);
        read(&c, Some(2), &mut |f| {
            got.extend(f.iter().map(|(s, p)| (*s, p.to_vec())));
            Ok(())
        })
        .unwrap();
        assert_eq!(got, vec![(1, b"c\n".to_vec()), (2, b"oops\n".to_vec())]);
    }
}
