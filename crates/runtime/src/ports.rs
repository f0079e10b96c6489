//! Published ports, `-p [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|/udp]`: a userspace TCP and
//! UDP proxy from a host address into a container's private network namespace.
//!
//! The listeners are bound in the caller's (the host's) namespace before the container
//! starts, so a busy port fails the start. Once the container runs, one *dialer* thread
//! enters the container's network namespace (`setns(CLONE_NEWNET)` on
//! `/proc/<pid>/ns/net`; a thread may switch its own network namespace) and stays there:
//! the sockets it creates belong to that namespace for good. For each accepted connection it
//! connects to `127.0.0.1:CONTAINER_PORT` there, and two threads copy the bytes both ways,
//! passing a half-close on (`shutdown(SHUT_WR)`) when one side finishes sending.
//!
//! UDP: one host socket per port; each client address gets its own upstream socket, made
//! by the dialer in the container's namespace and connected to `127.0.0.1:CONTAINER_PORT`,
//! and a thread that sends the container's replies back to that client. A client's
//! session ends after 2 minutes without a reply (as a NAT forgets it).

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMap {
    pub host_ip: IpAddr,
    /// 0 = an ephemeral port chosen when binding.
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp` or `udp`.
    #[serde(default = "tcp", skip_serializing_if = "is_tcp")]
    pub proto: String,
}

fn tcp() -> String {
    "tcp".into()
}

fn is_tcp(p: &str) -> bool {
    p == "tcp"
}

impl fmt::Display for PortMap {
    /// docker's PORTS column: `127.0.0.1:8080->80/tcp`, `[::1]:8080->80/tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = SocketAddr::new(self.host_ip, self.host_port);
        write!(f, "{addr}->{}/{}", self.container_port, self.proto)
    }
}

/// A bound host socket of a published port.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

/// A published port with its bound socket.
pub type Bound = (PortMap, Listener);

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
    if proto != "tcp" && proto != "udp" {
        bail!("--publish {spec}: only tcp and udp ports can be published (not {proto:?})");
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
        proto: proto.to_string(),
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
pub fn bind(maps: &[PortMap]) -> Result<Vec<Bound>> {
    let mut out = Vec::new();
    for m in maps {
        let addr = SocketAddr::new(m.host_ip, m.host_port);
        let busy = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                anyhow::anyhow!("Bind for {addr} failed: port is already allocated")
            } else {
                anyhow::anyhow!("cannot listen on {addr}: {e}")
            }
        };
        let l = if m.proto == "udp" {
            Listener::Udp(UdpSocket::bind(addr).map_err(busy)?)
        } else {
            Listener::Tcp(TcpListener::bind(addr).map_err(busy)?)
        };
        let local = match &l {
            Listener::Tcp(t) => t.local_addr(),
            Listener::Udp(u) => u.local_addr(),
        };
        let mut m = m.clone();
        m.host_port = local.context("listener address")?.port();
        out.push((m, l));
    }
    Ok(out)
}

/// What the dialer thread makes in the container's namespace.
enum DialRequest {
    Tcp(u16, mpsc::Sender<std::io::Result<TcpStream>>),
    Udp(u16, mpsc::Sender<std::io::Result<UdpSocket>>),
}

/// A running proxy. Its dialer can move to another network namespace: a container that its
/// restart policy started again is reached through the same host ports.
pub struct Proxy {
    dialer: Arc<Mutex<mpsc::Sender<DialRequest>>>,
}

impl Proxy {
    /// Dial from now on in the network namespace of `pid` (the new run's pid 1).
    pub fn retarget(&self, pid: u32) -> Result<()> {
        let tx = dialer(pid)?;
        *self.dialer.lock().unwrap_or_else(|p| p.into_inner()) = tx;
        Ok(())
    }
}

/// Start proxying: the dialer thread in the network namespace of `pid`, one accepting thread
/// per listener. The threads live as long as the process.
pub fn start(listeners: Vec<Bound>, pid: u32) -> Result<Proxy> {
    let (tx, rx) = mpsc::channel::<DialRequest>();
    drop(rx);
    let shared = Arc::new(Mutex::new(tx));
    if listeners.is_empty() {
        return Ok(Proxy { dialer: shared });
    }
    *shared.lock().unwrap_or_else(|p| p.into_inner()) = dialer(pid)?;
    for (m, l) in listeners {
        let tx = shared.clone();
        let b = std::thread::Builder::new().name(format!("proxy-{}", m.host_port));
        match l {
            Listener::Tcp(l) => b.spawn(move || accept_loop(l, m.container_port, tx)),
            Listener::Udp(u) => b.spawn(move || udp_loop(u, m.container_port, tx)),
        }
        .context("start a proxy thread")?;
    }
    Ok(Proxy { dialer: shared })
}

/// A dialer thread in the network namespace of `pid`; it ends when its senders are gone.
fn dialer(pid: u32) -> Result<mpsc::Sender<DialRequest>> {
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
            let at = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
            for request in rx {
                match request {
                    DialRequest::Tcp(port, reply) => {
                        let _ = reply.send(TcpStream::connect(at(port)));
                    }
                    DialRequest::Udp(port, reply) => {
                        let sock = UdpSocket::bind(at(0)).and_then(|s| {
                            s.connect(at(port))?;
                            Ok(s)
                        });
                        let _ = reply.send(sock);
                    }
                }
            }
        })
        .context("start the proxy's dialer thread")?;
    ready_rx
        .recv()
        .context("the proxy's dialer thread ended")?
        .context("enter the container's network namespace")?;
    Ok(tx)
}

/// The current dialer's sender.
type Dialer = Arc<Mutex<mpsc::Sender<DialRequest>>>;

fn current(d: &Dialer) -> mpsc::Sender<DialRequest> {
    d.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn accept_loop(l: TcpListener, port: u16, dialer: Dialer) {
    for conn in l.incoming() {
        let Ok(client) = conn else { continue };
        let (reply_tx, reply_rx) = mpsc::channel();
        if current(&dialer)
            .send(DialRequest::Tcp(port, reply_tx))
            .is_err()
        {
            continue;
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

/// How long a UDP client's session lives without a reply from the container.
const UDP_IDLE: Duration = Duration::from_secs(120);

/// Datagrams from each client to its own upstream socket in the container, replies back.
fn udp_loop(host: UdpSocket, port: u16, dialer: Dialer) {
    let host = Arc::new(host);
    let sessions: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = host.recv_from(&mut buf) else {
            continue;
        };
        let known = sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&client)
            .cloned();
        let upstream = match known {
            Some(u) => u,
            None => {
                let (reply_tx, reply_rx) = mpsc::channel();
                if current(&dialer)
                    .send(DialRequest::Udp(port, reply_tx))
                    .is_err()
                {
                    continue;
                }
                let Ok(Ok(u)) = reply_rx.recv() else {
                    continue;
                };
                let u = Arc::new(u);
                sessions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(client, u.clone());
                let (host, sessions, back) = (host.clone(), sessions.clone(), u.clone());
                let _ = std::thread::Builder::new()
                    .name("proxy-udp".into())
                    .spawn(move || {
                        let _ = back.set_read_timeout(Some(UDP_IDLE));
                        let mut buf = vec![0u8; 65536];
                        while let Ok(n) = back.recv(&mut buf) {
                            let _ = host.send_to(&buf[..n], client);
                        }
                        sessions
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&client);
                    });
                u
            }
        };
        let _ = upstream.send(&buf[..n]);
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
        assert_eq!(
            parse("5353:53/udp").unwrap().to_string(),
            "0.0.0.0:5353->53/udp"
        );
        assert!(parse("8080:80/sctp").is_err());
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

    /// The UDP proxy end to end within this process's own network namespace (the dialer
    /// joins it: root only): two clients, each with its own session, get their replies.
    #[test]
    fn udp_datagrams_and_replies_go_through() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root (setns)");
            return;
        }
        let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
        let echo_port = echo.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = echo.recv_from(&mut buf) {
                let mut reply = b"echo:".to_vec();
                reply.extend_from_slice(&buf[..n]);
                let _ = echo.send_to(&reply, from);
            }
        });
        let bound = bind(&[parse(&format!("127.0.0.1::{echo_port}/udp")).unwrap()]).unwrap();
        let proxy_port = bound[0].0.host_port;
        assert_ne!(proxy_port, 0);
        assert_eq!(bound[0].0.proto, "udp");
        start(bound, std::process::id()).unwrap();
        for who in ["a", "b"] {
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c.connect(("127.0.0.1", proxy_port)).unwrap();
            for i in 0..3 {
                let msg = format!("{who}{i}");
                c.send(msg.as_bytes()).unwrap();
                let mut buf = [0u8; 1500];
                let n = c.recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], format!("echo:{msg}").as_bytes());
            }
        }
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
