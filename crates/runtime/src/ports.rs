//! Published ports, `-p [IP:][HOST_PORT:]CONTAINER_PORT[/tcp]`: a userspace TCP proxy
//! from a host address into a container's private network namespace.
//!
//! The listeners are bound in the caller's (the host's) namespace before the container
//! starts, so a busy port fails the start. Once the container runs, one *dialer* thread
//! enters the container's network namespace (`setns(CLONE_NEWNET)` on
//! `/proc/<pid>/ns/net`; a thread may switch its own network namespace) and stays there:
//! the sockets it creates belong to that namespace for good. For each accepted connection it
//! connects to `127.0.0.1:CONTAINER_PORT` there, and two threads copy the bytes both ways,
//! passing a half-close on (`shutdown(SHUT_WR)`) when one side finishes sending.

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::mpsc;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMap {
    pub host_ip: IpAddr,
    /// 0 = an ephemeral port chosen when binding.
    pub host_port: u16,
    pub container_port: u16,
}

impl fmt::Display for PortMap {
    /// docker's PORTS column: `127.0.0.1:8080->80/tcp`, `[::1]:8080->80/tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = SocketAddr::new(self.host_ip, self.host_port);
        write!(f, "{addr}->{}/tcp", self.container_port)
    }
}

fn port(s: &str, what: &str, spec: &str) -> Result<u16> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => bail!("invalid {what} port {s:?} in --publish {spec}"),
    }
}

/// Parse one `-p` value as docker does: `CPORT`, `HPORT:CPORT`, `IP:HPORT:CPORT`,
/// `IP::CPORT` (an empty host port is an ephemeral one), optionally `/tcp`; `[v6]` addresses.
pub fn parse(spec: &str) -> Result<PortMap> {
    let (body, proto) = match spec.rsplit_once('/') {
        Some((b, p)) => (b, p),
        None => (spec, "tcp"),
    };
    if proto != "tcp" {
        bail!("--publish {spec}: only tcp ports can be published (not {proto:?})");
    }
    if body.contains('-') {
        bail!("--publish {spec}: a port range publishes several ports (see parse_all)");
    }
    let (ip, rest) = if let Some(v6) = body.strip_prefix('[') {
        let (addr, rest) = v6
            .split_once(']')
            .with_context(|| format!("invalid IP address in --publish {spec}"))?;
        let rest = rest
            .strip_prefix(':')
            .with_context(|| format!("invalid --publish {spec}"))?;
        (Some(addr), rest)
    } else {
        match body.matches(':').count() {
            0 | 1 => (None, body),
            2 => {
                let (ip, rest) = body.split_once(':').expect("two colons");
                (Some(ip), rest)
            }
            _ => bail!("invalid --publish {spec}: expected [IP:][HOST_PORT:]CONTAINER_PORT"),
        }
    };
    let host_ip = match ip {
        None | Some("") => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Some(a) => a
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid IP address {a:?} in --publish {spec}"))?,
    };
    let (host_port, container_port) = match rest.split_once(':') {
        Some(("", c)) => (0, port(c, "container", spec)?),
        Some((h, c)) => (port(h, "host", spec)?, port(c, "container", spec)?),
        None => (0, port(rest, "container", spec)?),
    };
    Ok(PortMap {
        host_ip,
        host_port,
        container_port,
    })
}

/// Parse one `-p` value that may hold port ranges, as docker does: `8000-8002:8000-8002`
/// (host and container ranges of one length), `8000-8002` (container ports on ephemeral
/// host ports), with an IP and `/tcp` as in [`parse`]: one map per port.
pub fn parse_all(spec: &str) -> Result<Vec<PortMap>> {
    if !spec.contains('-') {
        return Ok(vec![parse(spec)?]);
    }
    let (body, proto) = match spec.rsplit_once('/') {
        Some((b, p)) => (b, Some(p)),
        None => (spec, None),
    };
    // The ports are the last one or two `:`-separated fields; an IP (v4 or [v6]) before.
    let (prefix, ports) = match body.rfind(']') {
        Some(end) => (&body[..=end], body[end + 1..].trim_start_matches(':')),
        None => match body.matches(':').count() {
            2 => body.split_once(':').expect("two colons"),
            _ => ("", body),
        },
    };
    let range = |r: &str, what: &str| -> Result<(u16, u16)> {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        let (a, b) = (port(a, what, spec)?, port(b, what, spec)?);
        if b < a {
            bail!("invalid port range {r:?} in --publish {spec}");
        }
        Ok((a, b))
    };
    let (host, container) = match ports.split_once(':') {
        Some(("", c)) => (None, range(c, "container")?),
        Some((h, c)) => (Some(range(h, "host")?), range(c, "container")?),
        None => (None, range(ports, "container")?),
    };
    if let Some(h) = host {
        if h.1 - h.0 != container.1 - container.0 {
            bail!("invalid ranges specified for container and host Ports: {spec}");
        }
    }
    (0..=container.1 - container.0)
        .map(|i| {
            let host_port = host.map_or(String::new(), |h| (h.0 + i).to_string());
            let one = match prefix {
                "" if host_port.is_empty() => format!("{}", container.0 + i),
                "" => format!("{host_port}:{}", container.0 + i),
                ip => format!("{ip}:{host_port}:{}", container.0 + i),
            };
            let one = match proto {
                Some(p) => format!("{one}/{p}"),
                None => one,
            };
            parse(&one)
        })
        .collect()
}

/// Bind every listener in the current (host) network namespace; the maps come back with
/// ephemeral ports resolved.
pub fn bind(maps: &[PortMap]) -> Result<Vec<(PortMap, TcpListener)>> {
    let mut out = Vec::new();
    for m in maps {
        let addr = SocketAddr::new(m.host_ip, m.host_port);
        let l = TcpListener::bind(addr).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                anyhow::anyhow!("Bind for {addr} failed: port is already allocated")
            } else {
                anyhow::anyhow!("cannot listen on {addr}: {e}")
            }
        })?;
        let mut m = m.clone();
        m.host_port = l.local_addr().context("listener address")?.port();
        out.push((m, l));
    }
    Ok(out)
}

type DialRequest = (u16, mpsc::Sender<std::io::Result<TcpStream>>);

/// Start proxying: the dialer thread in the network namespace of `pid`, one accepting thread
/// per listener. The threads live as long as the process.
pub fn start(listeners: Vec<(PortMap, TcpListener)>, pid: u32) -> Result<()> {
    if listeners.is_empty() {
        return Ok(());
    }
    let netns = File::open(format!("/proc/{pid}/ns/net"))
        .with_context(|| format!("open the network namespace of process {pid}"))?;
    let (tx, rx) = mpsc::channel::<DialRequest>();
    let (ready_tx, ready_rx) = mpsc::channel::<std::io::Result<()>>();
    std::thread::Builder::new()
        .name("proxy-dialer".into())
        .spawn(move || {
            // SAFETY: setns on an open namespace descriptor; CLONE_NEWNET only changes the
            // calling thread's network namespace.
            let r = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
            if r != 0 {
                let _ = ready_tx.send(Err(std::io::Error::last_os_error()));
                return;
            }
            drop(netns);
            let _ = ready_tx.send(Ok(()));
            for (port, reply) in rx {
                let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
                let _ = reply.send(TcpStream::connect(addr));
            }
        })
        .context("start the proxy's dialer thread")?;
    ready_rx
        .recv()
        .context("the proxy's dialer thread ended")?
        .context("enter the container's network namespace")?;
    for (m, l) in listeners {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(format!("proxy-{}", m.host_port))
            .spawn(move || accept_loop(l, m.container_port, tx))
            .context("start a proxy thread")?;
    }
    Ok(())
}

fn accept_loop(l: TcpListener, port: u16, dialer: mpsc::Sender<DialRequest>) {
    for conn in l.incoming() {
        let Ok(client) = conn else { continue };
        let (reply_tx, reply_rx) = mpsc::channel();
        if dialer.send((port, reply_tx)).is_err() {
            return;
        }
        // Nothing listens in the container (yet): the client sees the connection closed.
        let Ok(Ok(upstream)) = reply_rx.recv() else {
            continue;
        };
        let _ = std::thread::Builder::new()
            .name("proxy-conn".into())
            .spawn(move || relay(client, upstream));
    }
}

/// Copy both ways until both directions have ended.
fn relay(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let t = std::thread::spawn(move || copy_half(a2, b2));
    copy_half(b, a);
    let _ = t.join();
}

/// `from` → `to`; at EOF (or an error) pass the half-close on.
fn copy_half(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 32 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    let _ = from.shutdown(Shutdown::Read);
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_forms() {
        let p = parse("127.0.0.1:8080:80").unwrap();
        assert_eq!(p.to_string(), "127.0.0.1:8080->80/tcp");
        assert_eq!(
            parse("8080:80/tcp").unwrap().to_string(),
            "0.0.0.0:8080->80/tcp"
        );
        assert_eq!(parse("80").unwrap().host_port, 0);
        assert_eq!(parse("127.0.0.1::80").unwrap().host_port, 0);
        assert_eq!(
            parse("[::1]:8080:80").unwrap().to_string(),
            "[::1]:8080->80/tcp"
        );
        assert!(parse("8080:80/udp").is_err());
        assert!(parse("x:80").is_err());
        assert!(parse("8080:0").is_err());
        assert!(parse("1.2.3:8080:80").is_err());
        assert!(parse("a:b:c:d").is_err());
        let r = |s: &str| -> Vec<String> {
            parse_all(s)
                .unwrap()
                .iter()
                .map(|p| p.to_string())
                .collect()
        };
        assert_eq!(
            r("8000-8002:9000-9002"),
            [
                "0.0.0.0:8000->9000/tcp",
                "0.0.0.0:8001->9001/tcp",
                "0.0.0.0:8002->9002/tcp"
            ]
        );
        assert_eq!(
            r("127.0.0.1:8000-8001:80-81/tcp"),
            ["127.0.0.1:8000->80/tcp", "127.0.0.1:8001->81/tcp"]
        );
        assert_eq!(r("80-81"), ["0.0.0.0:0->80/tcp", "0.0.0.0:0->81/tcp"]);
        assert_eq!(
            r("[::1]:8000-8001:80-81"),
            ["[::1]:8000->80/tcp", "[::1]:8001->81/tcp"]
        );
        assert_eq!(r("8080:80"), ["0.0.0.0:8080->80/tcp"]);
        assert!(parse_all("8000-8002:80-81").is_err());
        assert!(parse_all("8002-8000:80-82").is_err());
    }

    #[test]
    fn busy_port_is_docker_text() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let err = bind(&[parse(&format!("127.0.0.1:{port}:80")).unwrap()]).unwrap_err();
        assert!(
            err.to_string().contains("port is already allocated"),
            "{err}"
        );
    }
}
