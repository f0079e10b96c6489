//! The compose model ([`compose::Project`]) as a [`ProjectPlan`]: each service's build as
//! `strata build` flags, its containers as a runtime [`runtime::Spec`] (the same fields
//! `strata run`'s flags fill), its networks and volumes by their names in the store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::{
    Condition, Dependency, NetworkPlan, ProjectPlan, PullPolicy, ServicePlan, VolumePlan,
    LABEL_NETWORK, LABEL_PROJECT, LABEL_VOLUME,
};

/// Keys of the model strata does not act on yet: named in an error rather than ignored.
const UNSUPPORTED_SERVICE_KEYS: [&str; 10] = [
    "cap_add",
    "cap_drop",
    "devices",
    "privileged",
    "network_mode",
    "pid",
    "ipc",
    "links",
    "volumes_from",
    "sysctls",
];

/// The plan of `p`. Dockerfiles given inline are written to files that live as long as the
/// plan (`ProjectPlan::keep`).
pub fn plan(p: &compose::Project) -> Result<ProjectPlan> {
    let mut keep: Vec<Arc<tempfile::TempDir>> = Vec::new();
    let networks: Vec<NetworkPlan> = p
        .networks
        .iter()
        .map(|(key, n)| {
            let mut labels: BTreeMap<String, String> = n.labels.clone().into_iter().collect();
            if !n.external {
                labels.insert(LABEL_PROJECT.into(), p.name.clone());
                labels.insert(LABEL_NETWORK.into(), key.clone());
            }
            NetworkPlan {
                key: key.clone(),
                name: n.name.clone(),
                external: n.external,
                labels,
            }
        })
        .collect();
    let volumes: Vec<VolumePlan> = p
        .volumes
        .iter()
        .map(|(key, v)| {
            let mut labels: BTreeMap<String, String> = v.labels.clone().into_iter().collect();
            if !v.external {
                labels.insert(LABEL_PROJECT.into(), p.name.clone());
                labels.insert(LABEL_VOLUME.into(), key.clone());
            }
            VolumePlan {
                name: v.name.clone(),
                external: v.external,
                labels,
            }
        })
        .collect();
    let mut services = Vec::new();
    for name in p.start_order() {
        let s = &p.services[name];
        services.push(service(p, name, s, &networks, &mut keep)?);
    }
    Ok(ProjectPlan {
        name: p.name.clone(),
        working_dir: p.working_dir.clone(),
        config_files: p.files.clone(),
        services,
        volumes,
        networks,
        keep,
    })
}

fn other_str(s: &compose::Service, key: &str) -> Option<String> {
    s.other.get(key).and_then(|v| match v {
        serde_json::Value::String(x) => Some(x.clone()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn service(
    p: &compose::Project,
    name: &str,
    s: &compose::Service,
    networks: &[NetworkPlan],
    keep: &mut Vec<Arc<tempfile::TempDir>>,
) -> Result<ServicePlan> {
    let at = |key: &str| format!("services.{name}.{key}");
    for key in UNSUPPORTED_SERVICE_KEYS {
        if s.other.contains_key(key) {
            bail!("{}: not supported by strata compose yet", at(key));
        }
    }
    // Every other key the model leaves untyped is acted on below, or is one strata may
    // ignore (said why); anything else is refused, never silently dropped.
    for key in s.other.keys() {
        match key.as_str() {
            "pull_policy" | "tty" | "mem_limit" | "memswap_limit" | "cpus" | "pids_limit"
            | "security_opt" | "platform" => {}
            // A detached service has no stdin; `compose run` decides for itself.
            "stdin_open" => {}
            // Logs are kept as `strata logs` reads them, whatever the driver asked.
            "logging" => {}
            other => bail!("{}: not supported by strata compose yet", at(other)),
        }
    }
    // `platform:` is the service's image platform: built for it (unless `build.platforms`
    // says), and run as `run --platform` (another platform's programs under emulation,
    // whose absence is said here, before anything starts).
    let platform = match other_str(s, "platform") {
        Some(text) => {
            let pl = registry::Platform::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", at("platform")))?;
            exec::emulation::check(&pl).map_err(|e| anyhow::anyhow!("{}: {e}", at("platform")))?;
            Some(pl)
        }
        None => None,
    };
    let image = s.image_name(&p.name, name);
    let build = match &s.build {
        Some(b) => {
            let mut args = build_args(p, name, &image, b, keep)?;
            if let Some(pl) = &platform {
                args.splice(0..0, ["--platform".to_string(), pl.to_string()]);
            }
            Some(args)
        }
        None => None,
    };
    if s.deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .is_some_and(|r| r.reservations.is_some())
    {
        eprintln!(
            "WARN[0000] {}: reservations are not applied by strata (limits are)",
            at("deploy.resources.reservations")
        );
    }
    if build.is_none() && s.image.is_none() {
        bail!("service \"{name}\" has neither an image nor a build context specified");
    }
    let pull_policy = match other_str(s, "pull_policy").as_deref() {
        None | Some("missing" | "if_not_present") => PullPolicy::Missing,
        Some("always") => PullPolicy::Always,
        Some("never") => PullPolicy::Never,
        Some("build") => PullPolicy::Build,
        Some(other) => bail!("{}: invalid pull policy {other:?}", at("pull_policy")),
    };
    let depends_on = s
        .depends_on
        .iter()
        .map(|(d, dep)| {
            let condition = match dep.condition.as_str() {
                "" | "service_started" => Condition::Started,
                "service_healthy" => Condition::Healthy,
                "service_completed_successfully" => Condition::CompletedSuccessfully,
                other => bail!("{}: unknown condition {other:?}", at("depends_on")),
            };
            Ok(Dependency {
                service: d.clone(),
                condition,
                required: dep.required,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // The service's networks (the project's default when it names none), in order; the
    // service's name is an alias on each, as compose's.
    let mut nets: Vec<(String, Vec<String>)> = Vec::new();
    let keys: Vec<(&String, Option<&compose::ServiceNetwork>)> = if s.networks.is_empty() {
        vec![]
    } else {
        s.networks.iter().map(|(k, v)| (k, v.as_ref())).collect()
    };
    if keys.is_empty() {
        if let Some(n) = networks.iter().find(|n| n.key == "default") {
            nets.push((n.name.clone(), vec![name.to_string()]));
        }
    }
    for (key, sn) in keys {
        let n = networks
            .iter()
            .find(|n| &n.key == key)
            .with_context(|| format!("{}: network {key} is not declared", at("networks")))?;
        let mut aliases = vec![name.to_string()];
        if let Some(sn) = sn {
            aliases.extend(sn.aliases.iter().cloned());
        }
        nets.push((n.name.clone(), aliases));
    }
    let mut env: Vec<String> = Vec::new();
    for (k, v) in &s.environment {
        // Unset in the environment (`None`): compose leaves it out.
        if let Some(v) = v {
            env.push(format!("{k}={v}"));
        }
    }
    let mut mounts = Vec::new();
    for v in &s.volumes {
        mounts.push(mount(p, name, v)?);
    }
    // Secrets: their files, read-only at /run/secrets/NAME (or the target given).
    for (i, sec) in s.secrets.iter().enumerate() {
        let file =
            secret_file(p, &sec.source).with_context(|| format!("{}[{i}]", at("secrets")))?;
        let target = match &sec.target {
            Some(t) if t.starts_with('/') => t.clone(),
            Some(t) => format!("/run/secrets/{t}"),
            None => format!("/run/secrets/{}", sec.source),
        };
        mounts.push(format!("type=bind,source={file},target={target},readonly"));
    }
    let publish = s
        .ports
        .iter()
        .map(|port| {
            let mut out = String::new();
            if let Some(ip) = &port.host_ip {
                out.push_str(ip);
                out.push(':');
            }
            if let Some(h) = &port.published {
                out.push_str(h);
                out.push(':');
            } else if port.host_ip.is_some() {
                out.push(':');
            }
            out.push_str(&format!("{}/{}", port.target, port.protocol));
            out
        })
        .collect();
    let limits = s
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    // deploy.resources.limits, else the service-level mem_limit / cpus / pids_limit.
    let number = |key: &str| -> Result<Option<f64>> {
        match s.other.get(key) {
            None => Ok(None),
            Some(serde_json::Value::Number(n)) => Ok(n.as_f64()),
            Some(serde_json::Value::String(t)) => {
                t.parse::<f64>()
                    .map(Some)
                    .or_else(|_| match compose::parse_bytes(t) {
                        Some(b) => Ok(Some(b as f64)),
                        None => bail!("{}: invalid value {t:?}", at(key)),
                    })
            }
            Some(other) => bail!("{}: invalid value {other}", at(key)),
        }
    };
    let memory = limits
        .and_then(|l| l.memory)
        .map(|m| m as f64)
        .or(number("mem_limit")?);
    let cpus = limits.and_then(|l| l.cpus).or(number("cpus")?);
    let resources = runtime::Resources {
        memory: memory.unwrap_or(0.0) as i64,
        memory_swap: number("memswap_limit")?.map(|v| v as i64).unwrap_or(0),
        nano_cpus: cpus.map(|c| (c * 1e9).round() as i64).unwrap_or(0),
        pids_limit: limits
            .and_then(|l| l.pids)
            .or(number("pids_limit")?.map(|v| v as i64)),
    };
    let security_opt: Vec<String> = match s.other.get("security_opt") {
        None => Vec::new(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .with_context(|| format!("{}: expected strings", at("security_opt")))
            })
            .collect::<Result<_>>()?,
        Some(_) => bail!("{}: expected a list", at("security_opt")),
    };
    let nanos = |d: Option<std::time::Duration>| d.map(|d| d.as_nanos() as i64);
    let health = match &s.healthcheck {
        Some(h) if h.disable => runtime::HealthOpts {
            none: true,
            ..Default::default()
        },
        Some(h) => runtime::HealthOpts {
            test: (!h.test.is_empty()).then(|| h.test.clone()),
            interval: nanos(h.interval),
            timeout: nanos(h.timeout),
            start_period: nanos(h.start_period),
            retries: h.retries.map(|r| r as i64),
            ..Default::default()
        },
        None => runtime::HealthOpts::default(),
    };
    let (network, network_aliases, extra_networks) = match nets.split_first() {
        Some(((n, a), rest)) => (n.clone(), a.clone(), rest.to_vec()),
        None => ("default".to_string(), Vec::new(), Vec::new()),
    };
    let spec = runtime::Spec {
        image: image.clone(),
        platform: platform.clone(),
        command: s.command.clone().unwrap_or_default(),
        entrypoint: s.entrypoint.clone(),
        env,
        workdir: s.working_dir.clone(),
        user: s.user.clone(),
        network,
        network_aliases,
        extra_networks,
        name: None,
        tty: other_str(s, "tty").as_deref() == Some("true"),
        publish,
        auto_remove: false,
        security_opt,
        volumes: Vec::new(),
        mounts,
        tmpfs: s.tmpfs.clone(),
        hostname: s.hostname.clone(),
        add_hosts: s
            .extra_hosts
            .iter()
            .map(|h| h.replacen('=', ":", 1))
            .collect(),
        resources,
        health,
        restart: s.restart.clone(),
        init: s.init.unwrap_or(false),
        publish_all: false,
        labels: s.labels.clone().into_iter().collect(),
        stop_signal: s.stop_signal.clone(),
        stop_timeout: s.stop_grace_period.map(|d| d.as_secs() as i64),
    };
    Ok(ServicePlan {
        name: name.to_string(),
        image,
        build,
        pull_policy,
        replicas: s.replicas() as u32,
        container_name: s.container_name.clone(),
        depends_on,
        spec,
        networks: nets,
    })
}

/// A service volume in `--mount` syntax; a bind's missing host directory is created, as
/// compose does for the short syntax (`bind.create_host_path`).
fn mount(p: &compose::Project, service: &str, v: &compose::ServiceVolume) -> Result<String> {
    let mut parts = vec![format!("type={}", v.kind)];
    match v.kind.as_str() {
        "bind" => {
            let src = v
                .source
                .as_deref()
                .with_context(|| format!("services.{service}.volumes: a bind without source"))?;
            let create = v.bind.as_ref().is_some_and(|b| b.create_host_path);
            if create && !Path::new(src).exists() {
                std::fs::create_dir_all(src)
                    .with_context(|| format!("services.{service}.volumes: create {src}"))?;
            }
            parts.push(format!("source={src}"));
        }
        "volume" => {
            if let Some(src) = &v.source {
                let name = p
                    .volumes
                    .get(src)
                    .map(|vol| vol.name.clone())
                    .with_context(|| {
                        format!("services.{service}.volumes: volume {src} is not declared")
                    })?;
                parts.push(format!("source={name}"));
            }
            if v.volume.as_ref().is_some_and(|o| o.nocopy) {
                parts.push("volume-nocopy".into());
            }
        }
        "tmpfs" => {
            if let Some(size) = v.tmpfs.as_ref().and_then(|t| t.size) {
                parts.push(format!("tmpfs-size={size}"));
            }
            if let Some(mode) = v.tmpfs.as_ref().and_then(|t| t.mode) {
                parts.push(format!("tmpfs-mode={mode:o}"));
            }
        }
        other => bail!("services.{service}.volumes: type {other} is not supported yet"),
    }
    parts.push(format!("target={}", v.target));
    if v.read_only {
        parts.push("readonly".into());
    }
    Ok(parts.join(","))
}

/// The file of the top-level secret `name` (file secrets only).
fn secret_file(p: &compose::Project, name: &str) -> Result<String> {
    let sec = p
        .secrets
        .get(name)
        .with_context(|| format!("secret {name} is not declared"))?;
    match &sec.file {
        Some(f) => Ok(f.clone()),
        None => bail!(
            "secret {name}: only file secrets are supported by strata compose yet \
             (environment and external ones are not)"
        ),
    }
}

/// A service's `build:` as `strata build` flags.
fn build_args(
    p: &compose::Project,
    service: &str,
    image: &str,
    b: &compose::Build,
    keep: &mut Vec<Arc<tempfile::TempDir>>,
) -> Result<Vec<String>> {
    let at = |key: &str| format!("services.{service}.build.{key}");
    for key in [
        "additional_contexts",
        "platforms",
        "shm_size",
        "extra_hosts",
        "isolation",
    ] {
        if b.other.contains_key(key) {
            bail!("{}: not supported by strata compose yet", at(key));
        }
    }
    let mut extra: Vec<String> = Vec::new();
    // Build secrets: `--secret id=NAME,src=FILE` (the id is the target when one is given).
    if let Some(list) = b.other.get("secrets").and_then(|v| v.as_array()) {
        for (i, item) in list.iter().enumerate() {
            let (source, target) = match item {
                serde_json::Value::String(s) => (s.clone(), None),
                serde_json::Value::Object(m) => (
                    m.get("source")
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string(),
                    m.get("target").and_then(|v| v.as_str()).map(str::to_string),
                ),
                _ => bail!("{}[{i}]: expected a name or a mapping", at("secrets")),
            };
            let file =
                secret_file(p, &source).with_context(|| format!("{}[{i}]", at("secrets")))?;
            let id = target.unwrap_or(source);
            extra.extend(["--secret".to_string(), format!("id={id},src={file}")]);
        }
    }
    // Build ssh: `default` or `ID=PATH`, as `--ssh` takes them.
    if let Some(list) = b.other.get("ssh") {
        let items: Vec<String> = match list {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            serde_json::Value::Object(m) => m
                .iter()
                .map(|(k, v)| match v.as_str() {
                    Some(path) if !path.is_empty() => format!("{k}={path}"),
                    _ => k.clone(),
                })
                .collect(),
            _ => bail!("{}: expected a list or a mapping", at("ssh")),
        };
        for i in items {
            extra.extend(["--ssh".to_string(), i]);
        }
    }
    if b.context.contains("://") || b.context.starts_with("git@") {
        bail!("{}: remote contexts are not supported yet", at("context"));
    }
    let context = PathBuf::from(&b.context);
    let mut args = vec!["-t".to_string(), image.to_string()];
    for t in &b.tags {
        args.extend(["-t".to_string(), t.clone()]);
    }
    if let Some(text) = &b.dockerfile_inline {
        let dir = tempfile::tempdir().context("a directory for dockerfile_inline")?;
        let f = dir.path().join("Dockerfile");
        std::fs::write(&f, text).context("write dockerfile_inline")?;
        args.extend(["-f".to_string(), f.display().to_string()]);
        keep.push(Arc::new(dir));
    } else if let Some(df) = &b.dockerfile {
        // Relative to the context, as compose resolves it.
        let path = context.join(df);
        args.extend(["-f".to_string(), path.display().to_string()]);
    }
    if let Some(t) = &b.target {
        args.extend(["--target".to_string(), t.clone()]);
    }
    for (k, v) in &b.args {
        match v {
            Some(v) => args.extend(["--build-arg".to_string(), format!("{k}={v}")]),
            // `ARG` without a value: from the environment if set, as compose passes it.
            None => {
                if let Some(v) = std::env::var_os(k) {
                    args.extend([
                        "--build-arg".to_string(),
                        format!("{k}={}", v.to_string_lossy()),
                    ]);
                }
            }
        }
    }
    for (k, v) in &b.labels {
        args.extend(["--label".to_string(), format!("{k}={v}")]);
    }
    if b.no_cache {
        args.push("--no-cache".into());
    }
    if b.pull {
        args.push("--pull".into());
    }
    for c in &b.cache_from {
        args.extend(["--cache-from".to_string(), c.clone()]);
    }
    for c in &b.cache_to {
        args.extend(["--cache-to".to_string(), c.clone()]);
    }
    if let Some(n) = &b.network {
        args.extend(["--network".to_string(), n.clone()]);
    }
    args.extend(extra);
    args.push(context.display().to_string());
    Ok(args)
}
