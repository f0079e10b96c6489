//! After the merge: profiles, paths, env_file, defaults and types, then the typed project
//! and its checks (depends_on, cycles, undefined resources).

use crate::*;

pub(crate) struct Ctx<'a> {
    pub(crate) project_dir: &'a Path,
    pub(crate) home: Option<&'a str>,
    pub(crate) env: &'a BTreeMap<String, String>,
    pub(crate) locate: &'a Locator<'a>,
}

impl Ctx<'_> {
    /// A host path: `~` expanded, relative to the project directory, cleaned.
    pub(crate) fn host_path(&self, p: &str) -> String {
        let p = match (p.strip_prefix('~'), self.home) {
            (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
                format!("{home}{rest}")
            }
            _ => p.to_string(),
        };
        absolute(self.project_dir, Path::new(&p))
            .to_string_lossy()
            .into_owned()
    }
}

pub(crate) fn is_remote_context(c: &str) -> bool {
    c.contains("://") || c.starts_with("git@") || c.starts_with("github.com/")
}

/// Profiles, paths, env_file, defaults, types; then the typed project and its checks.
pub(crate) fn finalise(
    mut doc: Value,
    name: &str,
    profiles: &[String],
    explicit: &[String],
    ctx: &Ctx,
) -> Result<Project, Error> {
    let obj = doc.as_object_mut().expect("a mapping");
    obj.remove("name");
    let mut services = match obj.remove("services") {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };

    // Profiles.
    let mut all_profiles = BTreeSet::new();
    for s in services.values() {
        for p in s
            .get("profiles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            all_profiles.insert(canon::scalar_string(p));
        }
    }
    for e in explicit {
        if !services.contains_key(e) {
            return Err(Error::new(
                ErrorKind::UndefinedService,
                format!("no such service: {e}"),
            ));
        }
    }
    let profiles_of = |s: &Value| -> Vec<String> {
        s.get("profiles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(canon::scalar_string)
            .collect()
    };
    // A service named explicitly adds its profiles to the active ones (compose-spec
    // 15-profiles.md); its dependencies are not pulled in otherwise.
    let mut enabled: BTreeSet<String> = profiles.iter().cloned().collect();
    for e in explicit {
        enabled.extend(profiles_of(&services[e]));
    }
    let active: BTreeSet<String> = services
        .iter()
        .filter(|(n, s)| {
            let ps = profiles_of(s);
            ps.is_empty()
                || ps.iter().any(|p| enabled.contains(p))
                || enabled.contains("*")
                || explicit.contains(n)
        })
        .map(|(n, _)| n.clone())
        .collect();
    let inactive: BTreeSet<String> = services
        .keys()
        .filter(|k| !active.contains(*k))
        .cloned()
        .collect();
    services.retain(|k, _| active.contains(k));

    let mut uses_default_network = false;
    let mut svc_out: Vec<(String, Service)> = Vec::new();
    for (sname, mut s) in services {
        let m = s.as_object_mut().expect("canonical service");
        finalise_service(&sname, m, ctx)?;
        if !m.contains_key("networks") && m.get("network_mode").is_none() {
            m.insert("networks".into(), json!({"default": null}));
        }
        if m.get("networks").and_then(|n| n.get("default")).is_some() {
            uses_default_network = true;
        }
        if m.get("image").is_none() && m.get("build").is_none() {
            return Err(ctx.locate.error(
                ErrorKind::Invalid,
                &["services", &sname],
                format!("service {sname:?} has neither an image nor a build context specified: invalid compose project"),
            ));
        }
        let svc: Service = serde_path_to_error::deserialize(s).map_err(|e| {
            use schema::PathToken::{Index, Key};
            let mut path = vec![Key("services".into()), Key(sname.clone())];
            path.extend(e.path().iter().filter_map(|seg| match seg {
                serde_path_to_error::Segment::Map { key } => Some(Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(Index(*index)),
                _ => None,
            }));
            let msg = e.into_inner().to_string();
            let msg = match msg.split_once(", expected ") {
                Some((what, want)) => {
                    let what = what
                        .trim_start_matches("invalid type: ")
                        .trim_start_matches("string ");
                    let want = match want.trim() {
                        "u64" | "i64" | "u32" | "u16" | "i32" => "an integer",
                        "f64" | "f32" => "a number",
                        "a boolean" | "bool" => "a boolean",
                        other => other,
                    };
                    format!("invalid value {what}: must be {want}")
                }
                None => msg,
            };
            ctx.locate.error_at(ErrorKind::Invalid, &path, msg)
        })?;
        svc_out.push((sname, svc));
    }
    svc_out.sort_by(|a, b| a.0.cmp(&b.0));

    // depends_on: known services, no cycle.
    let mut dropped = Vec::new();
    let known: BTreeSet<String> = svc_out.iter().map(|(n, _)| n.clone()).collect();
    for (sname, svc) in &mut svc_out {
        let mut drop = Vec::new();
        for (dep, d) in &svc.depends_on {
            if !known.contains(dep) {
                if !d.required {
                    dropped.push(format!(
                        "service {sname:?} depends on undefined service {dep:?}, which is not required: ignored"
                    ));
                    drop.push(dep.clone());
                    continue;
                }
                let why = if inactive.contains(dep) {
                    " (its profiles are not active)"
                } else {
                    ""
                };
                return Err(ctx.locate.error(
                    ErrorKind::UndefinedService,
                    &["services", sname, "depends_on", dep],
                    format!("service {sname:?} depends on undefined service {dep:?}{why}"),
                ));
            }
        }
        for d in drop {
            svc.depends_on.shift_remove(&d);
        }
    }
    let services: IndexMap<String, Service> = svc_out.into_iter().collect();
    if let Some(cycle) = find_cycle(&services) {
        let first = cycle[0].clone();
        return Err(ctx.locate.error(
            ErrorKind::DependencyCycle,
            &["services", &first, "depends_on"],
            format!("dependency cycle detected: {}", cycle.join(" -> ")),
        ));
    }

    // Top-level resources.
    let mut networks: IndexMap<String, Network> = IndexMap::new();
    if uses_default_network {
        networks.insert("default".into(), Network::default());
    }
    let top = |obj: &mut serde_json::Map<String, Value>, key: &str| -> Vec<(String, Value)> {
        match obj.remove(key) {
            Some(Value::Object(m)) => m
                .into_iter()
                .map(|(k, v)| (k, if v.is_null() { json!({}) } else { v }))
                .collect(),
            _ => Vec::new(),
        }
    };
    for (k, mut v) in top(obj, "networks") {
        coerce_resource(&mut v);
        let n: Network = serde_json::from_value(v).map_err(|e| {
            ctx.locate
                .error(ErrorKind::Invalid, &["networks", &k], e.to_string())
        })?;
        networks.insert(k, n);
    }
    for (k, n) in networks.iter_mut() {
        if n.name.is_empty() {
            n.name = if n.external {
                k.clone()
            } else {
                format!("{name}_{k}")
            };
        }
    }
    let mut volumes: IndexMap<String, Volume> = IndexMap::new();
    for (k, mut v) in top(obj, "volumes") {
        coerce_resource(&mut v);
        let mut vol: Volume = serde_json::from_value(v).map_err(|e| {
            ctx.locate
                .error(ErrorKind::Invalid, &["volumes", &k], e.to_string())
        })?;
        if vol.name.is_empty() {
            vol.name = if vol.external {
                k.clone()
            } else {
                format!("{name}_{k}")
            };
        }
        volumes.insert(k, vol);
    }
    let mut secrets: IndexMap<String, Secret> = IndexMap::new();
    for (k, mut v) in top(obj, "secrets") {
        coerce_resource(&mut v);
        let mut sec: Secret = serde_json::from_value(v).map_err(|e| {
            ctx.locate
                .error(ErrorKind::Invalid, &["secrets", &k], e.to_string())
        })?;
        if let Some(f) = &sec.file {
            sec.file = Some(ctx.host_path(f));
        }
        if sec.name.is_empty() {
            sec.name = if sec.external {
                k.clone()
            } else {
                format!("{name}_{k}")
            };
        }
        secrets.insert(k, sec);
    }
    // A service's named volume, network or secret must be declared.
    for (sname, svc) in &services {
        for (i, v) in svc.volumes.iter().enumerate() {
            if v.kind == "volume" {
                if let Some(src) = &v.source {
                    if !volumes.contains_key(src) {
                        return Err(ctx.locate.error_at(
                            ErrorKind::Invalid,
                            &item_path(sname, "volumes", i),
                            format!("service {sname:?} refers to undefined volume {src}: invalid compose project"),
                        ));
                    }
                }
            }
        }
        for n in svc.networks.keys() {
            if !networks.contains_key(n) {
                return Err(ctx.locate.error(
                    ErrorKind::Invalid,
                    &["services", sname, "networks", n],
                    format!("service {sname:?} refers to undefined network {n}: invalid compose project"),
                ));
            }
        }
        for s in &svc.secrets {
            if !secrets.contains_key(&s.source) {
                return Err(ctx.locate.error(
                    ErrorKind::Invalid,
                    &["services", sname, "secrets"],
                    format!(
                        "service {sname:?} refers to undefined secret {}: invalid compose project",
                        s.source
                    ),
                ));
            }
        }
    }
    let other: BTreeMap<String, Value> = obj.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok(Project {
        name: name.to_string(),
        services,
        networks,
        volumes,
        secrets,
        other,
        all_profiles: all_profiles.into_iter().collect(),
        warnings: dropped,
        ..Project::default()
    })
}

pub(crate) fn coerce_resource(v: &mut Value) {
    if let Some(m) = v.as_object_mut() {
        to_bool(m, "external");
        for key in ["labels", "driver_opts"] {
            if let Some(l) = m.get_mut(key) {
                *l = strings_map(&canon::kv_map(l, '='));
            }
        }
    }
}

/// A map's null values as empty strings.
pub(crate) fn strings_map(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), if v.is_null() { json!("") } else { v.clone() }))
                .collect(),
        ),
        other => other.clone(),
    }
}

pub(crate) fn to_bool(m: &mut serde_json::Map<String, Value>, key: &str) {
    if let Some(Value::String(s)) = m.get(key) {
        let b = match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" | "1" => true,
            "false" | "no" | "n" | "off" | "0" => false,
            _ => return, // left for the typed model to refuse, located
        };
        m.insert(key.into(), json!(b));
    }
}

pub(crate) fn to_number(m: &mut serde_json::Map<String, Value>, key: &str) {
    if let Some(Value::String(s)) = m.get(key) {
        if let Ok(n) = s.trim().parse::<i64>() {
            m.insert(key.into(), json!(n));
        } else if let Ok(f) = s.trim().parse::<f64>() {
            m.insert(key.into(), json!(f));
        }
    }
}

pub(crate) fn finalise_service(
    sname: &str,
    m: &mut serde_json::Map<String, Value>,
    ctx: &Ctx,
) -> Result<(), Error> {
    for k in ["init", "privileged", "read_only", "tty", "stdin_open"] {
        to_bool(m, k);
    }
    to_number(m, "scale");
    if let Some(b) = m.get_mut("build").and_then(Value::as_object_mut) {
        let c = b
            .get("context")
            .and_then(Value::as_str)
            .unwrap_or(".")
            .to_string();
        let c = if is_remote_context(&c) {
            c
        } else {
            ctx.host_path(&c)
        };
        b.insert("context".into(), json!(c));
        if !b.contains_key("dockerfile") && !b.contains_key("dockerfile_inline") {
            b.insert("dockerfile".into(), json!("Dockerfile"));
        }
        if let Some(Value::Object(args)) = b.get_mut("args") {
            for (k, v) in args.iter_mut() {
                if v.is_null() {
                    if let Some(e) = ctx.env.get(k) {
                        *v = json!(e);
                    }
                }
            }
        }
        to_bool(b, "no_cache");
        to_bool(b, "pull");
    }
    // env_file, then environment; `KEY` alone from the environment.
    let mut environment: IndexMap<String, Value> = IndexMap::new();
    if let Some(Value::Array(files)) = m.get_mut("env_file") {
        for (i, f) in files.iter_mut().enumerate() {
            let Some(fm) = f.as_object_mut() else {
                continue;
            };
            to_bool(fm, "required");
            let p = ctx.host_path(fm.get("path").and_then(Value::as_str).unwrap_or(""));
            fm.insert("path".into(), json!(p));
            let required = fm.get("required").and_then(Value::as_bool).unwrap_or(true);
            match std::fs::read_to_string(&p) {
                Ok(text) => {
                    let vars = dotenv::parse(&text, &|k| ctx.env.get(k).cloned()).map_err(
                        |(l, msg)| {
                            Error::new(ErrorKind::EnvFile, msg).at(Some(Path::new(&p)), l as u64, 1)
                        },
                    )?;
                    for (k, v) in vars {
                        environment.insert(k, json!(v));
                    }
                }
                Err(_) if !required => {}
                Err(e) => {
                    return Err(ctx.locate.error_at(
                        ErrorKind::EnvFile,
                        &item_path(sname, "env_file", i),
                        if e.kind() == std::io::ErrorKind::NotFound {
                            format!("env file {p} not found: stat {p}: no such file or directory")
                        } else {
                            format!("env file {p}: {e}")
                        },
                    ));
                }
            }
        }
    }
    if let Some(Value::Object(env)) = m.get("environment") {
        for (k, v) in env {
            let v = match v {
                Value::Null => ctx.env.get(k).map_or(Value::Null, |s| json!(s)),
                other => other.clone(),
            };
            environment.insert(k.clone(), v);
        }
    }
    if !environment.is_empty() {
        m.insert("environment".into(), json!(environment));
    }
    if let Some(Value::Object(labels)) = m.get("labels") {
        m.insert("labels".into(), strings_map(&Value::Object(labels.clone())));
    }
    if let Some(Value::Array(vols)) = m.get_mut("volumes") {
        for v in vols.iter_mut().filter_map(Value::as_object_mut) {
            to_bool(v, "read_only");
            let bind = v.get("type").and_then(Value::as_str) == Some("bind");
            if bind {
                if let Some(Value::String(src)) = v.get("source") {
                    let p = ctx.host_path(src);
                    v.insert("source".into(), json!(p));
                }
            }
            if let Some(b) = v.get_mut("bind").and_then(Value::as_object_mut) {
                to_bool(b, "create_host_path");
            }
            if let Some(b) = v.get_mut("volume").and_then(Value::as_object_mut) {
                to_bool(b, "nocopy");
            }
            if let Some(t) = v.get_mut("tmpfs").and_then(Value::as_object_mut) {
                to_number(t, "mode");
            }
        }
    }
    if let Some(Value::Array(ports)) = m.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            to_number(p, "target");
        }
    }
    if let Some(Value::Object(deps)) = m.get_mut("depends_on") {
        for d in deps.values_mut().filter_map(Value::as_object_mut) {
            to_bool(d, "required");
            to_bool(d, "restart");
        }
    }
    if let Some(hc) = m.get_mut("healthcheck").and_then(Value::as_object_mut) {
        to_bool(hc, "disable");
        to_number(hc, "retries");
    }
    if let Some(d) = m.get_mut("deploy").and_then(Value::as_object_mut) {
        to_number(d, "replicas");
        if let Some(r) = d.get_mut("resources").and_then(Value::as_object_mut) {
            for k in ["limits", "reservations"] {
                if let Some(l) = r.get_mut(k).and_then(Value::as_object_mut) {
                    to_number(l, "cpus");
                    to_number(l, "pids");
                    if let Some(Value::String(mem)) = l.get("memory") {
                        let bytes = parse_bytes(mem).ok_or_else(|| {
                            ctx.locate.error(
                                ErrorKind::Invalid,
                                &["services", sname, "deploy", "resources", k, "memory"],
                                format!("invalid size {mem:?}"),
                            )
                        })?;
                        l.insert("memory".into(), json!(bytes));
                    }
                }
            }
        }
    }
    // Durations: checked here to locate the error.
    let mut durs: Vec<(Vec<&str>, String)> = Vec::new();
    if let Some(Value::String(s)) = m.get("stop_grace_period") {
        durs.push((vec!["stop_grace_period"], s.clone()));
    }
    if let Some(hc) = m.get("healthcheck").and_then(Value::as_object) {
        for k in ["interval", "timeout", "start_period", "start_interval"] {
            if let Some(Value::String(s)) = hc.get(k) {
                durs.push((vec!["healthcheck", k], s.clone()));
            }
        }
    }
    for (p, s) in durs {
        if parse_duration(&s).is_none() {
            let mut path = vec!["services", sname];
            path.extend(p);
            return Err(ctx.locate.error(
                ErrorKind::Invalid,
                &path,
                format!("invalid duration {s:?}"),
            ));
        }
    }
    Ok(())
}

/// A depends_on cycle as `[a, b, a]`, looked for from services in name order.
pub(crate) fn find_cycle(services: &IndexMap<String, Service>) -> Option<Vec<String>> {
    fn visit<'a>(
        n: &'a str,
        services: &'a IndexMap<String, Service>,
        state: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        state.insert(n, 1);
        stack.push(n);
        for d in services[n].depends_on.keys() {
            match state.get(d.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|s| *s == d).unwrap();
                    let mut c: Vec<String> = stack[from..].iter().map(|s| s.to_string()).collect();
                    c.push(d.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(d, services, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n, 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in services.keys() {
        if !state.contains_key(n.as_str()) {
            if let Some(c) = visit(n, services, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}
