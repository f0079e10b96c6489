//! One file's document (interpolated and schema-valid JSON) to its canonical form, before
//! merging: every short syntax becomes the long one, so that files merge entry by entry
//! (ports, volumes, environment, labels, depends_on, networks, build, ...). Paths stay as
//! written here; they are resolved after the merge.

use crate::schema::PathToken;
use serde_json::{json, Map, Value};

/// A canonicalisation error at a path inside the document.
pub(crate) type CanonError = (Vec<PathToken>, String);

fn at(path: &[&str], i: Option<usize>, msg: String) -> CanonError {
    let mut p: Vec<PathToken> = path.iter().map(|s| PathToken::Key(s.to_string())).collect();
    if let Some(i) = i {
        p.push(PathToken::Index(i));
    }
    (p, msg)
}

pub(crate) fn canonical(doc: &mut Value) -> Result<(), CanonError> {
    let Some(services) = doc.get_mut("services").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    for (name, svc) in services.iter_mut() {
        if svc.is_null() {
            *svc = json!({});
        }
        let Some(svc) = svc.as_object_mut() else {
            continue;
        };
        service(name, svc)?;
    }
    Ok(())
}

/// `KEY=VALUE` / `KEY` list to a map (`KEY` alone is null); a map's scalar values as strings.
pub(crate) fn kv_map(v: &Value, sep: char) -> Value {
    let mut out = Map::new();
    match v {
        Value::Array(items) => {
            for item in items {
                let s = scalar_string(item);
                match s.split_once(sep) {
                    Some((k, v)) => out.insert(k.to_string(), Value::String(v.to_string())),
                    None => out.insert(s, Value::Null),
                };
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                let v = if v.is_null() {
                    Value::Null
                } else {
                    Value::String(scalar_string(v))
                };
                out.insert(k.clone(), v);
            }
        }
        _ => {}
    }
    Value::Object(out)
}

pub(crate) fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn service(name: &str, svc: &mut Map<String, Value>) -> Result<(), CanonError> {
    let p = |k: &'static str| ["services", name, k];
    if let Some(b) = svc.get_mut("build") {
        if let Value::String(ctx) = b {
            *b = json!({ "context": ctx.clone() });
        }
        if let Some(m) = b.as_object_mut() {
            for key in ["args", "labels"] {
                if let Some(v) = m.get_mut(key) {
                    *v = kv_map(v, '=');
                }
            }
        }
    }
    for key in ["command", "entrypoint"] {
        if let Some(Value::String(s)) = svc.get(key) {
            let words = shell_split(s).map_err(|m| at(&p(key), None, m))?;
            svc.insert(key.into(), json!(words));
        }
    }
    for key in ["environment", "labels", "annotations"] {
        if let Some(v) = svc.get_mut(key) {
            *v = kv_map(v, '=');
        }
    }
    if let Some(v) = svc.get_mut("extra_hosts") {
        let new = match &*v {
            Value::Object(m) => Value::Array(
                m.iter()
                    .map(|(h, ip)| Value::String(format!("{h}:{}", scalar_string(ip))))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|s| Value::String(scalar_string(s).replacen('=', ":", 1)))
                    .collect(),
            ),
            other => other.clone(),
        };
        *v = new;
    }
    for key in ["dns", "dns_search", "tmpfs", "env_file", "expose"] {
        if let Some(v) = svc.get_mut(key) {
            if !v.is_array() {
                *v = json!([v.clone()]);
            }
            if key == "expose" {
                for e in v.as_array_mut().into_iter().flatten() {
                    *e = Value::String(scalar_string(e));
                }
            }
        }
    }
    if let Some(Value::Array(files)) = svc.get_mut("env_file") {
        for f in files.iter_mut() {
            if let Value::String(s) = f {
                *f = json!({ "path": s.clone(), "required": true });
            } else if let Some(m) = f.as_object_mut() {
                m.entry("required").or_insert(json!(true));
            }
        }
    }
    if let Some(Value::Array(ports)) = svc.get("ports") {
        let mut out = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            match port {
                Value::Object(m) => {
                    let mut m = m.clone();
                    if let Some(t) = m.get("target") {
                        let t = as_u16(t).ok_or_else(|| {
                            at(&p("ports"), Some(i), "invalid target port".into())
                        })?;
                        m.insert("target".into(), json!(t));
                    }
                    if let Some(pb) = m.get("published") {
                        m.insert("published".into(), Value::String(scalar_string(pb)));
                    }
                    m.entry("protocol").or_insert(json!("tcp"));
                    m.entry("mode").or_insert(json!("ingress"));
                    out.push(Value::Object(m));
                }
                other => {
                    let spec = scalar_string(other);
                    let parsed = short_port(&spec).map_err(|m| at(&p("ports"), Some(i), m))?;
                    out.extend(parsed);
                }
            }
        }
        svc.insert("ports".into(), Value::Array(out));
    }
    if let Some(Value::Array(vols)) = svc.get("volumes") {
        let mut out = Vec::new();
        for (i, v) in vols.iter().enumerate() {
            match v {
                Value::String(s) => {
                    out.push(short_volume(s).map_err(|m| at(&p("volumes"), Some(i), m))?)
                }
                other => out.push(other.clone()),
            }
        }
        svc.insert("volumes".into(), Value::Array(out));
    }
    if let Some(v) = svc.get_mut("depends_on") {
        let mut out = Map::new();
        match v {
            Value::Array(names) => {
                for n in names {
                    out.insert(
                        scalar_string(n),
                        json!({"condition": "service_started", "required": true}),
                    );
                }
            }
            Value::Object(m) => {
                for (n, d) in m {
                    let mut d = d.as_object().cloned().unwrap_or_default();
                    d.entry("condition").or_insert(json!("service_started"));
                    d.entry("required").or_insert(json!(true));
                    out.insert(n.clone(), Value::Object(d));
                }
            }
            _ => {}
        }
        *v = Value::Object(out);
    }
    if let Some(v) = svc.get_mut("networks") {
        if let Value::Array(names) = v {
            let m: Map<String, Value> = names
                .iter()
                .map(|n| (scalar_string(n), Value::Null))
                .collect();
            *v = Value::Object(m);
        }
    }
    if let Some(Value::Array(secrets)) = svc.get_mut("secrets") {
        for s in secrets.iter_mut() {
            if let Value::String(n) = s {
                *s = json!({ "source": n.clone() });
            }
        }
    }
    if let Some(hc) = svc.get_mut("healthcheck").and_then(Value::as_object_mut) {
        if let Some(Value::String(t)) = hc.get("test") {
            let t = t.clone();
            hc.insert("test".into(), json!(["CMD-SHELL", t]));
        }
    }
    Ok(())
}

fn as_u16(v: &Value) -> Option<u16> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `[[IP:][HOST[-HOST]]:]CONTAINER[-CONTAINER][/PROTO]` to long-syntax entries, one per port
/// of a range.
pub(crate) fn short_port(spec: &str) -> Result<Vec<Value>, String> {
    let bad = || format!("invalid port specification {spec:?}");
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p),
        None => (spec, "tcp"),
    };
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(format!(
            "invalid protocol {proto:?} in port specification {spec:?}"
        ));
    }
    // An IPv6 host ip is bracketed: [::1]:80:80.
    let (ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, r) = r.split_once("]:").ok_or_else(bad)?;
        (Some(ip.to_string()), r.to_string())
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (None, rest.to_string()),
            3 => (
                Some(parts[0].to_string()),
                format!("{}:{}", parts[1], parts[2]),
            ),
            _ => return Err(bad()),
        }
    };
    let (published, target) = match rest.split_once(':') {
        Some((h, c)) => (Some(h.to_string()), c.to_string()),
        None => (None, rest),
    };
    let range = |s: &str| -> Result<(u16, u16), String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let a: u16 = a.parse().map_err(|_| bad())?;
        let b: u16 = b.parse().map_err(|_| bad())?;
        if b < a {
            return Err(bad());
        }
        Ok((a, b))
    };
    let (t0, t1) = range(&target)?;
    let pub_range = match published.as_deref() {
        None | Some("") => None,
        Some(h) => Some(range(h)?),
    };
    let count = (t1 - t0) as usize + 1;
    let mut out = Vec::new();
    for k in 0..count {
        let mut m = Map::new();
        m.insert("mode".into(), json!("ingress"));
        if let Some(ip) = ip.as_ref().filter(|i| !i.is_empty()) {
            m.insert("host_ip".into(), json!(ip));
        }
        m.insert("target".into(), json!(t0 as usize + k));
        match pub_range {
            Some((p0, p1)) if p1 - p0 == t1 - t0 => {
                m.insert("published".into(), json!((p0 as usize + k).to_string()));
            }
            // A host range for one container port: docker picks one of them.
            Some((p0, p1)) if t0 == t1 => {
                m.insert("published".into(), json!(format!("{p0}-{p1}")));
            }
            Some(_) => return Err(bad()),
            None => {}
        }
        m.insert("protocol".into(), json!(proto));
        out.push(Value::Object(m));
    }
    Ok(out)
}

/// `[SOURCE:]TARGET[:MODE]` to the long syntax: a source starting with `.`, `/` or `~` is a
/// bind mount, another source a named volume, none an anonymous volume.
pub(crate) fn short_volume(spec: &str) -> Result<Value, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => (None, *t, None),
        [s, t] if t.starts_with('/') => (Some(*s), *t, None),
        [t, m] => (None, *t, Some(*m)),
        [s, t, m] => (Some(*s), *t, Some(*m)),
        _ => return Err(format!("invalid volume specification {spec:?}")),
    };
    if target.is_empty() || source.is_some_and(str::is_empty) {
        return Err(format!("invalid volume specification {spec:?}"));
    }
    let mut m = Map::new();
    let bind =
        source.is_some_and(|s| s.starts_with('.') || s.starts_with('/') || s.starts_with('~'));
    m.insert("type".into(), json!(if bind { "bind" } else { "volume" }));
    if let Some(s) = source {
        m.insert("source".into(), json!(s));
    }
    m.insert("target".into(), json!(target));
    let mut read_only = false;
    let mut nocopy = false;
    let mut propagation = None;
    let mut selinux = None;
    for opt in mode.unwrap_or("").split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => read_only = true,
            "rw" => {}
            "nocopy" => nocopy = true,
            "z" | "Z" => selinux = Some(opt),
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                propagation = Some(opt)
            }
            _ => {
                return Err(format!(
                    "invalid mode {opt:?} in volume specification {spec:?}"
                ))
            }
        }
    }
    if read_only {
        m.insert("read_only".into(), json!(true));
    }
    if bind {
        let mut b = Map::new();
        b.insert("create_host_path".into(), json!(true));
        if let Some(p) = propagation {
            b.insert("propagation".into(), json!(p));
        }
        if let Some(s) = selinux {
            b.insert("selinux".into(), json!(s));
        }
        m.insert("bind".into(), Value::Object(b));
    } else {
        let mut v = Map::new();
        if nocopy {
            v.insert("nocopy".into(), json!(true));
        }
        m.insert("volume".into(), Value::Object(v));
    }
    Ok(Value::Object(m))
}

/// POSIX shell word splitting (quotes and backslashes, no expansion), as compose splits a
/// string `command`/`entrypoint`.
pub(crate) fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(
            short_port("127.0.0.1:8000-8001:80-81/udp").unwrap(),
            vec![
                json!({"mode":"ingress","host_ip":"127.0.0.1","target":80,"published":"8000","protocol":"udp"}),
                json!({"mode":"ingress","host_ip":"127.0.0.1","target":81,"published":"8001","protocol":"udp"}),
            ]
        );
        assert_eq!(
            short_port("3000").unwrap(),
            vec![json!({"mode":"ingress","target":3000,"protocol":"tcp"})]
        );
        assert!(short_port("80:80:80:80").is_err());
        assert!(short_port("8000-8002:80-81").is_err());
    }

    #[test]
    fn volumes() {
        assert_eq!(
            short_volume("./src:/app:ro").unwrap(),
            json!({"type":"bind","source":"./src","target":"/app","read_only":true,"bind":{"create_host_path":true}})
        );
        assert_eq!(
            short_volume("data:/var/lib").unwrap(),
            json!({"type":"volume","source":"data","target":"/var/lib","volume":{}})
        );
        assert_eq!(
            short_volume("/app/node_modules").unwrap(),
            json!({"type":"volume","target":"/app/node_modules","volume":{}})
        );
    }

    #[test]
    fn words() {
        assert_eq!(
            shell_split(r#"sh -c 'echo "hi"' a\ b "x\"y""#).unwrap(),
            ["sh", "-c", "echo \"hi\"", "a b", "x\"y"]
        );
    }
}
