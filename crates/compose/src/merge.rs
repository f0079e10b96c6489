//! Merging canonical documents in order, with the Compose Specification's rules
//! (`13-merge.md`): mappings merge key by key, sequences append (without duplicates),
//! `command`, `entrypoint` and `healthcheck.test` are replaced, `ports` are unique by
//! (host_ip, target, published, protocol) and `volumes`, `secrets` and `configs` by target;
//! a scalar is replaced. Short syntaxes were made long before (`canon`), so `environment`,
//! `labels`, `depends_on`, `networks` and `build.args` are mappings merged by key.

use serde_json::{Map, Value};

/// Merges `over` into `base`.
pub(crate) fn merge_docs(base: &mut Value, over: Value) {
    merge(base, over, &[]);
}

fn merge(base: &mut Value, over: Value, path: &[&str]) {
    let in_service = path.len() == 2 && path[0] == "services";
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                let replace = in_service && matches!(k.as_str(), "command" | "entrypoint")
                    || (path.len() == 3
                        && path[0] == "services"
                        && path[2] == "healthcheck"
                        && k == "test");
                match b.get_mut(&k) {
                    Some(slot) if !replace && !v.is_null() => {
                        if in_service {
                            match k.as_str() {
                                "ports" => {
                                    unique_by(slot, v, port_key);
                                    continue;
                                }
                                "volumes" | "secrets" | "configs" => {
                                    unique_by(slot, v, target_key);
                                    continue;
                                }
                                _ => {}
                            }
                        }
                        let mut p = path.to_vec();
                        p.push(&k);
                        merge(slot, v, &p);
                    }
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(o)) => {
            for v in o {
                if !b.contains(&v) {
                    b.push(v);
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn port_key(v: &Value) -> Value {
    let g = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    Value::Array(vec![
        g("host_ip"),
        g("target"),
        g("published"),
        g("protocol"),
    ])
}

fn target_key(v: &Value) -> Value {
    v.get("target")
        .or_else(|| v.get("source"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Entries of `over` replace those of `base` with the same key (merged mapping-wise), others
/// are appended.
fn unique_by(base: &mut Value, over: Value, key: fn(&Value) -> Value) {
    let (Value::Array(b), Value::Array(o)) = (&mut *base, over.clone()) else {
        *base = over;
        return;
    };
    for v in o {
        let k = key(&v);
        match b.iter_mut().find(|e| key(e) == k) {
            Some(slot) => {
                if let (Value::Object(s), Value::Object(n)) = (&mut *slot, &v) {
                    let mut merged: Map<String, Value> = s.clone();
                    for (nk, nv) in n {
                        merged.insert(nk.clone(), nv.clone());
                    }
                    *s = merged;
                } else {
                    *slot = v;
                }
            }
            None => b.push(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules() {
        let mut a = json!({"services": {"w": {
            "command": ["a", "b"], "dns": ["1.1.1.1"], "environment": {"A": "1", "B": "2"},
            "ports": [{"target": 80, "published": "8080", "protocol": "tcp"}],
            "volumes": [{"type": "volume", "source": "foo", "target": "/work"}],
            "healthcheck": {"test": ["CMD", "a"], "retries": 3}
        }}});
        let b = json!({"services": {"w": {
            "command": ["c"], "dns": ["8.8.8.8", "1.1.1.1"], "environment": {"B": "3"},
            "ports": [{"target": 80, "published": "8080", "protocol": "tcp", "mode": "host"}, {"target": 81, "protocol": "tcp"}],
            "volumes": [{"type": "volume", "source": "bar", "target": "/work"}],
            "healthcheck": {"test": ["CMD", "b"]}
        }}});
        merge_docs(&mut a, b);
        assert_eq!(
            a,
            json!({"services": {"w": {
                "command": ["c"], "dns": ["1.1.1.1", "8.8.8.8"], "environment": {"A": "1", "B": "3"},
                "ports": [{"target": 80, "published": "8080", "protocol": "tcp", "mode": "host"}, {"target": 81, "protocol": "tcp"}],
                "volumes": [{"type": "volume", "source": "bar", "target": "/work"}],
                "healthcheck": {"test": ["CMD", "b"], "retries": 3}
            }}})
        );
    }
}
