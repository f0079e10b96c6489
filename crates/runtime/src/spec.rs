//! What a container runs: the caller's [`Spec`] with the image's config turned into a
//! container's [`Config`](crate::Config) (docker's rules for command, environment, working
//! directory, user, name), and that config into the executor's spec.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::volumes::{Hold, Volumes};
use crate::{container, copyup, mounts, ports};

/// What to run, as `docker run` (or a compose service) says it; strings in docker's syntax
/// are checked when the container is created, in docker's order.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// The image: a name, an image id or a prefix of one, or a manifest digest.
    pub image: String,
    /// `--platform`: the image of that platform from an index; an image of another
    /// platform is docker's error. `None`: the host's image of an index (else its first).
    pub platform: Option<store::Platform>,
    /// The command and its arguments (replace the image's CMD; empty keeps it).
    pub command: Vec<String>,
    /// Overwrites the image's ENTRYPOINT and drops its CMD: `--entrypoint E` is `[E]`,
    /// `--entrypoint ""` (or compose's `entrypoint: []`) is `[]`, which clears it.
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE`, or a bare `KEY`: this process's value of `KEY`, else `KEY` unset
    /// (docker's rule for `-e KEY`).
    pub env: Vec<String>,
    /// An absolute working directory (created if missing).
    pub workdir: Option<String>,
    /// `name|uid[:group|gid]`.
    pub user: Option<String>,
    /// `default` (or `private`), `none`, `host`, or the name (or id) of a user-defined
    /// network ([`Networks`](crate::Networks)) to join.
    pub network: String,
    /// `--network-alias`: more names of the container on the user-defined network
    /// `network` (compose: the service name).
    pub network_aliases: Vec<String>,
    /// More user-defined networks to join, after `network`: name (or id) and aliases each.
    pub extra_networks: Vec<(String, Vec<String>)>,
    /// The container's name (a detached container without one gets a generated name).
    pub name: Option<String>,
    /// A pseudo-terminal.
    pub tty: bool,
    /// Published ports, `[IP:][HOST_PORT:]CONTAINER_PORT[/tcp]` each.
    pub publish: Vec<String>,
    /// Remove the container when it exits.
    pub auto_remove: bool,
    /// `--security-opt` values: `seccomp=unconfined` or `seccomp=PROFILE.json`.
    pub security_opt: Vec<String>,
    /// `-v/--volume` values: `[SRC:]DEST[:MODE]`.
    pub volumes: Vec<String>,
    /// `--mount` values: `type=bind|volume|tmpfs,source=...,target=...[,readonly]`.
    pub mounts: Vec<String>,
    /// `--tmpfs` values: `PATH[:size=...,mode=...]`.
    pub tmpfs: Vec<String>,
    /// `--hostname` (default: the id's first 12 digits).
    pub hostname: Option<String>,
    /// `--add-host` values: `NAME:IP`.
    pub add_hosts: Vec<String>,
    /// `--memory`, `--memory-swap`, `--cpus`, `--pids-limit`.
    pub resources: crate::cgroup::Resources,
    /// `--health-*`, `--no-healthcheck`.
    pub health: crate::health::HealthOpts,
    /// `--restart` in docker's syntax (`None`: `no`).
    pub restart: Option<String>,
    /// `--init`.
    pub init: bool,
    /// `-P`: publish every port the image EXPOSEs on an ephemeral host port.
    pub publish_all: bool,
    /// `-l/--label`: the container's labels, over the image's.
    pub labels: Vec<(String, String)>,
    /// `--stop-signal` (default: the image's StopSignal, else SIGTERM).
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds (default 10; negative waits forever).
    pub stop_timeout: Option<i64>,
}

/// What `prepare` gives: the container's config, its image, and holds on the volumes it
/// mounts (so no `volume rm` takes them before the container is recorded or has ended).
pub(crate) struct Prepared {
    pub config: container::Config,
    pub image: store::Image,
    pub holds: Vec<Hold>,
}

impl Prepared {
    /// Undo what preparing made for a container that will not exist: its holds released,
    /// the anonymous volumes made for it removed.
    pub(crate) fn discard(self, store_root: &Path) {
        discard(store_root, &self.config.mounts, self.holds);
    }
}

fn discard(store_root: &Path, mounts: &[mounts::MountPoint], holds: Vec<Hold>) {
    drop(holds);
    if let Ok(v) = Volumes::new(store_root) {
        let _ = v.remove_anonymous(mounts);
    }
}

/// Everything before the container starts: the image, its config with the overrides, the
/// overlay's lowerdirs (an empty one goes under `dir`), its mounts (volumes created and
/// filled from the image on first use). The name is left empty.
pub(crate) fn prepare(
    store: &store::Writer<'_>,
    a: &Spec,
    dir: &Path,
    id: String,
) -> Result<Prepared> {
    if let Some(n) = &a.name {
        check_name(n)?;
    }
    // Checked before anything is resolved; the image's VOLUMEs are added below.
    mounts::parse_all(&a.volumes, &a.mounts, &a.tmpfs, &[])?;
    let extra_hosts = a
        .add_hosts
        .iter()
        .map(|h| parse_add_host(h))
        .collect::<Result<Vec<_>>>()?;
    if let Some(h) = &a.hostname {
        check_hostname(h)?;
    }
    let mut wanted: Vec<(&str, &[String])> = Vec::new();
    let network = match a.network.as_str() {
        "default" | "private" | "" => "private",
        "none" => "none",
        "host" => "host",
        other => {
            wanted.push((other, &a.network_aliases));
            "private"
        }
    };
    if wanted.is_empty() && !a.network_aliases.is_empty() {
        bail!("network-scoped alias is supported only for containers in user defined networks");
    }
    for alias in a
        .network_aliases
        .iter()
        .chain(a.extra_networks.iter().flat_map(|(_, x)| x))
    {
        // A name of the members' /etc/hosts files: no blank, no comment, no control.
        let ok = alias
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && alias
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            bail!("invalid network alias \"{alias}\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
        }
    }
    for (n, aliases) in &a.extra_networks {
        if network != "private" {
            bail!(
                "container cannot be disconnected from host network or connected to host network"
            );
        }
        wanted.push((n, aliases));
    }
    let mut networks = Vec::new();
    if !wanted.is_empty() {
        let nets = crate::Networks::new(store.root())?;
        for (n, aliases) in wanted {
            let found = nets
                .get(n)
                .map_err(|_| anyhow::anyhow!("network {n} not found"))?;
            if networks
                .iter()
                .any(|x: &crate::NetworkAttach| x.id == found.record.id)
            {
                continue;
            }
            networks.push(crate::NetworkAttach {
                name: found.record.name.clone(),
                id: found.record.id.clone(),
                aliases: aliases.to_vec(),
            });
        }
    }
    let mut ports = a
        .publish
        .iter()
        .map(|p| ports::parse_all(p))
        .collect::<Result<Vec<_>>>()?
        .concat();
    if !ports.is_empty() && network != "private" {
        bail!(
            "-p/--publish needs the default network (a private namespace): the container's \
             ports cannot be published with --network {}",
            a.network
        );
    }
    let seccomp = seccomp_opt(&a.security_opt)?;
    if let Some(sig) = &a.stop_signal {
        crate::signal::parse(sig).map_err(|e| anyhow::anyhow!("invalid --stop-signal: {e}"))?;
    }
    let restart = match &a.restart {
        Some(r) => crate::restart::RestartPolicy::parse(r)?,
        None => crate::restart::RestartPolicy::default(),
    };
    if a.auto_remove && restart.restarts() {
        bail!("Conflicting options: --restart and --rm");
    }
    a.resources.validate()?;
    let mut resources = a.resources;
    if !resources.is_empty() {
        if let Err(why) = crate::cgroup::root() {
            // As docker where the kernel lacks a controller: said, and discarded.
            eprintln!("WARNING: rootless: {why}. Resource limits (memory, cpus, pids) discarded.");
            resources = Default::default();
        }
    }
    if resources.memory > 0 && resources.memory_swap == 0 {
        // docker's default: as much swap as memory.
        resources.memory_swap = resources.memory * 2;
    }
    let user_env = a
        .env
        .iter()
        .map(|e| env_value(e))
        .collect::<Result<Vec<_>>>()?;
    let image = store
        .resolve_platform(&a.image, a.platform.as_ref())
        .map_err(|e| match e {
            store::Error::NoSuchImage(_) => {
                anyhow::anyhow!("Unable to find image '{}' locally", a.image)
            }
            e => anyhow::Error::new(e),
        })?;
    let cfg = &image.config.config;
    if a.publish_all {
        // Every EXPOSEd tcp or udp port not published by -p, on an ephemeral host port
        // (docker's -P).
        for key in cfg.exposed_ports.iter().flat_map(|m| m.keys()) {
            let (number, proto) = key.split_once('/').unwrap_or((key, "tcp"));
            let Ok(container_port) = number.parse::<u16>() else {
                continue;
            };
            let published =
                |p: &ports::PortMap| p.container_port == container_port && p.proto == proto;
            if !matches!(proto, "tcp" | "udp") || ports.iter().any(published) {
                continue;
            }
            ports.push(ports::parse(&format!("{container_port}/{proto}"))?);
        }
        if !ports.is_empty() && network != "private" {
            bail!("-P/--publish-all needs the default network (a private namespace)");
        }
    }
    let healthcheck = a.health.merge(cfg.healthcheck.as_ref())?;

    let (entrypoint, cmd) = match &a.entrypoint {
        Some(e) => (e.clone(), a.command.clone()),
        None if a.command.is_empty() => (
            cfg.entrypoint.clone().unwrap_or_default(),
            cfg.cmd.clone().unwrap_or_default(),
        ),
        None => (
            cfg.entrypoint.clone().unwrap_or_default(),
            a.command.clone(),
        ),
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        bail!("No command specified");
    }
    let workdir = match a.workdir.as_deref() {
        Some(w) if !w.starts_with('/') => {
            bail!("the working directory '{w}' is invalid, it needs to be an absolute path")
        }
        Some(w) => w.to_string(),
        // Kept as the Dockerfile wrote it (`/root/`); cleaned before use, as docker does.
        None => match cfg.working_dir.as_deref() {
            Some(w) if !w.is_empty() => clean_path(w),
            _ => "/".to_string(),
        },
    };
    let user = match a.user.as_deref() {
        Some(u) if !u.is_empty() => Some(u.to_string()),
        _ => cfg.user.clone().filter(|u| !u.is_empty()),
    };
    let hostname = match &a.hostname {
        Some(h) => h.clone(),
        None => id.get(..12).unwrap_or(&id).to_string(),
    };

    // The executor wants absolute paths; `--root` may be relative.
    let lower = image_lowers(store, &image, dir)
        .with_context(|| format!("prepare the layers of {}", a.image))?
        .into_iter()
        .map(std::path::absolute)
        .collect::<std::io::Result<Vec<_>>>()
        .context("make the layer paths absolute")?;
    let image_volumes: Vec<String> = cfg
        .volumes
        .as_ref()
        .map(|v| v.keys().cloned().collect())
        .unwrap_or_default();
    let specs = mounts::parse_all(&a.volumes, &a.mounts, &a.tmpfs, &image_volumes)?;
    let (mounts, holds) = materialize(store.root(), &specs, &lower, &id)?;
    let home = home_dir(&lower, user.as_deref());
    let env = container_env(
        cfg.env.as_deref().unwrap_or_default(),
        &user_env,
        &hostname,
        a.tty,
        &home,
    );
    let config = container::Config {
        id,
        name: String::new(),
        image: a.image.clone(),
        image_id: image.id().to_string(),
        manifest: image.manifest_digest.to_string(),
        created: store::now_rfc3339(),
        args: argv,
        env,
        cwd: workdir,
        user,
        hostname,
        network: network.to_string(),
        lower,
        tty: a.tty,
        ports,
        auto_remove: a.auto_remove,
        stop_signal: a
            .stop_signal
            .clone()
            .or_else(|| cfg.stop_signal.clone())
            .filter(|s| !s.is_empty()),
        stop_timeout: a.stop_timeout,
        labels: {
            let mut l = cfg.labels.clone().unwrap_or_default();
            l.extend(a.labels.iter().cloned());
            l
        },
        seccomp,
        mounts,
        extra_hosts,
        resources,
        healthcheck,
        restart,
        init: a.init,
        networks,
    };
    Ok(Prepared {
        config,
        image,
        holds,
    })
}

/// The mounts made concrete: a bind's missing host directory created (as docker's `-v`
/// does), named volumes created when missing, anonymous ones created, and a volume that is
/// still empty filled with the image's content at its destination (unless `nocopy`).
fn materialize(
    store_root: &Path,
    specs: &[mounts::MountSpec],
    lower: &[PathBuf],
    id: &str,
) -> Result<(Vec<mounts::MountPoint>, Vec<Hold>)> {
    let mut out = Vec::new();
    let mut holds = Vec::new();
    match materialize_into(store_root, specs, lower, id, &mut out, &mut holds) {
        Ok(()) => Ok((out, holds)),
        Err(e) => {
            discard(store_root, &out, holds);
            Err(e)
        }
    }
}

fn materialize_into(
    store_root: &Path,
    specs: &[mounts::MountSpec],
    lower: &[PathBuf],
    id: &str,
    out: &mut Vec<mounts::MountPoint>,
    holds: &mut Vec<Hold>,
) -> Result<()> {
    let mut volumes = None;
    for m in specs {
        let point = match m.kind {
            mounts::MountKind::Bind => {
                let source = m.source.clone().unwrap_or_default();
                if std::fs::symlink_metadata(&source).is_err() {
                    std::fs::create_dir_all(&source).with_context(|| {
                        format!("error while creating mount source path '{source}'")
                    })?;
                }
                mounts::MountPoint {
                    kind: m.kind,
                    name: None,
                    source,
                    destination: m.destination.clone(),
                    rw: !m.readonly,
                    mode: m.mode.clone(),
                    anonymous: false,
                    tmpfs_size: None,
                    tmpfs_mode: None,
                }
            }
            mounts::MountKind::Volume => {
                let vols = match &volumes {
                    Some(v) => v,
                    None => volumes.insert(Volumes::new(store_root)?),
                };
                let (v, hold) =
                    vols.create_and_hold(m.source.as_deref(), m.source.is_none(), id)?;
                holds.push(hold);
                let point = mounts::MountPoint {
                    kind: m.kind,
                    name: Some(v.name.clone()),
                    source: std::path::absolute(v.mountpoint())
                        .context("make the volume's path absolute")?
                        .to_string_lossy()
                        .into_owned(),
                    destination: m.destination.clone(),
                    rw: !m.readonly,
                    mode: m.mode.clone(),
                    anonymous: v.meta.anonymous,
                    tmpfs_size: None,
                    tmpfs_mode: None,
                };
                // Recorded before the copy, so a failed copy's anonymous volume is removed.
                out.push(point);
                // Only while no other container has it: one that runs could swap what the
                // copy creates for links out of the volume.
                let alone = vols.users(&v.name)?.iter().all(|u| u == id);
                if !m.nocopy && alone {
                    copyup::copy_up(lower, &m.destination, &v.mountpoint())?;
                }
                continue;
            }
            mounts::MountKind::Tmpfs => mounts::MountPoint {
                kind: m.kind,
                name: None,
                source: String::new(),
                destination: m.destination.clone(),
                rw: !m.readonly,
                mode: m.mode.clone(),
                anonymous: false,
                tmpfs_size: m.tmpfs_size,
                tmpfs_mode: m.tmpfs_mode,
            },
        };
        out.push(point);
    }
    Ok(())
}

/// `--add-host NAME:IP` (the IP may be an IPv6 address with colons, or in brackets).
fn parse_add_host(h: &str) -> Result<(String, String)> {
    let bad = || {
        anyhow::anyhow!(
            "invalid argument \"{h}\" for \"--add-host\" flag: bad format for add-host: \"{h}\""
        )
    };
    let (name, ip) = h.split_once(':').ok_or_else(bad)?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() {
        return Err(bad());
    }
    if ip == "host-gateway" {
        bail!("--add-host {h}: host-gateway is not supported by strata");
    }
    let addr: std::net::IpAddr = ip.parse().map_err(|_| {
        anyhow::anyhow!("invalid argument \"{h}\" for \"--add-host\" flag: invalid IP address in add-host: \"{ip}\"")
    })?;
    Ok((name.to_string(), addr.to_string()))
}

/// A host name the kernel takes (at most 64 bytes, no NUL) and docker's rule (RFC 1123
/// labels).
fn check_hostname(h: &str) -> Result<()> {
    let ok = !h.is_empty()
        && h.len() <= 64
        && h.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !ok {
        bail!("invalid hostname format: {h}");
    }
    Ok(())
}

/// Overlay lowerdirs for an image's layers, top first, each layer's snapshot unpacked on
/// first use; an image without layers gets an empty directory made under `tmp`.
fn image_lowers(
    store: &store::Writer<'_>,
    image: &store::Image,
    tmp: &Path,
) -> Result<Vec<PathBuf>> {
    let nothing_to_fetch = |_: &store::Digest| Ok::<(), layer::snapshot::SnapshotError>(());
    let mut out = layer::snapshot::chain(store, &image.config.rootfs.diff_ids, &nothing_to_fetch)?;
    if out.is_empty() {
        let empty = tmp.join("empty-lower");
        if let Err(e) = std::fs::create_dir_all(&empty) {
            // As the engine words it: its context, then the error.
            let what = format!("create an empty lowerdir: {e}");
            return Err(anyhow::Error::new(e).context(what));
        }
        out.push(empty);
    }
    Ok(out)
}

/// The executor's spec for a container whose writable directories live under `dir`
/// (`upper`, `work`, `state`, created here); standard streams on /dev/null.
pub(crate) fn spec_of(c: &container::Config, dir: &Path) -> Result<exec::ExecSpec> {
    let dir = std::path::absolute(dir).context("make the container's path absolute")?;
    let upper = dir.join("upper");
    let work = dir.join("work");
    let state = dir.join("state");
    for d in [&upper, &work, &state] {
        std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }
    let rootfs = exec::Rootfs::Overlay {
        lower: c.lower.clone(),
        upper,
        work,
    };
    let mut spec = exec::ExecSpec::new(rootfs, c.args.clone());
    spec.env = c.env.clone();
    spec.cwd = PathBuf::from(&c.cwd);
    spec.user = c.user.clone();
    spec.hostname = c.hostname.clone();
    spec.network = match c.network.as_str() {
        "host" => exec::Network::Host,
        "none" => exec::Network::None,
        _ => exec::Network::Private,
    };
    spec.state_dir = Some(state);
    spec.tty = c.tty;
    spec.init = c.init;
    let confinement = confinement(c)?;
    spec.seccomp = confinement.seccomp;
    spec.no_new_privs = confinement.no_new_privs;
    spec.mounts = c.mounts.iter().map(|m| m.to_exec()).collect();
    if !c.networks.is_empty() {
        // The runtime's own hosts file, rewritten in place as members come and go (see
        // `network.rs`); first, so a `-v …:/etc/hosts` of the user's still wins.
        let hosts = dir.join("hosts");
        std::fs::write(&hosts, crate::network::hosts_base(&c.extra_hosts))
            .with_context(|| format!("write {}", hosts.display()))?;
        spec.mounts.insert(
            0,
            exec::Mount::Bind {
                source: hosts,
                target: PathBuf::from("/etc/hosts"),
                readonly: false,
            },
        );
    }
    spec.extra_hosts = c
        .extra_hosts
        .iter()
        .map(|(n, ip)| Ok((n.clone(), ip.parse().context("an --add-host address")?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(spec)
}

/// What confines a container's processes beyond its namespaces: its main process and every
/// process `exec` starts in it get exactly this (with docker's capability set, which the
/// executor applies to both alike).
pub(crate) struct Confinement {
    pub seccomp: exec::Seccomp,
    pub no_new_privs: bool,
}

/// The confinement of the container `c` (one place, so `exec` can never drift from `run`).
pub(crate) fn confinement(c: &container::Config) -> Result<Confinement> {
    Ok(Confinement {
        seccomp: c.seccomp.to_exec()?,
        // docker's default (no `--security-opt no-new-privileges` yet).
        no_new_privs: false,
    })
}

/// `--security-opt` values (docker's `seccomp=` and legacy `seccomp:` forms); the last
/// seccomp option wins, as in docker. A profile file is read and compiled here, so a bad one
/// is an error naming the file before anything starts.
fn seccomp_opt(opts: &[String]) -> Result<container::SeccompOpt> {
    let mut seccomp = container::SeccompOpt::Default;
    for o in opts {
        let value = match o.split_once(['=', ':']) {
            Some(("seccomp", v)) => v,
            _ => bail!(
                "invalid --security-opt {o:?}: strata supports seccomp=unconfined and \
                 seccomp=PROFILE.json"
            ),
        };
        seccomp = match value {
            "unconfined" => container::SeccompOpt::Unconfined,
            "" => bail!("invalid --security-opt {o:?}: seccomp needs unconfined or a file"),
            path => {
                let json = std::fs::read_to_string(path)
                    .with_context(|| format!("opening seccomp profile {path} failed"))?;
                let opt = container::SeccompOpt::Profile {
                    path: path.to_string(),
                    json,
                };
                opt.to_exec()?;
                opt
            }
        };
    }
    Ok(seccomp)
}

/// docker's rule for container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
fn check_name(n: &str) -> Result<()> {
    let ok = n.len() >= 2
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        bail!("Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    }
    Ok(())
}

/// `-e KEY=VALUE` as given; `-e KEY` takes strata's own value, or stays a bare `KEY`, which
/// unsets it (docker's rule).
pub(crate) fn env_value(e: &str) -> Result<String> {
    let key = e.split('=').next().unwrap_or_default();
    if key.is_empty() {
        bail!("invalid environment variable: {e}");
    }
    if e.contains('=') {
        return Ok(e.to_string());
    }
    Ok(match std::env::var(e) {
        Ok(v) => format!("{e}={v}"),
        Err(_) => e.to_string(),
    })
}

pub(crate) fn env_key(e: &str) -> &str {
    e.split('=').next().unwrap_or_default()
}

/// The container's environment as docker makes it: `PATH` (docker's default), `HOSTNAME`,
/// `TERM=xterm` with a tty, overridden by the `-e` variables and then by the image's that
/// `-e` does not name; a bare `KEY` removes `KEY`; `HOME` from the user's passwd entry when
/// nothing sets it (as runc does).
fn container_env(
    image: &[String],
    user: &[String],
    hostname: &str,
    tty: bool,
    home: &str,
) -> Vec<String> {
    let mut container: Vec<String> = user.to_vec();
    for e in image {
        if !user.iter().any(|u| env_key(u) == env_key(e)) {
            container.push(e.clone());
        }
    }
    let mut env = vec![
        format!("PATH={}", exec::DEFAULT_PATH),
        format!("HOSTNAME={hostname}"),
    ];
    if tty {
        env.push("TERM=xterm".to_string());
    }
    for e in container {
        match env.iter().position(|d| env_key(d) == env_key(&e)) {
            Some(i) => env[i] = e,
            None => env.push(e),
        }
    }
    env.retain(|e| e.contains('='));
    if !env.iter().any(|e| env_key(e) == "HOME") {
        env.push(format!("HOME={home}"));
    }
    env
}

/// The user's home directory from the image's `/etc/passwd` (found in the topmost layer that
/// has one); `/` when the user has no entry, as runc defaults.
pub(crate) fn home_dir(lowers: &[PathBuf], user: Option<&str>) -> String {
    let name = user
        .unwrap_or_default()
        .split(':')
        .next()
        .unwrap_or_default();
    let name = if name.is_empty() { "0" } else { name };
    let numeric = name.bytes().all(|b| b.is_ascii_digit());
    let passwd = lowers.iter().find_map(|l| {
        let p = l.join("etc/passwd");
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => Some(std::fs::read_to_string(&p).unwrap_or_default()),
            // A whiteout or anything else hides the lower layers' file.
            Ok(_) => Some(String::new()),
            Err(_) => None,
        }
    });
    let passwd = passwd.unwrap_or_default();
    let uid = name.parse::<u32>().ok();
    let home = exec::user::passwd_entries(&passwd)
        .find(|e| {
            if numeric {
                Some(e.uid) == uid
            } else {
                e.name == name
            }
        })
        .map(|e| e.home)
        .filter(|h| !h.is_empty())
        .unwrap_or("/")
        .to_string();
    home
}

/// Go's `path.Clean` of `/` + `p`: docker cleans the image's WorkingDir before it chdirs.
use escape::clean::rooted as clean_path;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_follows_docker_rules() {
        let image = vec!["PATH=/img".to_string(), "A=1".into(), "B=2".into()];
        let user = vec!["B=3".to_string(), "STRATA_UNSET_C".into(), "A".into()];
        let env = container_env(&image, &user, "abc", true, "/root");
        assert_eq!(
            env,
            vec![
                "PATH=/img",
                "HOSTNAME=abc",
                "TERM=xterm",
                "B=3",
                "HOME=/root"
            ]
        );
    }

    #[test]
    fn workdir_is_cleaned() {
        assert_eq!(clean_path("/root/"), "/root");
        assert_eq!(clean_path("/x/../y/."), "/y");
        assert_eq!(clean_path(""), "/");
    }

    #[test]
    fn names() {
        assert!(check_name("web-1.a_b").is_ok());
        assert!(check_name("-x").is_err());
        assert!(check_name("a").is_err());
        assert!(check_name("a/b").is_err());
    }
}
