//! `strata run -d` and the supervisor it leaves behind.
//!
//! `run -d` prepares the container under the store's shared lock (the image resolved, its
//! snapshots unpacked, a GC root `roots/containers/<id>` naming its manifest), reserves the
//! name under the containers lock by writing `config.json`, then starts the supervisor:
//! the strata binary again (`strata --root R __strata-supervise ID`) in a new session, with
//! stdin on /dev/null and its own stderr in `supervisor.log`. It waits until the supervisor
//! records the container as running (prints the id, exit 0) or as failed to start (prints
//! the error, exit 125/126/127 as a foreground run would), and returns.
//!
//! The supervisor binds the published ports, starts the container on the executor (the
//! overlay's upper and work dirs in the container's directory), records `running` with the
//! pids and start times, proxies the ports, writes the container's stdout and stderr to
//! `log` as docker's stdcopy frames (8-byte header: stream 1 or 2, three zero bytes, length
//! u32 big-endian; one frame per line, long lines cut at 16 KiB), and when the container
//! ends records `exited` with its exit code. With `--rm` it then removes the container.
//! The supervisor holds the executor's control socket: if it dies, the executor kills the
//! container, and `ps` shows it `Dead` (its pid no longer has the recorded start time).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use store::Store;

use super::{prepare, spawn_error_code, spec_of, start_failed, RunArgs, EXIT_START};
use crate::container::{self, Containers, State};
use crate::proxy;

/// The hidden subcommand that runs the supervisor.
pub const SUPERVISE_CMD: &str = "__strata-supervise";

/// Docker's limit for one log message.
const MAX_LINE: usize = 16 * 1024;

/// `strata run -d`: the container id on stdout, or docker's start-failure exit codes.
pub fn run(store: &Store, a: &RunArgs) -> ExitCode {
    let containers = match Containers::new(store.root()) {
        Ok(c) => c,
        Err(e) => return start_failed(e),
    };
    let id = container::random_id();
    let dir = containers.dir.join(&id);
    let created = create(store, &containers, a, &id, &dir);
    if let Err(e) = created {
        let _ = containers.remove(store.root(), &id);
        return start_failed(e);
    }
    let mut child = match start_supervisor(store.root(), &id, &dir) {
        Ok(c) => c,
        Err(e) => {
            let _ = containers.remove(store.root(), &id);
            return start_failed(e);
        }
    };
    // The supervisor records the start within milliseconds; the timeout only guards
    // against a supervisor that hangs before writing anything.
    let mut state = State::default();
    let mut exited = false;
    let settled = container::wait_until(Duration::from_secs(60), || {
        state = container::read_state(&dir).unwrap_or_default();
        if state.status != "created" || state.error.is_some() {
            return true;
        }
        // Gone without a word: one last look at the state below.
        exited = matches!(child.try_wait(), Ok(Some(_)));
        exited
    });
    if exited {
        state = container::read_state(&dir).unwrap_or_default();
    }
    if let Some(err) = &state.error {
        eprintln!("error: {err}");
        if a.rm {
            let _ = containers.remove(store.root(), &id);
        }
        let code = state.exit_code.unwrap_or(EXIT_START as i32);
        return ExitCode::from(u8::try_from(code).unwrap_or(EXIT_START));
    }
    // Running, or already exited (and maybe removed with --rm): started either way.
    if state.status == "running" || state.status == "exited" || (a.rm && !dir.exists()) {
        println!("{id}");
        return ExitCode::SUCCESS;
    }
    let log = std::fs::read_to_string(dir.join("supervisor.log")).unwrap_or_default();
    let why = if settled {
        "the container's supervisor ended before starting it"
    } else {
        "timed out waiting for the container's supervisor"
    };
    eprintln!("error: {why}{}", indent(&log));
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = containers.remove(store.root(), &id);
    ExitCode::from(EXIT_START)
}

fn indent(log: &str) -> String {
    if log.trim().is_empty() {
        return String::new();
    }
    format!(":\n{}", log.trim_end())
}

/// Prepare the container and write its config (the name reserved under the lock).
fn create(store: &Store, containers: &Containers, a: &RunArgs, id: &str, dir: &Path) -> Result<()> {
    std::fs::create_dir(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut config = {
        // Held while the image is resolved and its snapshots unpacked, until the GC root
        // exists; not for the container's lifetime (prune would wait for it).
        let store = &store.lock_shared()?;
        let (config, image) = prepare(store, a, dir, id.to_string())?;
        store.set_root(
            container::ROOT_KIND,
            id,
            std::slice::from_ref(&image.manifest_digest),
        )?;
        config
    };
    let _l = containers.lock()?;
    let existing = containers.list()?;
    config.name = match &a.name {
        Some(n) => {
            if let Some(c) = existing.iter().find(|c| &c.config.name == n) {
                bail!(
                    "Conflict. The container name \"/{n}\" is already in use by container \
                     \"{}\". You have to remove (or rename) that container to be able to reuse \
                     that name.",
                    c.config.id
                );
            }
            n.clone()
        }
        None => (0..)
            .map(|i| container::generated_name(id, i))
            .find(|n| !existing.iter().any(|c| &c.config.name == n))
            .expect("an unused name"),
    };
    let bytes = serde_json::to_vec_pretty(&config).context("encode the container's config")?;
    store::atomic_write(&dir.join("config.json"), &bytes)
        .context("write the container's config")?;
    Ok(())
}

fn start_supervisor(root: &Path, id: &str, dir: &Path) -> Result<std::process::Child> {
    let log = File::create(dir.join("supervisor.log")).context("create supervisor.log")?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("--root")
        .arg(root)
        .arg(SUPERVISE_CMD)
        .arg(id)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("duplicate supervisor.log")?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the forked child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().context("start the container's supervisor")
}

/// The supervisor's main (`strata __strata-supervise ID`).
pub fn supervise(root: &Path, id: &str) -> ExitCode {
    // A peer closing a proxied connection must not kill the supervisor.
    // SAFETY: changing a signal's disposition before this process starts any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    match supervise_inner(root, id) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("supervisor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn supervise_inner(root: &Path, id: &str) -> Result<()> {
    let containers = Containers::new(root)?;
    let c = containers.load(id)?;
    let dir = c.dir.clone();
    let me = std::process::id();
    let mut state = State {
        status: "created".into(),
        supervisor: me,
        supervisor_start: container::proc_start(me).unwrap_or(0),
        ..State::default()
    };
    let fail = |mut state: State, msg: String, code: u8| -> Result<()> {
        state.error = Some(msg);
        state.exit_code = Some(code.into());
        container::write_state(&dir, &state)
    };
    let listeners = match proxy::bind(&c.config.ports) {
        Ok(l) => l,
        Err(e) => return fail(state, format!("{e:#}"), EXIT_START),
    };
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log"))
        .context("open the container's log");
    let (mut spec, log) = match spec_of(&c.config, &dir).and_then(|s| Ok((s, log?))) {
        Ok(s) => s,
        Err(e) => return fail(state, format!("{e:#}"), EXIT_START),
    };
    if !c.config.tty {
        spec.stdout = exec::Stdio::Pipe;
        spec.stderr = exec::Stdio::Pipe;
    }
    let mut running = match exec::spawn(&spec) {
        Ok(r) => r,
        Err(e) => return fail(state, e.to_string(), spawn_error_code(&e)),
    };
    let pid = running.pid();
    state.ports = listeners.iter().map(|(m, _)| m.clone()).collect();
    if let Err(e) = proxy::start(listeners, pid) {
        let _ = running.kill();
        let _ = running.wait();
        return fail(state, format!("publish ports: {e:#}"), EXIT_START);
    }
    state.status = "running".into();
    state.pid = pid;
    state.pid_start = container::proc_start(pid).unwrap_or(0);
    state.started_at = Some(crate::format::now_rfc3339());
    container::write_state(&dir, &state)?;

    let log = Arc::new(Mutex::new(log));
    let mut pumps = Vec::new();
    let mut streams: Vec<(u8, Box<dyn Read + Send>)> = Vec::new();
    if let Some(m) = running.pty.take() {
        streams.push((1, Box::new(m)));
    }
    if let Some(o) = running.stdout.take() {
        streams.push((1, Box::new(o)));
    }
    if let Some(e) = running.stderr.take() {
        streams.push((2, Box::new(e)));
    }
    for (stream, r) in streams {
        let log = log.clone();
        pumps.push(std::thread::spawn(move || pump(r, stream, &log)));
    }
    let status = running.wait();
    for p in pumps {
        let _ = p.join();
    }
    drop(running);
    state.status = "exited".into();
    state.finished_at = Some(crate::format::now_rfc3339());
    state.exit_code = Some(match &status {
        Ok(s) => s.code,
        Err(_) => EXIT_START.into(),
    });
    if let Err(e) = &status {
        state.error = Some(e.to_string());
    }
    // A concurrent `rm -f` may have removed the directory already.
    if dir.exists() {
        container::write_state(&dir, &state)?;
    }
    // The writable layer is no longer mounted anywhere (the mount namespace died with the
    // container); the executor's private files went with its state dir.
    if c.config.auto_remove {
        containers.remove(root, id)?;
    }
    Ok(())
}

/// Copy one stream into the log, a frame per line.
fn pump(mut r: Box<dyn Read + Send>, stream: u8, log: &Mutex<File>) {
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
}
