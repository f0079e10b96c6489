//! `system df`: what the store holds, as docker's table of disk usage; `version` and
//! `info`: docker's client version lines and the system facts that apply to strata.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use store::{Digest, Store};

use crate::format::{human_size, render, Row};

#[derive(Args)]
pub struct DfArgs {
    /// `table`, `json`, or a template such as `{{.Type}}\t{{.Size}}`.
    #[arg(long)]
    pub format: Option<String>,
}

/// docker's RECLAIMABLE cell: `1.2MB (45%)`, the size alone when there is nothing.
fn reclaimable(r: u64, total: u64, percent: bool) -> String {
    if percent && total > 0 {
        format!("{} ({}%)", human_size(r), r * 100 / total)
    } else {
        human_size(r)
    }
}

pub fn df(store: &Store, a: DfArgs) -> Result<ExitCode> {
    let store = &store.lock_shared()?;
    let containers = runtime::list(store)?;
    let used_images: BTreeSet<&str> = containers
        .iter()
        .map(|c| c.config.image_id.as_str())
        .collect();

    // Images: one per image id (named or kept untagged); their layers counted once each.
    let mut images: BTreeMap<String, Vec<Digest>> = BTreeMap::new();
    let manifests = store
        .refs()?
        .into_values()
        .chain(store.untagged()?)
        .collect::<BTreeSet<_>>();
    for m in &manifests {
        // Each image of an index counts (its platforms' layers are on disk too).
        for img in store.images_at(m).with_context(|| format!("image {m}"))? {
            images.insert(img.id().to_string(), img.config.rootfs.diff_ids.clone());
        }
    }
    let mut layer_size: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut used_layers = BTreeSet::new();
    for (id, layers) in &images {
        for l in layers {
            if !layer_size.contains_key(l) {
                layer_size.insert(l.clone(), archive::layer_content_size(store, l)?);
            }
            if used_images.contains(id.as_str()) {
                used_layers.insert(l.clone());
            }
        }
    }
    // Sizes are docker's (the layers' content, as `images` shows), not the bytes on disk
    // (compressed blobs and unpacked snapshots): approximate as a disk figure.
    let images_size: u64 = layer_size.values().sum();
    let images_reclaimable: u64 = layer_size
        .iter()
        .filter(|(l, _)| !used_layers.contains(*l))
        .map(|(_, s)| s)
        .sum();
    let active_images = images
        .keys()
        .filter(|id| used_images.contains(id.as_str()))
        .count();

    // Containers: the size is each one's writable layer (the overlay's upper directory).
    let mut seen = BTreeSet::new();
    let mut containers_size = 0;
    let mut containers_reclaimable = 0;
    let mut running = 0;
    for c in &containers {
        let size = runtime::container::tree_size(&c.dir.join("upper"), &mut seen);
        containers_size += size;
        if c.status() == runtime::Status::Running {
            running += 1;
        } else {
            containers_reclaimable += size;
        }
    }

    // Build cache: the records and the layers they keep; what no image uses is what
    // `builder prune` frees (approximately: it also drops memos, stat caches and cache
    // mounts, which are not counted here). No record is in use outside a build.
    let cache = store.cache_layers();
    let cache_layers: BTreeSet<&Digest> = cache.iter().collect();
    let mut cache_size = 0;
    let mut cache_reclaimable = 0;
    for l in cache_layers {
        let size = match layer_size.get(l) {
            Some(s) => *s,
            None => {
                let s = archive::layer_content_size(store, l)?;
                cache_reclaimable += s;
                s
            }
        };
        cache_size += size;
    }

    // Volumes: in use while a container names them (docker's ACTIVE); the unused ones are
    // what `volume prune -a` frees.
    let vols = runtime::Volumes::open(store)?;
    let volumes = vols.list()?;
    let (mut volumes_size, mut volumes_reclaimable, mut active_volumes) = (0, 0, 0);
    for v in &volumes {
        let size = runtime::container::tree_size(&v.mountpoint(), &mut seen);
        volumes_size += size;
        if vols.users(&v.name)?.is_empty() {
            volumes_reclaimable += size;
        } else {
            active_volumes += 1;
        }
    }

    let row = |t: &str, total: usize, active: usize, size: u64, recl: String| -> Row {
        vec![
            ("Type", t.to_string()),
            ("TotalCount", total.to_string()),
            ("Active", active.to_string()),
            ("Size", human_size(size)),
            ("Reclaimable", recl),
        ]
    };
    let rows = vec![
        row(
            "Images",
            images.len(),
            active_images,
            images_size,
            reclaimable(images_reclaimable, images_size, true),
        ),
        row(
            "Containers",
            containers.len(),
            running,
            containers_size,
            reclaimable(containers_reclaimable, containers_size, true),
        ),
        row(
            "Local Volumes",
            volumes.len(),
            active_volumes,
            volumes_size,
            reclaimable(volumes_reclaimable, volumes_size, true),
        ),
        row(
            "Build Cache",
            cache.len(),
            0,
            cache_size,
            reclaimable(cache_reclaimable, cache_size, false),
        ),
    ];
    let headers = [
        ("Type", "TYPE"),
        ("TotalCount", "TOTAL"),
        ("Active", "ACTIVE"),
        ("Size", "SIZE"),
        ("Reclaimable", "RECLAIMABLE"),
    ];
    print!("{}", render(&rows, &headers, a.format.as_deref())?);
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct VersionArgs {
    /// `json`, or a template such as `{{.Client.Version}}`.
    #[arg(short, long)]
    pub format: Option<String>,
}

/// docker's `Built` time (`Thu May  7 21:09:36 2026`, UTC) of the build's commit.
fn built() -> String {
    let secs: i64 = env!("STRATA_GIT_TIME").parse().unwrap_or(0);
    if secs <= 0 {
        return "unknown".into();
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
    // humantime's RFC 3339 form, rearranged into Go's ANSIC layout.
    let s = humantime::format_rfc3339_seconds(t).to_string();
    let (date, time) = (&s[..10], &s[11..19]);
    let days = secs.div_euclid(86_400);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months[date[5..7].parse::<usize>().unwrap_or(1).clamp(1, 12) - 1];
    let day: u32 = date[8..10].parse().unwrap_or(1);
    format!("{weekday} {month} {day:>2} {time} {}", &date[..4])
}

/// `GOARCH`'s name of this machine's architecture.
fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// Print `value` as `--format` asks: JSON on one line, or a template; `None` when no format
/// was given (the caller prints its text form).
fn formatted(value: &serde_json::Value, format: Option<&str>) -> Result<Option<String>> {
    Ok(match format {
        None => None,
        Some("json") => Some(value.to_string()),
        Some(t) => Some(
            crate::format::Template::parse(&t.replace("\\t", "\t").replace("\\n", "\n"))?
                .execute(value)?,
        ),
    })
}

/// `strata version`: the client lines of `docker version` (there is no server).
pub fn version(a: VersionArgs) -> Result<ExitCode> {
    let v = serde_json::json!({
        "Client": {
            "Version": env!("CARGO_PKG_VERSION"),
            "ApiVersion": "none (no daemon)",
            "RustVersion": env!("STRATA_RUSTC_VERSION"),
            "GitCommit": env!("STRATA_GIT_COMMIT"),
            "BuildTime": built(),
            "Os": std::env::consts::OS,
            "Arch": arch(),
        },
        "Server": null,
    });
    if let Some(s) = formatted(&v, a.format.as_deref())? {
        println!("{s}");
        return Ok(ExitCode::SUCCESS);
    }
    let c = &v["Client"];
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    println!("Client:");
    for (label, value) in [
        ("Version", s("Version")),
        ("API version", s("ApiVersion")),
        ("Rust version", s("RustVersion")),
        ("Git commit", s("GitCommit")),
        ("Built", s("BuildTime")),
        ("OS/Arch", format!("{}/{}", s("Os"), s("Arch"))),
    ] {
        println!(" {:<19}{value}", format!("{label}:"));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct InfoArgs {
    /// `json`, or a template such as `{{.Containers}}`.
    #[arg(short, long)]
    pub format: Option<String>,
}

/// A `KEY=value` of /etc/os-release (quotes removed).
fn os_release(key: &str) -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim_matches('"').to_string())
}

/// MemTotal of /proc/meminfo in bytes.
fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// `strata info`: docker's system-wide facts that apply to strata.
pub fn info(store: &Store, a: InfoArgs) -> Result<ExitCode> {
    let containers = runtime::list(store)?;
    let mut running = 0;
    let mut stopped = 0;
    for c in &containers {
        match c.status() {
            runtime::Status::Running => running += 1,
            _ => stopped += 1,
        }
    }
    let mut images = BTreeSet::new();
    for m in store.refs()?.into_values().chain(store.untagged()?) {
        for img in store.images_at(&m).with_context(|| format!("image {m}"))? {
            images.insert(img.id().to_string());
        }
    }
    let cgroup_version = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let v = serde_json::json!({
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": 0,
        "ContainersStopped": stopped,
        "Images": images.len(),
        "Driver": "overlayfs",
        "StoreRoot": store.root().display().to_string(),
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        // docker's default seccomp profile is RUN's and run's (no_new_privs is not set).
        "SecurityOptions": ["name=seccomp,profile=default"],
        "KernelVersion": kernel,
        "OperatingSystem": os_release("PRETTY_NAME").unwrap_or_else(|| "unknown".into()),
        "OSType": std::env::consts::OS,
        "Architecture": std::env::consts::ARCH,
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem_total(),
        "ServerVersion": env!("CARGO_PKG_VERSION"),
    });
    if let Some(s) = formatted(&v, a.format.as_deref())? {
        println!("{s}");
        return Ok(ExitCode::SUCCESS);
    }
    let n = |k: &str| v[k].to_string().trim_matches('"').to_string();
    println!("Server:");
    println!(" Containers: {}", n("Containers"));
    println!("  Running: {}", n("ContainersRunning"));
    println!("  Paused: {}", n("ContainersPaused"));
    println!("  Stopped: {}", n("ContainersStopped"));
    println!(" Images: {}", n("Images"));
    println!(
        " Server Version: {} (no daemon: this is strata)",
        n("ServerVersion")
    );
    println!(" Storage Driver: {}", n("Driver"));
    println!(" Cgroup Driver: {}", n("CgroupDriver"));
    println!(" Cgroup Version: {}", n("CgroupVersion"));
    println!(" Security Options:");
    println!("  seccomp");
    println!("   Profile: default");
    println!(" Kernel Version: {}", n("KernelVersion"));
    println!(" Operating System: {}", n("OperatingSystem"));
    println!(" OSType: {}", n("OSType"));
    println!(" Architecture: {}", n("Architecture"));
    println!(" CPUs: {}", n("NCPU"));
    println!(
        " Total Memory: {:.2}GiB",
        v["MemTotal"].as_u64().unwrap_or(0) as f64 / f64::from(1u32 << 30)
    );
    println!(" Store Root: {}", n("StoreRoot"));
    Ok(ExitCode::SUCCESS)
}
