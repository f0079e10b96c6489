//! The generated `/etc/hosts` and `/etc/resolv.conf`, as BuildKit writes them for a RUN.

use std::net::IpAddr;

use crate::Network;

/// BuildKit's hosts file: `127.0.0.1 localhost <hostname>`, the IPv6 loopback line, then one
/// line per extra host.
pub(crate) fn hosts(hostname: &str, extra: &[(String, IpAddr)]) -> String {
    let mut s = if hostname.is_empty() {
        "127.0.0.1\tlocalhost\n".to_string()
    } else {
        format!("127.0.0.1\tlocalhost {hostname}\n")
    };
    s.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (host, ip) in extra {
        s.push_str(&format!("{ip}\t{host}\n"));
    }
    s
}

/// The host's resolv.conf. With the host network it is copied as is; in a namespace of its
/// own the loopback nameservers (unreachable there) are dropped, as docker does; if none is
/// left, the private network uses slirp4netns' forwarder (which asks the host's resolver)
/// and an isolated one Google's public servers (docker's fallback).
pub(crate) fn resolv_conf(host: &str, network: Network) -> String {
    if network == Network::Host {
        return host.to_string();
    }
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            let addr = addr.split('%').next().unwrap_or("");
            match addr.parse::<IpAddr>() {
                Ok(ip) if ip.is_loopback() => continue,
                _ => servers += 1,
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        if network == Network::Private {
            out.push_str(&format!("nameserver {}\n", crate::net::SLIRP_DNS));
        } else {
            out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_like_buildkit() {
        let extra = vec![("db".to_string(), "10.0.0.2".parse().unwrap())];
        assert_eq!(
            hosts("box", &extra),
            "127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.2\tdb\n"
        );
    }

    #[test]
    fn resolv_filters_loopback_in_own_netns() {
        let host = "search example.com\nnameserver 127.0.0.53\nnameserver 1.1.1.1\n";
        assert_eq!(resolv_conf(host, Network::Host), host);
        for net in [Network::None, Network::Private] {
            assert_eq!(
                resolv_conf(host, net),
                "search example.com\nnameserver 1.1.1.1\n"
            );
        }
        assert_eq!(
            resolv_conf("nameserver 127.0.0.1\n", Network::None),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        // The private network falls back to slirp4netns' forwarder, which reaches the
        // host's own (loopback) resolver.
        assert_eq!(
            resolv_conf("nameserver 127.0.0.53\nnameserver ::1\n", Network::Private),
            "nameserver 10.0.2.3\n"
        );
    }
}
