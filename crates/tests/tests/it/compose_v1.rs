//! `strata compose config --format json` against Debian's docker-compose 1.29 (the v1
//! Python tool; `config` needs no daemon) on the same projects: the golden projects of
//! `crates/compose/tests/golden/` that v1 reads (tutorial, merge-two, discovery-name) and
//! the v1-readable projects beside this file (`compose_v1/`: interpolation with `.env`,
//! short and long ports and volumes, depends_on/healthcheck/deploy/networks, three `-f`
//! files). Both outputs are parsed, brought to one form, and compared as JSON values.
//!
//! Keys v1 lacks, dropped from strata's output ([`V1_LACKS`]):
//! - top-level `name` (v1 has no project name in the model);
//! - the implied `default` network: top-level `networks.default` and each service's
//!   `networks: {default: null}`;
//! - the engine-side `name` of networks and volumes, when it is the default
//!   `PROJECT_KEY` (v1 prints a name only when one was written or the resource is external);
//! - `build.dockerfile` when it is the default `Dockerfile`;
//! - `depends_on.*.required` (v1 knows only `condition`);
//! - `ports[].mode` when `ingress` and `ports[].protocol` when `tcp` (v1 prints them only
//!   when written otherwise);
//! - `volumes[].bind.create_host_path` (v1's short bind syntax implies it).
//!
//! Representational differences, normalised on both sides:
//! - v1 adds `version: '3.9'`: dropped;
//! - v1 re-escapes `$` as `$$` in every string (its output is meant to be read again): `$$`
//!   becomes `$` in v1's strings;
//! - v1 keeps a string `command`/`entrypoint` as written, strata splits it into words: a
//!   string is split on whitespace (the projects here use no quotes in them);
//! - ports: v1 prints `published` as a number, and a port with a host IP in short syntax
//!   (`127.0.0.1:8001:8001/tcp`); both sides become `IP:PUBLISHED:TARGET/PROTO/MODE`
//!   strings, compared as sorted lists (v1's merge reorders ports);
//! - volumes: v1 prints short syntax (`SRC:DST:rw`) for short entries and drops a target's
//!   trailing `/`; both sides become `TYPE:SOURCE:TARGET:ro|rw` strings, sorted;
//! - `deploy.resources.*.memory`: v1 prints it as written (`1G`), strata in bytes: v1's is
//!   converted to bytes.

use serde_json::{Map, Value};
use std::path::PathBuf;
use std::process::Command;

/// The keys of strata's output that v1 has no counterpart for (see the module docs).
const V1_LACKS: &[&str] = &[
    "name",
    "networks.default",
    "services.*.networks.default",
    "networks.*.name (default PROJECT_KEY)",
    "volumes.*.name (default PROJECT_KEY)",
    "services.*.build.dockerfile (default Dockerfile)",
    "services.*.depends_on.*.required",
    "services.*.ports[].mode (ingress)",
    "services.*.ports[].protocol (tcp)",
    "services.*.volumes[].bind.create_host_path",
];

struct Case {
    dir: PathBuf,
    /// Where the commands run (a subdirectory for the file search).
    cwd: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

fn case(dir: PathBuf) -> Case {
    let mut args = Vec::new();
    let mut cwd = dir.clone();
    if let Ok(text) = std::fs::read_to_string(dir.join("args")) {
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            let (flag, value) = l.split_once(' ').unwrap_or((l, ""));
            match flag {
                "cwd" => cwd = dir.join(value),
                _ => {
                    args.push(flag.to_string());
                    args.push(value.to_string());
                }
            }
        }
    }
    let env = std::fs::read_to_string(dir.join("env"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Case {
        dir,
        cwd,
        args,
        env,
    }
}

/// `program PREFIX.. ARGS.. EXTRA..` in the case's directory with the case's environment only.
fn run(c: &Case, program: &str, prefix: &[&str], extra: &[&str]) -> String {
    let out = Command::new(program)
        .args(prefix)
        .args(&c.args)
        .args(extra)
        .current_dir(&c.cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/home/user")
        .envs(c.env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {:?} in {}: {}",
        extra,
        c.cwd.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn split_words(v: &mut Value) {
    if let Value::String(s) = v {
        *v = Value::Array(
            s.split_whitespace()
                .map(|w| Value::String(w.into()))
                .collect(),
        );
    }
}

fn unescape(v: &mut Value) {
    match v {
        Value::String(s) => *s = s.replace("$$", "$"),
        Value::Array(a) => a.iter_mut().for_each(unescape),
        Value::Object(m) => m.values_mut().for_each(unescape),
        _ => {}
    }
}

fn s(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `IP:PUBLISHED:TARGET/PROTO/MODE` of a long or (v1) short port.
fn port(v: &Value) -> Value {
    let text = match v {
        Value::String(short) => {
            // v1's `IP:PUBLISHED:TARGET/PROTO`.
            let (rest, proto) = short.rsplit_once('/').unwrap_or((short, "tcp"));
            let parts: Vec<&str> = rest.split(':').collect();
            let (ip, published, target) = match parts.as_slice() {
                [ip, p, t] => (*ip, *p, *t),
                [p, t] => ("", *p, *t),
                [t] => ("", "", *t),
                _ => panic!("port {short}"),
            };
            format!("{ip}:{published}:{target}/{proto}/ingress")
        }
        m => {
            let proto = s(m.get("protocol"));
            let mode = s(m.get("mode"));
            format!(
                "{}:{}:{}/{}/{}",
                s(m.get("host_ip")),
                s(m.get("published")),
                s(m.get("target")),
                if proto.is_empty() {
                    "tcp".into()
                } else {
                    proto
                },
                if mode.is_empty() {
                    "ingress".into()
                } else {
                    mode
                },
            )
        }
    };
    Value::String(text)
}

/// `TYPE:SOURCE:TARGET:ro|rw` of a long or (v1) short volume.
fn volume(v: &Value) -> Value {
    let text = match v {
        Value::String(short) => {
            let parts: Vec<&str> = short.split(':').collect();
            let (src, dst, mode) = match parts.as_slice() {
                [t] => ("", *t, "rw"),
                [s, t, m] => (*s, *t, *m),
                _ => panic!("volume {short}"),
            };
            let kind = if src.starts_with('/') {
                "bind"
            } else {
                "volume"
            };
            format!("{kind}:{src}:{}:{mode}", dst.trim_end_matches('/'))
        }
        m => format!(
            "{}:{}:{}:{}",
            s(m.get("type")),
            s(m.get("source")),
            s(m.get("target")).trim_end_matches('/'),
            if m.get("read_only") == Some(&Value::Bool(true)) {
                "ro"
            } else {
                "rw"
            }
        ),
    };
    Value::String(text)
}

fn sorted(list: Option<&Value>, f: fn(&Value) -> Value) -> Option<Value> {
    let mut items: Vec<Value> = list?.as_array()?.iter().map(f).collect();
    items.sort_by_key(|v| v.to_string());
    Some(Value::Array(items))
}

/// docker's RAMInBytes, for v1's `memory: 1G`.
fn bytes(v: &Value) -> Value {
    let t = s(Some(v)).to_ascii_lowercase();
    let end = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let n: f64 = t[..end].parse().unwrap();
    let mult = match t[end..].trim_end_matches('b') {
        "" => 1u64,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        other => panic!("unit {other}"),
    };
    Value::String(((n * mult as f64) as u64).to_string())
}

/// One form for both tools' output.
fn normalise(mut doc: Value, project: &str, v1: bool) -> Value {
    let top = doc.as_object_mut().unwrap();
    top.remove("name");
    top.remove("version");
    if v1 {
        for v in top.values_mut() {
            unescape(v);
        }
    }
    for key in ["networks", "volumes"] {
        if let Some(Value::Object(res)) = top.get_mut(key) {
            res.remove("default");
            for (k, r) in res.iter_mut() {
                if let Some(m) = r.as_object_mut() {
                    if m.get("name") == Some(&Value::String(format!("{project}_{k}"))) {
                        m.remove("name");
                    }
                }
            }
            if res.is_empty() {
                top.remove(key);
            }
        }
    }
    let services = top
        .get_mut("services")
        .and_then(Value::as_object_mut)
        .unwrap();
    for svc in services.values_mut() {
        let m: &mut Map<String, Value> = svc.as_object_mut().unwrap();
        if let Some(Value::Object(n)) = m.get_mut("networks") {
            n.remove("default");
            if n.is_empty() {
                m.remove("networks");
            }
        }
        for key in ["command", "entrypoint"] {
            if let Some(v) = m.get_mut(key) {
                split_words(v);
            }
        }
        if let Some(Value::Object(b)) = m.get_mut("build") {
            if b.get("dockerfile") == Some(&Value::String("Dockerfile".into())) {
                b.remove("dockerfile");
            }
        }
        if let Some(Value::Object(deps)) = m.get_mut("depends_on") {
            for d in deps.values_mut().filter_map(Value::as_object_mut) {
                d.remove("required");
            }
        }
        if let Some(p) = sorted(m.get("ports"), port) {
            m.insert("ports".into(), p);
        }
        if let Some(v) = sorted(m.get("volumes"), volume) {
            m.insert("volumes".into(), v);
        }
        if let Some(Value::Object(res)) = m.get_mut("deploy").and_then(|d| d.get_mut("resources")) {
            for r in res.values_mut().filter_map(Value::as_object_mut) {
                if let Some(mem) = r.get("memory").cloned() {
                    r.insert("memory".into(), bytes(&mem));
                }
            }
        }
    }
    doc
}

#[test]
fn config_matches_docker_compose_v1() {
    strata_tests::require!(DockerComposeV1);
    let root = strata_tests::repo_root();
    let golden = root.join("crates/compose/tests/golden");
    let here = root.join("crates/tests/tests/it/compose_v1");
    let mut cases: Vec<Case> = ["tutorial", "merge-two", "discovery-name"]
        .iter()
        .map(|n| case(golden.join(n)))
        .collect();
    let mut own: Vec<PathBuf> = std::fs::read_dir(&here)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    own.sort();
    cases.extend(own.into_iter().map(case));
    assert!(V1_LACKS.len() >= 10);
    let mut failed = Vec::new();
    for c in &cases {
        let ours: Value = serde_json::from_str(&run(
            c,
            strata_tests::strata_bin(),
            &["compose"],
            &["config", "--format", "json"],
        ))
        .unwrap();
        let project = ours["name"].as_str().unwrap().to_string();
        let theirs: Value =
            serde_saphyr::from_str(&run(c, "docker-compose", &[], &["config"])).unwrap();
        let (a, b) = (
            normalise(ours, &project, false),
            normalise(theirs, &project, true),
        );
        if a != b {
            failed.push(format!(
                "{}:\n--- strata\n{}\n--- docker-compose 1.29\n{}",
                c.dir.display(),
                serde_json::to_string_pretty(&a).unwrap(),
                serde_json::to_string_pretty(&b).unwrap()
            ));
        }
    }
    println!(
        "{} projects compared with docker-compose 1.29, {} differ",
        cases.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}
