//! Small parsers BuildKit's rules rely on: image references (distribution/reference),
//! platforms (containerd/platforms) and did-you-mean suggestions (BuildKit's `suggest`).

pub use plan::Platform;

const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "windows",
    "zos",
];

fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let (a, v) = match (arch, variant) {
        ("i386", _) => ("386", ""),
        ("x86_64" | "x86-64" | "amd64", v) => ("amd64", if v == "v1" { "" } else { v }),
        ("aarch64" | "arm64", v) => ("arm64", if v == "8" || v == "v8" { "" } else { v }),
        ("armhf", _) => ("arm", "v7"),
        ("armel", _) => ("arm", "v6"),
        ("arm", "" | "7") => ("arm", "v7"),
        ("arm", "5" | "6" | "8") => ("arm", variant),
        (a, v) => (a, v),
    };
    let v = match (a, v) {
        ("arm", "5" | "6" | "8") => format!("v{v}"),
        _ => v.to_string(),
    };
    (a.to_string(), v)
}

/// containerd's `platforms.Parse` for the forms a Dockerfile uses; the error text is
/// containerd's for an invalid component.
pub fn parse_platform(spec: &str) -> Result<Platform, String> {
    let parts: Vec<&str> = spec.split('/').collect();
    for p in &parts {
        if p.is_empty()
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(format!(
                "{} is an invalid component of {}: platform specifier component must match \"^[A-Za-z0-9_.-]+$\": invalid argument",
                crate::go_quote(p),
                crate::go_quote(spec)
            ));
        }
    }
    let lower: Vec<String> = parts.iter().map(|p| p.to_lowercase()).collect();
    match lower.as_slice() {
        [one] => {
            if KNOWN_OS.contains(&one.as_str()) {
                Ok(Platform {
                    os: one.clone(),
                    ..Platform::default()
                })
            } else {
                let (arch, variant) = normalize_arch(one, "");
                Ok(Platform {
                    os: "linux".into(),
                    arch,
                    variant,
                })
            }
        }
        [os, arch] => {
            let (arch, variant) = normalize_arch(arch, "");
            Ok(Platform {
                os: os.clone(),
                arch,
                variant,
            })
        }
        [os, arch, variant] => {
            let (arch, variant) = normalize_arch(arch, variant);
            Ok(Platform {
                os: os.clone(),
                arch,
                variant,
            })
        }
        _ => Err(format!(
            "{}: cannot parse platform specifier: invalid argument",
            crate::go_quote(spec)
        )),
    }
}

/// Levenshtein distance over chars.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// BuildKit's `suggest.Search`: the closest option at distance below 3; none when an option
/// equals the value. Case-insensitive search returns the option in the value's case.
pub fn search(val: &str, options: &[&str], case_sensitive: bool) -> Option<String> {
    let v = if case_sensitive {
        val.to_string()
    } else {
        val.to_lowercase()
    };
    let mut best: Option<String> = None;
    let mut min = 3;
    for opt in options {
        let o = if case_sensitive {
            opt.to_string()
        } else {
            opt.to_lowercase()
        };
        if v == o {
            return None;
        }
        let d = distance(&v, &o);
        if d < min {
            min = d;
            best = Some(if case_sensitive {
                o
            } else if val == val.to_uppercase() {
                o.to_uppercase()
            } else {
                o
            });
        }
    }
    best
}

fn path_component(s: &str) -> bool {
    // [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
    if s.is_empty() {
        return false;
    }
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn domain(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || s.starts_with('[') => (h, Some(p)),
        _ => (s, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    if host.starts_with('[') {
        return host.ends_with(']') && host.len() > 2;
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        })
}

/// distribution/reference's `ParseNormalizedNamed` succeeds.
pub fn valid_reference(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    if s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return false;
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let Some((alg, hex)) = d.split_once(':') else {
            return false;
        };
        let alg_ok = alg.starts_with(|c: char| c.is_ascii_alphabetic())
            && alg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '.'));
        if !alg_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return false;
        }
    }
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            return false;
        }
    }
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let mut comps: Vec<&str> = name.split('/').collect();
    if comps.len() > 1 {
        let first = comps[0];
        let is_domain =
            first.contains(['.', ':']) || first == "localhost" || first != first.to_lowercase();
        if is_domain {
            if !domain(first) {
                return false;
            }
            comps.remove(0);
        }
    }
    comps.iter().all(|c| path_component(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        for ok in [
            "scratch",
            "busybox:latest",
            "busybox:stable-musl",
            "docker.io/library/alpine:3.20",
            "localhost:5000/a/b:c",
            "a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(valid_reference(ok), "{ok}");
        }
        for bad in ["", "busybox:", "Busybox", "a//b", "a:b:c", "-a", "a b"] {
            assert!(!valid_reference(bad), "{bad}");
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            search("BULIDPLATFORM", &["BUILDPLATFORM", "TARGETOS"], true),
            Some("BUILDPLATFORM".into())
        );
        assert_eq!(search("PATH", &["PATH"], true), None);
        assert_eq!(search("xyz", &["PATH"], true), None);
        assert_eq!(search("BADCMD", &["ADD", "ARG"], false), None);
        assert_eq!(search("CPY", &["COPY"], false), Some("COPY".into()));
    }

    #[test]
    fn platforms() {
        assert_eq!(
            parse_platform("linux/amd64").map(|p| p.to_string()),
            Ok("linux/amd64".into())
        );
        assert!(parse_platform("linux/").is_err());
        assert_eq!(parse_platform("arm64").map(|p| p.os), Ok("linux".into()));
    }
}
