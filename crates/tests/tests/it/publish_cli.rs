//! `run -P` (every EXPOSEd port on an ephemeral host port), `-p` port ranges and UDP
//! ports, end to end through the userspace proxy (TCP on a busybox httpd).

use std::io::Read;
use std::time::Duration;

use crate::common::http_get as get;
use crate::run_cli::{eventually, run_d, setup, Detached};

const HTTPD: &str = "busybox mkdir -p /www && echo hello-from-container > /www/index.html && \
                     exec busybox httpd -f -p 80 -h /www";

/// Two consecutive free ports on 127.0.0.1.
fn free_pair() -> u16 {
    loop {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

#[test]
fn publish_all_and_port_ranges() {
    strata_tests::require!(Root, Busybox);
    let env = setup();
    let _guard = Detached(&env);
    let tar = env.path("busybox.tar");
    env.ok(&[
        "import",
        "--change",
        "EXPOSE 80 8080/tcp",
        tar.to_str().unwrap(),
        "exposed:local",
    ]);
    let id = run_d(&env, &["-P", "exposed:local", "sh", "-c", HTTPD]);
    let ports = env.ok(&["port", &id]);
    assert_eq!(ports.lines().count(), 2, "{ports}");
    assert!(ports.contains("8080/tcp -> 0.0.0.0:"), "{ports}");
    let line = env.ok(&["port", &id, "80/tcp"]);
    let port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 80);
    eventually("httpd through the -P port", || {
        get(port).contains("hello-from-container")
    });
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", &id])).unwrap();
    assert_eq!(
        v[0]["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"],
        port.to_string()
    );

    // A range: one proxy per port, in order.
    let a = free_pair();
    let publish = format!("127.0.0.1:{a}-{}:80-81", a + 1);
    let id = run_d(&env, &["-p", &publish, "busybox:local", "sh", "-c", HTTPD]);
    let ports = env.ok(&["port", &id]);
    assert!(
        ports.contains(&format!("80/tcp -> 127.0.0.1:{a}")),
        "{ports}"
    );
    assert!(
        ports.contains(&format!("81/tcp -> 127.0.0.1:{}", a + 1)),
        "{ports}"
    );
    eventually("httpd through the range's first port", || {
        get(a).contains("hello-from-container")
    });
    // UDP: bound on the host, shown as docker shows it (busybox has no UDP server to answer;
    // the proxy's datagrams are checked in the runtime's unit tests).
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let u = udp.local_addr().unwrap().port();
    drop(udp);
    let publish = format!("127.0.0.1:{u}:53/udp");
    let id = run_d(&env, &["-p", &publish, "busybox:local", "sleep", "60"]);
    assert_eq!(
        env.ok(&["port", &id]).trim(),
        format!("53/udp -> 127.0.0.1:{u}")
    );
    assert_eq!(
        env.ok(&["port", &id, "53/udp"]).trim(),
        format!("127.0.0.1:{u}")
    );
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", &id])).unwrap();
    assert_eq!(
        v[0]["NetworkSettings"]["Ports"]["53/udp"][0]["HostPort"],
        u.to_string()
    );
    assert!(
        std::net::UdpSocket::bind(("127.0.0.1", u)).is_err(),
        "the host port is held by the proxy"
    );

    // A container its restart policy started again is reached through the same port: each
    // run answers one connection with its own random number, then exits.
    let p = free_pair();
    let publish = format!("127.0.0.1:{p}:80");
    let id = run_d(
        &env,
        &[
            "--restart",
            "always",
            "-p",
            &publish,
            "busybox:local",
            "sh",
            "-c",
            "echo run-$RANDOM$RANDOM | busybox nc -l -p 80",
        ],
    );
    let mut answers = std::collections::BTreeSet::new();
    eventually("answers from two runs", || {
        let mut s = String::new();
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", p)) {
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = c.read_to_string(&mut s);
        }
        if s.starts_with("run-") {
            answers.insert(s);
        }
        answers.len() >= 2
    });
    env.ok(&["rm", "-f", &id]);

    // Mismatched ranges: docker's error, nothing started.
    let o = env.run(&[
        "run",
        "-d",
        "-p",
        "8000-8002:80-81",
        "busybox:local",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("invalid ranges specified"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
