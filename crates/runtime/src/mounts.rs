//! A container's mounts in docker's terms: `-v/--volume`, `--mount` and `--tmpfs` strings
//! parsed by docker's rules into [`MountSpec`]s, then made concrete ([`MountPoint`]: host
//! paths, volume names) when the container is created, and turned into the executor's
//! mounts. The executor resolves every target beneath the container's root
//! (`openat2(RESOLVE_IN_ROOT)`), so a symlink in the image never sends a mount to the host.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Which kind of mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Bind,
    Volume,
    Tmpfs,
}

impl MountKind {
    pub fn word(self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Volume => "volume",
            MountKind::Tmpfs => "tmpfs",
        }
    }
}

/// A mount as the command line gives it, before volumes are created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub kind: MountKind,
    /// Bind: the absolute host path; volume: its name, `None` for an anonymous volume.
    pub source: Option<String>,
    /// Absolute path inside the container (cleaned).
    pub destination: String,
    pub readonly: bool,
    /// docker's `Mode` text (`ro`, `z`, ...).
    pub mode: String,
    /// Volume: do not copy the image's content into a new volume.
    pub nocopy: bool,
    /// Tmpfs: size in bytes and mode of its root.
    pub tmpfs_size: Option<u64>,
    pub tmpfs_mode: Option<u32>,
}

/// A mount of a created container (kept in its `config.json`), as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPoint {
    #[serde(rename = "type")]
    pub kind: MountKind,
    /// A volume's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The host path mounted (a bind's source, a volume's `_data`); empty for tmpfs.
    pub source: String,
    pub destination: String,
    pub rw: bool,
    pub mode: String,
    /// An anonymous volume (removed with the container by `rm -v` and `--rm`).
    #[serde(default)]
    pub anonymous: bool,
    #[serde(default)]
    pub tmpfs_size: Option<u64>,
    #[serde(default)]
    pub tmpfs_mode: Option<u32>,
}

impl MountPoint {
    /// docker's `Mounts[]` entry of `inspect`.
    pub fn inspect(&self) -> serde_json::Value {
        // docker's field order.
        let mut m = serde_json::Map::new();
        m.insert("Type".into(), self.kind.word().into());
        if let Some(n) = &self.name {
            m.insert("Name".into(), n.clone().into());
        }
        m.insert("Source".into(), self.source.clone().into());
        m.insert("Destination".into(), self.destination.clone().into());
        if self.name.is_some() {
            m.insert("Driver".into(), "local".into());
        }
        m.insert("Mode".into(), self.mode.clone().into());
        m.insert("RW".into(), self.rw.into());
        let propagation = if self.kind == MountKind::Bind {
            "rprivate"
        } else {
            ""
        };
        m.insert("Propagation".into(), propagation.into());
        serde_json::Value::Object(m)
    }

    /// The executor's mount.
    pub fn to_exec(&self) -> exec::Mount {
        let target = PathBuf::from(&self.destination);
        match self.kind {
            MountKind::Tmpfs => exec::Mount::Tmpfs {
                target,
                size: self.tmpfs_size,
                mode: Some(self.tmpfs_mode.unwrap_or(0o1777)),
            },
            MountKind::Bind | MountKind::Volume => exec::Mount::Bind {
                source: PathBuf::from(&self.source),
                target,
                readonly: !self.rw,
            },
        }
    }
}

/// docker's volume (and container) name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_volume_name(n: &str) -> bool {
    n.len() >= 2
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn clean_destination(d: &str, spec: &str) -> Result<String> {
    if !d.starts_with('/') {
        bail!(
            "invalid mount config for type \"volume\": invalid mount path: '{d}' mount path \
             must be absolute"
        );
    }
    let c = escape::clean::rooted(d);
    if c == "/" {
        bail!("invalid volume specification: '{spec}': invalid mount config: destination can't be '/'");
    }
    Ok(c)
}

const PROPAGATION: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

fn valid_mode(m: &str) -> bool {
    !m.is_empty()
        && m.split(',').all(|o| {
            matches!(
                o,
                "ro" | "rw" | "z" | "Z" | "nocopy" | "consistent" | "cached" | "delegated"
            ) || PROPAGATION.contains(&o)
        })
}

/// `-v` / `--volume`: `[SRC:]DEST[:MODE]` (docker's Linux parser). A source starting with
/// `/` is a bind mount, with `.` a bind mount relative to `cwd` (docker CLI ≥ 23), anything
/// else a volume name.
pub fn parse_volume(spec: &str, cwd: &Path) -> Result<MountSpec> {
    let parts: Vec<&str> = spec.split(':').collect();
    let invalid = || anyhow::anyhow!("invalid volume specification: '{spec}'");
    let (src, dst, mode) = match parts.as_slice() {
        [d] => (None, *d, ""),
        [a, b] if valid_mode(b) && !b.starts_with('/') => (None, *a, *b),
        [s, d] => (Some(*s), *d, ""),
        [s, d, m] => (Some(*s), *d, *m),
        _ => return Err(invalid()),
    };
    if dst.is_empty() || src == Some("") {
        return Err(invalid());
    }
    if !mode.is_empty() && !valid_mode(mode) {
        bail!("invalid mode: {mode}");
    }
    let opts: Vec<&str> = mode.split(',').filter(|o| !o.is_empty()).collect();
    let readonly = opts.contains(&"ro");
    let nocopy = opts.contains(&"nocopy");
    let destination = clean_destination(dst, spec)?;
    let (kind, source) = match src {
        Some(s) if s.starts_with('/') || s.starts_with('.') => {
            let p = if s.starts_with('/') {
                PathBuf::from(s)
            } else {
                cwd.join(s)
            };
            let p = escape::clean::rooted(&p.to_string_lossy());
            (MountKind::Bind, Some(p))
        }
        Some(s) => {
            if !valid_volume_name(s) {
                bail!(
                    "create {s}: \"{s}\" includes invalid characters for a local volume name, \
                     only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a \
                     host directory, use absolute path"
                );
            }
            (MountKind::Volume, Some(s.to_string()))
        }
        None => (MountKind::Volume, None),
    };
    if kind == MountKind::Bind && nocopy {
        bail!("invalid mode: {mode}");
    }
    let mode = match (kind, mode) {
        (MountKind::Volume, "") if source.is_some() => "z".to_string(),
        (_, m) => m.to_string(),
    };
    Ok(MountSpec {
        kind,
        source,
        destination,
        readonly,
        mode,
        nocopy,
        tmpfs_size: None,
        tmpfs_mode: None,
    })
}

fn parse_bool(key: &str, v: Option<&str>) -> Result<bool> {
    match v {
        None | Some("1") | Some("true") | Some("True") | Some("TRUE") => Ok(true),
        Some("0") | Some("false") | Some("False") | Some("FALSE") => Ok(false),
        Some(v) => bail!("invalid value for {key}: {v}"),
    }
}

/// A size as docker's `tmpfs-size` and `--tmpfs size=` take it: bytes, or with a `k`, `m`,
/// `g` (or `t`) suffix, binary multiples.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let lower = lower.trim_end_matches('b').trim_end_matches('i');
    let (num, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("invalid size: '{s}'"))?;
    if n < 0.0 {
        bail!("invalid size: '{s}'");
    }
    Ok((n * mult as f64) as u64)
}

fn parse_octal(s: &str) -> Result<u32> {
    u32::from_str_radix(s, 8).with_context(|| format!("invalid tmpfs mode: {s}"))
}

/// `--mount type=bind|volume|tmpfs,source=...,target=...[,readonly][,...]`.
pub fn parse_mount(spec: &str, cwd: &Path) -> Result<MountSpec> {
    let mut kind = MountKind::Volume;
    let mut source = None;
    let mut target = None;
    let mut readonly = false;
    let mut nocopy = false;
    let mut size = None;
    let mut mode = None;
    for field in spec.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        match (k.as_str(), v) {
            ("type", Some(t)) => {
                kind = match t {
                    "bind" => MountKind::Bind,
                    "volume" => MountKind::Volume,
                    "tmpfs" => MountKind::Tmpfs,
                    other => bail!("invalid mount config: mount type unknown: {other:?}"),
                }
            }
            ("source" | "src", Some(s)) => source = Some(s.to_string()),
            ("target" | "destination" | "dst", Some(t)) => target = Some(t.to_string()),
            ("readonly" | "ro", v) => readonly = parse_bool(&k, v)?,
            ("volume-nocopy", v) => nocopy = parse_bool(&k, v)?,
            ("tmpfs-size", Some(s)) => size = Some(parse_size(s)?),
            ("tmpfs-mode", Some(m)) => mode = Some(parse_octal(m)?),
            ("bind-propagation", Some(p)) if PROPAGATION.contains(&p) => {}
            (
                "consistency" | "bind-recursive" | "volume-driver" | "volume-opt" | "volume-label",
                Some(_),
            ) => {}
            _ => bail!("invalid field '{field}' must be a key=value pair"),
        }
    }
    let word = kind.word();
    let Some(target) = target.filter(|t| !t.is_empty()) else {
        bail!("invalid mount config for type \"{word}\": field Target must not be empty");
    };
    if !target.starts_with('/') {
        bail!(
            "invalid mount config for type \"{word}\": invalid mount path: '{target}' mount \
             path must be absolute"
        );
    }
    let destination = escape::clean::rooted(&target);
    if destination == "/" {
        bail!("invalid mount config for type \"{word}\": invalid specification: destination can't be '/'");
    }
    let source = source.filter(|s| !s.is_empty());
    let source = match kind {
        MountKind::Bind => {
            let Some(s) = source else {
                bail!("invalid mount config for type \"bind\": field Source must not be empty");
            };
            // docker CLI ≥ 23 takes a path relative to the current directory when it
            // starts with `.`; any other relative path is an error.
            if !s.starts_with('/') && !s.starts_with('.') {
                bail!(
                    "invalid mount config for type \"bind\": invalid mount path: '{s}' mount \
                     path must be absolute"
                );
            }
            let p = escape::clean::rooted(&cwd.join(&s).to_string_lossy());
            if std::fs::metadata(&p).is_err() {
                bail!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {p}"
                );
            }
            Some(p)
        }
        MountKind::Volume => {
            if let Some(s) = &source {
                if !valid_volume_name(s) {
                    bail!(
                        "create {s}: \"{s}\" includes invalid characters for a local volume \
                         name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
                    );
                }
            }
            source
        }
        MountKind::Tmpfs => {
            if source.is_some() {
                bail!(
                    "invalid mount config for type \"tmpfs\": field Source must not be specified"
                );
            }
            None
        }
    };
    Ok(MountSpec {
        kind,
        source,
        destination,
        readonly,
        mode: if kind == MountKind::Volume {
            "z".into()
        } else {
            String::new()
        },
        nocopy,
        tmpfs_size: size,
        tmpfs_mode: mode,
    })
}

/// `--tmpfs PATH[:OPTIONS]` (`size=`, `mode=`; the mount flags docker passes on are
/// accepted and the defaults nosuid,nodev kept).
pub fn parse_tmpfs(spec: &str) -> Result<MountSpec> {
    let (dst, opts) = spec.split_once(':').unwrap_or((spec, ""));
    let destination = clean_destination(dst, spec)?;
    let mut size = None;
    let mut mode = None;
    let mut readonly = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some(("size", s)) => size = Some(parse_size(s)?),
            Some(("mode", m)) => mode = Some(parse_octal(m)?),
            Some(_) => {}
            None if o == "ro" => readonly = true,
            None => {}
        }
    }
    Ok(MountSpec {
        kind: MountKind::Tmpfs,
        source: None,
        destination,
        readonly,
        mode: String::new(),
        nocopy: false,
        tmpfs_size: size,
        tmpfs_mode: mode,
    })
}

/// All of a run's mounts: `-v`, `--mount` and `--tmpfs` (a destination given twice is
/// docker's `Duplicate mount point`), then anonymous volumes for the image's VOLUMEs that
/// none of them covers. Sorted so that a parent is mounted before what is beneath it.
pub fn parse_all(
    volumes: &[String],
    mounts: &[String],
    tmpfs: &[String],
    image_volumes: &[String],
) -> Result<Vec<MountSpec>> {
    let cwd = std::env::current_dir().context("the current directory")?;
    let mut out = Vec::new();
    for v in volumes {
        out.push(parse_volume(v, &cwd)?);
    }
    for m in mounts {
        out.push(parse_mount(m, &cwd)?);
    }
    for t in tmpfs {
        out.push(parse_tmpfs(t)?);
    }
    let mut seen = BTreeSet::new();
    for m in &out {
        if !seen.insert(m.destination.clone()) {
            bail!("Duplicate mount point: {}", m.destination);
        }
    }
    for v in image_volumes {
        let d = escape::clean::rooted(v);
        if d != "/" && seen.insert(d.clone()) {
            out.push(MountSpec {
                kind: MountKind::Volume,
                source: None,
                destination: d,
                readonly: false,
                mode: String::new(),
                nocopy: false,
                tmpfs_size: None,
                tmpfs_mode: None,
            });
        }
    }
    out.sort_by_key(|m| m.destination.split('/').filter(|c| !c.is_empty()).count());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_strings() {
        let cwd = Path::new("/work/dir");
        let m = parse_volume("/host:/ctr:ro", cwd).unwrap();
        assert_eq!(m.kind, MountKind::Bind);
        assert_eq!(m.source.as_deref(), Some("/host"));
        assert_eq!(m.destination, "/ctr");
        assert!(m.readonly);
        assert_eq!(m.mode, "ro");
        let m = parse_volume("./sub/../x:/c/", cwd).unwrap();
        assert_eq!(m.source.as_deref(), Some("/work/dir/x"));
        assert_eq!(m.destination, "/c");
        let m = parse_volume("data:/d", cwd).unwrap();
        assert_eq!(
            (m.kind, m.source.as_deref()),
            (MountKind::Volume, Some("data"))
        );
        assert_eq!(m.mode, "z");
        let m = parse_volume("/app/node_modules", cwd).unwrap();
        assert_eq!((m.kind, m.source), (MountKind::Volume, None));
        let m = parse_volume("/d:ro", cwd).unwrap();
        assert!(m.readonly && m.source.is_none());
        assert!(parse_volume("a/b:/d", cwd)
            .unwrap_err()
            .to_string()
            .contains("includes invalid characters"));
        assert!(parse_volume("rel", cwd)
            .unwrap_err()
            .to_string()
            .contains("must be absolute"));
        assert!(parse_volume("/a:/", cwd).is_err());
        assert!(parse_volume("/a:/b:bogus", cwd)
            .unwrap_err()
            .to_string()
            .contains("invalid mode: bogus"));
        assert!(parse_volume("a:b:c:d", cwd).is_err());
    }

    #[test]
    fn mount_strings() {
        let cwd = Path::new("/");
        let m = parse_mount("type=bind,source=/tmp,target=/t,readonly", cwd).unwrap();
        assert_eq!(m.kind, MountKind::Bind);
        assert!(m.readonly);
        let e = parse_mount("type=bind,src=/no/such/strata/path,dst=/t", cwd).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid mount config for type \"bind\": bind source path does not exist: \
             /no/such/strata/path"
        );
        assert!(parse_mount("type=bind,src=tmp,dst=/t", cwd)
            .unwrap_err()
            .to_string()
            .contains("mount path must be absolute"));
        let m = parse_mount("type=bind,src=./tmp,dst=/t", cwd).unwrap();
        assert_eq!(m.source.as_deref(), Some("/tmp"));
        let m = parse_mount("target=/v", cwd).unwrap();
        assert_eq!((m.kind, m.source), (MountKind::Volume, None));
        let m = parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=700", cwd).unwrap();
        assert_eq!((m.tmpfs_size, m.tmpfs_mode), (Some(1 << 20), Some(0o700)));
        assert!(parse_mount("type=volume,src=x", cwd)
            .unwrap_err()
            .to_string()
            .contains("field Target must not be empty"));
        let t = parse_tmpfs("/run:size=64k,mode=1777,noexec").unwrap();
        assert_eq!((t.tmpfs_size, t.tmpfs_mode), (Some(65536), Some(0o1777)));
    }

    #[test]
    fn duplicates_and_image_volumes() {
        let e = parse_all(&["/a:/x".into()], &["type=tmpfs,dst=/x".into()], &[], &[]).unwrap_err();
        assert_eq!(e.to_string(), "Duplicate mount point: /x");
        let all = parse_all(
            &["v1:/data".into()],
            &[],
            &[],
            &["/data".into(), "/b/c".into()],
        )
        .unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].destination, "/b/c");
        assert!(all[1].source.is_none());
    }
}
