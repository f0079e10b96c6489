//! images, history, inspect, tag, rmi, prune, fsck.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use store::{Image, Reference, Store, Writer};

use crate::format::{created_at, ellipsis, human_size, render, since, Row};

#[derive(Args)]
pub struct ImagesArgs {
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// `table`, `json`, or a template such as `{{.Repository}}:{{.Tag}}`.
    #[arg(long)]
    pub format: Option<String>,
    /// Show all images (strata keeps no intermediate images: the same list).
    #[arg(short, long)]
    pub all: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Filter: `dangling=true|false`, `reference=PATTERN`, `label=KEY[=VALUE]`,
    /// `before=IMAGE`, `since=IMAGE`, `platform=OS/ARCH` (as `--platform`).
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Only images of this platform (`linux/arm64`): of a multi-platform image, its image
    /// for it (its own id and size). podman's `images` has no such flag, nor docker 20.10's;
    /// this follows their `--platform` of `pull`/`run`.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Only images of this repository (`NAME` or `NAME:TAG`), as `docker images NAME`.
    pub reference: Option<String>,
}

/// `images --filter`s, parsed.
#[derive(Default)]
struct Filters {
    dangling: Option<bool>,
    references: Vec<String>,
    labels: Vec<(String, Option<String>)>,
    before: Option<String>,
    since: Option<String>,
}

impl Filters {
    fn parse(store: &Store, filters: &[String]) -> Result<Filters> {
        let mut f = Filters::default();
        let created_of = |r: &str| -> Result<String> {
            let img = store
                .resolve(r)
                .map_err(|_| anyhow::anyhow!("No such image: {r}"))?;
            Ok(img.config.created.clone().unwrap_or_default())
        };
        for v in filters {
            let (k, val) = v
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value)"))?;
            match k {
                "dangling" => {
                    f.dangling = Some(match val.to_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => bail!("invalid filter 'dangling={val}'"),
                    })
                }
                "reference" => f.references.push(val.to_string()),
                "label" => f.labels.push(match val.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (val.to_string(), None),
                }),
                "before" => f.before = Some(created_of(val)?),
                "since" => f.since = Some(created_of(val)?),
                _ => bail!("invalid filter '{k}'"),
            }
        }
        Ok(f)
    }

    /// Whether a row (its name, if any, and image) passes every filter.
    fn keep(&self, r: Option<&Reference>, img: &Image) -> bool {
        if let Some(d) = self.dangling {
            if d != r.is_none() {
                return false;
            }
        }
        if !self.references.is_empty() {
            let Some(r) = r else { return false };
            let repo = r.familiar_repository();
            let full = match &r.tag {
                Some(t) => format!("{repo}:{t}"),
                None => repo.clone(),
            };
            if !self
                .references
                .iter()
                .any(|p| glob(p, &repo) || glob(p, &full))
            {
                return false;
            }
        }
        let labels = img.config.config.labels.clone().unwrap_or_default();
        for (k, v) in &self.labels {
            match (labels.get(k), v) {
                (None, _) => return false,
                (Some(have), Some(want)) if have != want => return false,
                _ => {}
            }
        }
        let created = img.config.created.clone().unwrap_or_default();
        if self.before.as_ref().is_some_and(|b| created >= *b) {
            return false;
        }
        if self.since.as_ref().is_some_and(|s| created <= *s) {
            return false;
        }
        true
    }
}

/// Go's `path.Match` for the patterns docker's reference filter takes: `*` (not across
/// `/`), `?`, and literal characters.
fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len())
                .take_while(|&i| i == 0 || n[i - 1] != '/')
                .any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => n.first().is_some_and(|c| *c != '/') && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// One line of `images`: an image, or an image index as docker's containerd store lists
/// one (its digest as IMAGE ID, the sum of its images' sizes).
struct Listed {
    /// What the line's IMAGE ID is: the image's id, or the index's digest.
    id: store::Digest,
    /// The manifest (or index) digest its RepoDigests are recorded under.
    manifest: store::Digest,
    /// The image whose config the line shows (created, labels): an index's host image.
    image: Image,
    /// The images whose sizes add up to the line's.
    images: Vec<Image>,
    /// `{{.Platform}}`: the platforms, joined with `,`.
    platforms: String,
}

/// The line of a ref's or untagged root's target; `None` when `platform` is asked and the
/// target has no image of it. With a platform, an index's line is that platform's image.
fn listed_entry(
    store: &Store,
    target: &store::Digest,
    platform: Option<&store::Platform>,
) -> Result<Option<Listed>> {
    let plain = |image: Image| {
        let p = store::Platform::of_config(&image.config);
        if platform.is_some_and(|want| !want.matches(&p)) {
            return None;
        }
        Some(Listed {
            id: image.id().clone(),
            manifest: image.manifest_digest.clone(),
            images: vec![image.clone()],
            image,
            platforms: p.to_string(),
        })
    };
    let Some(ix) = store.index(target)? else {
        return Ok(plain(store.image(target)?));
    };
    if let Some(p) = platform {
        return match store.image_for(target, p) {
            Ok(img) => Ok(plain(img)),
            Err(store::Error::NoPlatform { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        };
    }
    let images = store.images_at(target)?;
    let platforms: Vec<String> = ix.platforms().iter().map(|(p, _)| p.to_string()).collect();
    Ok(Some(Listed {
        id: ix.digest.clone(),
        manifest: ix.digest.clone(),
        image: store.image(target)?,
        images,
        platforms: platforms.join(","),
    }))
}

pub fn images(store: &Store, a: ImagesArgs) -> Result<ExitCode> {
    // Readers hold the store lock shared, so no prune removes what they are reading (and
    // the sizes computed are recorded).
    // `--filter platform=P` is `--platform P`.
    let (by_platform, other): (Vec<&String>, Vec<&String>) =
        a.filter.iter().partition(|f| f.starts_with("platform="));
    let from_filter = by_platform.last().map(|f| &f["platform=".len()..]);
    let platform = super::run::platform_flag(a.platform.as_deref().or(from_filter))?;
    let other: Vec<String> = other.into_iter().cloned().collect();
    let filters = Filters::parse(store, &other)?;
    let store = &store.lock_shared()?;
    let mut rows: Vec<(String, Row)> = Vec::new();
    let mut seen_ids = BTreeSet::new();
    let mut quiet = Vec::new();
    // As docker, rows are per image id: an id with a name shows only its named rows, and an
    // id without one a single `<none>` row, however many manifests the store keeps for it
    // (an untagged build later tagged, or built again with -t, keeps its untagged root).
    let mut named_ids = BTreeSet::new();
    let mut listed = Vec::new();
    for (name, manifest) in store.refs()? {
        let Some(entry) = listed_entry(store, &manifest, platform.as_ref())
            .with_context(|| format!("image {name}"))?
        else {
            continue;
        };
        named_ids.insert(entry.id.clone());
        listed.push((Some(name), entry));
    }
    let mut none_ids = BTreeSet::new();
    for manifest in store.untagged()? {
        let Some(entry) = listed_entry(store, &manifest, platform.as_ref())
            .with_context(|| format!("image {manifest}"))?
        else {
            continue;
        };
        if !named_ids.contains(&entry.id) && none_ids.insert(entry.id.clone()) {
            listed.push((None, entry));
        }
    }
    for (name, entry) in listed {
        let img = &entry.image;
        let r = match &name {
            Some(n) => Some(Reference::parse(n).map_err(anyhow::Error::msg)?),
            None => None,
        };
        if let Some(want) = &a.reference {
            let Some(r) = &r else { continue };
            let w = Reference::parse(want).map_err(anyhow::Error::msg)?;
            let tag_given = want
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':'));
            if w.repository() != r.repository() || (tag_given && w.tag != r.tag) {
                continue;
            }
        }
        if !filters.keep(r.as_ref(), img) {
            continue;
        }
        let digest = r
            .as_ref()
            .and_then(|r| {
                let repo = r.repository();
                store
                    .meta(registry::META_REPO_DIGESTS, &entry.manifest)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| Reference::parse(l.trim()).ok())
                    .find(|d| d.repository() == repo)
                    .and_then(|d| d.digest.as_ref().map(|x| x.to_string()))
            })
            .unwrap_or_else(|| "<none>".into());
        let mut bytes = 0;
        for i in &entry.images {
            bytes += archive::image_size(store, i)?;
        }
        let size = human_size(bytes);
        let id = if a.no_trunc {
            entry.id.to_string()
        } else {
            entry.id.short().to_string()
        };
        let created = img.config.created.clone().unwrap_or_default();
        if seen_ids.insert(entry.id.clone()) {
            quiet.push((created.clone(), id.clone()));
        }
        rows.push((
            created.clone(),
            vec![
                ("Containers", "N/A".into()),
                ("CreatedAt", created_at(img.config.created.as_deref())),
                ("CreatedSince", since(img.config.created.as_deref())),
                ("Digest", digest),
                ("ID", id),
                ("Platform", entry.platforms.clone()),
                (
                    "Repository",
                    r.as_ref()
                        .map(|r| r.familiar_repository())
                        .unwrap_or_else(|| "<none>".into()),
                ),
                ("SharedSize", "N/A".into()),
                ("Size", size.clone()),
                (
                    "Tag",
                    r.as_ref()
                        .and_then(|r| r.tag.clone())
                        .unwrap_or_else(|| "<none>".into()),
                ),
                ("UniqueSize", "N/A".into()),
                ("VirtualSize", size),
            ],
        ));
    }
    // Newest first, as docker lists.
    rows.sort_by(|a, b| b.0.cmp(&a.0));
    if a.quiet {
        quiet.sort_by(|a, b| b.0.cmp(&a.0));
        for (_, id) in quiet {
            println!("{id}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Row> = rows.into_iter().map(|(_, r)| r).collect();
    let mut headers = vec![("Repository", "REPOSITORY"), ("Tag", "TAG")];
    if a.digests {
        headers.push(("Digest", "DIGEST"));
    }
    headers.extend([
        ("ID", "IMAGE ID"),
        ("CreatedSince", "CREATED"),
        ("Size", "SIZE"),
    ]);
    print!("{}", render(&rows, &headers, a.format.as_deref())?);
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct HistoryArgs {
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print sizes and dates in human readable format.
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    /// `table`, `json`, or a template such as `{{.ID}}\t{{.CreatedBy}}`.
    #[arg(long)]
    pub format: Option<String>,
    /// Of a multi-platform image, the history of that platform's image (as docker 25's
    /// `history --platform`).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    pub image: String,
}

pub fn history(store: &Store, a: HistoryArgs) -> Result<ExitCode> {
    let store = &store.lock_shared()?;
    let platform = super::run::platform_flag(a.platform.as_deref())?;
    let img = store.resolve_platform(&a.image, platform.as_ref())?;
    let diff_ids = &img.config.rootfs.diff_ids;
    // Pair history entries that made a layer with the layers, in order.
    let mut layer_iter = diff_ids.iter();
    let mut entries: Vec<(Option<&store::Digest>, &store::image::History)> = Vec::new();
    for h in &img.config.history {
        let l = if h.empty_layer {
            None
        } else {
            layer_iter.next()
        };
        entries.push((l, h));
    }
    let mut rows: Vec<Row> = Vec::new();
    let n = entries.len();
    for (i, (l, h)) in entries.into_iter().rev().enumerate() {
        // Only the image itself has an id: the entries below it name no image (their layers'
        // diffIDs are no image id any command takes), and docker prints `<missing>` for them
        // in a BuildKit-built image.
        let id = if i == 0 {
            if a.no_trunc {
                img.id().to_string()
            } else {
                img.id().short().to_string()
            }
        } else {
            "<missing>".to_string()
        };
        let size = match l {
            Some(d) => archive::layer_content_size(store, d)?,
            None => 0,
        };
        let created_by = h.created_by.clone().unwrap_or_default();
        let created_by = if a.no_trunc {
            created_by
        } else {
            ellipsis(&created_by, 45)
        };
        let _ = n;
        rows.push(vec![
            ("ID", id),
            (
                "CreatedSince",
                if a.human {
                    since(h.created.as_deref())
                } else {
                    h.created.clone().unwrap_or_default()
                },
            ),
            ("CreatedAt", h.created.clone().unwrap_or_default()),
            ("CreatedBy", created_by),
            (
                "Size",
                if a.human {
                    human_size(size)
                } else {
                    size.to_string()
                },
            ),
            ("Comment", h.comment.clone().unwrap_or_default()),
        ]);
    }
    if a.quiet {
        for r in rows {
            println!("{}", r[0].1);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let headers = [
        ("ID", "IMAGE"),
        ("CreatedSince", "CREATED"),
        ("CreatedBy", "CREATED BY"),
        ("Size", "SIZE"),
        ("Comment", "COMMENT"),
    ];
    print!("{}", render(&rows, &headers, a.format.as_deref())?);
    Ok(ExitCode::SUCCESS)
}

/// The ids of the images a ref's target names: the image's, or each of an index's.
fn image_ids(store: &Store, target: &store::Digest) -> Result<Vec<store::Digest>> {
    Ok(store
        .images_at(target)?
        .iter()
        .map(|i| i.id().clone())
        .collect())
}

/// `docker image inspect`'s shape for one image.
pub fn inspect_json(store: &Writer<'_>, img: &Image) -> Result<Value> {
    let names = store.names_by_manifest()?;
    let mut repo_tags: Vec<String> = Vec::new();
    for (m, ns) in &names {
        if image_ids(store, m)?.contains(img.id()) {
            for n in ns {
                if let Ok(r) = Reference::parse(n) {
                    // A name pulled by digest is a RepoDigest, not a tag.
                    if r.digest.is_none() {
                        repo_tags.push(r.familiar());
                    }
                }
            }
        }
    }
    repo_tags.sort();
    repo_tags.dedup();
    let mut repo_digests: Vec<String> = store
        .meta(registry::META_REPO_DIGESTS, &img.manifest_digest)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| Reference::parse(l.trim()).ok())
        .map(|r| r.familiar())
        .collect();
    repo_digests.sort();
    repo_digests.dedup();
    let c = &img.config.config;
    let size = archive::image_size(store, img)?;
    let container_config = |cfg: Option<&store::image::RunConfig>| {
        let d = store::image::RunConfig::default();
        let c = cfg.unwrap_or(&d);
        let mut v = json!({
            "Hostname": "",
            "Domainname": "",
            "User": c.user.clone().unwrap_or_default(),
            "AttachStdin": false,
            "AttachStdout": false,
            "AttachStderr": false,
        });
        let o = v.as_object_mut().expect("object");
        if let Some(p) = &c.exposed_ports {
            o.insert("ExposedPorts".into(), json!(p));
        }
        o.insert("Tty".into(), json!(false));
        o.insert("OpenStdin".into(), json!(false));
        o.insert("StdinOnce".into(), json!(false));
        o.insert("Env".into(), json!(c.env));
        o.insert("Cmd".into(), json!(c.cmd));
        if let Some(h) = &c.healthcheck {
            o.insert("Healthcheck".into(), h.clone());
        }
        if let Some(ae) = c.extra.get("ArgsEscaped") {
            o.insert("ArgsEscaped".into(), ae.clone());
        }
        o.insert("Image".into(), json!(""));
        o.insert("Volumes".into(), json!(c.volumes));
        o.insert(
            "WorkingDir".into(),
            json!(c.working_dir.clone().unwrap_or_default()),
        );
        o.insert("Entrypoint".into(), json!(c.entrypoint));
        o.insert("OnBuild".into(), json!(c.on_build));
        o.insert("Labels".into(), json!(c.labels));
        if let Some(s) = &c.stop_signal {
            o.insert("StopSignal".into(), json!(s));
        }
        if let Some(s) = &c.shell {
            o.insert("Shell".into(), json!(s));
        }
        v
    };
    let comment = img
        .config
        .history
        .last()
        .and_then(|h| h.comment.clone())
        .unwrap_or_default();
    Ok(json!({
        "Id": img.id().to_string(),
        "RepoTags": repo_tags,
        "RepoDigests": repo_digests,
        "Parent": "",
        "Comment": comment,
        "Created": img.config.created.clone().unwrap_or_default(),
        "Container": "",
        "ContainerConfig": container_config(None),
        "DockerVersion": "",
        "Author": img.config.author.clone().unwrap_or_default(),
        "Config": container_config(Some(c)),
        "Architecture": img.config.architecture,
        "Os": img.config.os,
        "Size": size,
        "VirtualSize": size,
        "GraphDriver": {"Data": null, "Name": "strata"},
        "RootFS": {
            "Type": "layers",
            "Layers": img.config.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        },
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }))
}

#[derive(Args)]
pub struct InspectArgs {
    /// Format the output using the given Go template (e.g. `{{.Id}}`,
    /// `{{json .Config}}`, `{{index .Config.Labels "key"}}`): one line per object.
    #[arg(short, long)]
    pub format: Option<String>,
    /// Of a multi-platform image, inspect that platform's image (as docker 25's
    /// `image inspect --platform`); without it, the host's.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// What an `inspect` looks up: both (containers first, as docker's untyped `inspect`), or
/// only images (`image inspect`) or containers (`container inspect`).
#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Any,
    Image,
    Container,
}

/// The inspect JSON of the volume `name`, if there is one.
fn volume(store: &Store, name: &str) -> Option<Value> {
    let v = runtime::Volumes::open(store).ok()?.get(name).ok()?;
    Some(v.inspect())
}

pub fn inspect(store: &Store, a: InspectArgs, kind: Kind) -> Result<ExitCode> {
    // Parse the template before looking anything up: a bad one is the error.
    let template = match &a.format {
        Some(f) => Some(crate::format::Template::parse(f)?),
        None => None,
    };
    let platform = super::run::platform_flag(a.platform.as_deref())?;
    let store = &store.lock_shared()?;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    let containers = runtime::Containers::open(store)?;
    for i in &a.names {
        if kind != Kind::Image {
            if let Ok(c) = containers.find(i) {
                out.push(c.inspect());
                continue;
            }
            if kind == Kind::Container {
                missing.push(format!("No such container: {i}"));
                continue;
            }
        }
        match store.resolve_platform(i, platform.as_ref()) {
            Ok(img) => out.push(inspect_json(store, &img)?),
            Err(
                e @ (store::Error::NoPlatform { .. }
                | store::Error::WrongPlatform { .. }
                | store::Error::Invalid(_)),
            ) if platform.is_some() => missing.push(e.to_string()),
            // docker's order: containers, images, then volumes.
            Err(store::Error::NoSuchImage(_))
                if kind == Kind::Any && volume(store, i).is_some() =>
            {
                out.extend(volume(store, i));
            }
            Err(store::Error::NoSuchImage(n)) => missing.push(format!("No such image: {n}")),
            Err(e) => return Err(e.into()),
        }
    }
    match &template {
        Some(t) => {
            let mut text = String::new();
            for v in &out {
                text.push_str(&t.execute(v)?);
                text.push('\n');
            }
            print!("{text}");
        }
        None => println!("{}", serde_json::to_string_pretty(&out)?),
    }
    for m in &missing {
        eprintln!("Error: {m}");
    }
    Ok(if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(Args)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

pub fn tag(store: &Store, a: TagArgs) -> Result<ExitCode> {
    let (src, dst) = (a.source.as_str(), a.target.as_str());
    let store = &store.lock_shared()?;
    let r = Reference::parse(dst).map_err(anyhow::Error::msg)?;
    if r.digest.is_some() {
        bail!("refusing to create a tag with a digest reference: {dst}");
    }
    // A name's target is copied as it is: an index stays an index.
    match store.ref_target(src)? {
        Some(d) => store.set_ref_to(&r, &d)?,
        None => store.set_ref(&r, &store.resolve(src)?)?,
    };
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct RmiArgs {
    /// Remove an image referenced by several names.
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

pub fn rmi(store: &Store, a: RmiArgs) -> Result<ExitCode> {
    let (images, force) = (&a.images, a.force);
    let mut failed = false;
    let w = store.lock_shared()?;
    for what in images {
        let result = (|| -> Result<()> {
            if let Some(ix) = match store.ref_target(what)? {
                Some(d) => store.index(&d)?,
                None => None,
            } {
                // An index's name: the name goes; the index with it when no other name
                // or untagged root keeps it (its images go with the next prune unless
                // something else holds them), as docker's containerd store.
                let r = Reference::parse(what).map_err(anyhow::Error::msg)?;
                w.remove_ref(&r)?;
                println!("Untagged: {}", r.familiar());
                if !store.refs()?.values().any(|d| *d == ix.digest) {
                    w.drop_untagged(&ix.digest)?;
                    println!("Deleted: {}", ix.digest);
                }
                return Ok(());
            }
            let img = store.resolve(what)?;
            let names = store.names_by_manifest()?;
            let mut refs_to_image: Vec<String> = Vec::new();
            for (m, ns) in &names {
                // The names of an index holding the image are no names of the image.
                if store.index(m)?.is_none() && store.image(m)?.id() == img.id() {
                    refs_to_image.extend(ns.iter().cloned());
                }
            }
            let by_name = Reference::parse(what)
                .ok()
                .filter(|r| refs_to_image.contains(&r.to_string()));
            let untag: Vec<String> = match by_name {
                Some(r) => vec![r.to_string()],
                None => {
                    if refs_to_image.len() > 1 && !force {
                        bail!(
                            "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                            img.id().short()
                        );
                    }
                    refs_to_image.clone()
                }
            };
            // docker refuses to remove the last name of an image a container (running or
            // not) was created from; forced, it untags and the image stays as <none>.
            let last_name = untag.len() == refs_to_image.len();
            let users = if last_name {
                runtime::Containers::open(store)?.using_image(img.id())?
            } else {
                Vec::new()
            };
            if let (Some(user), false) = (users.first(), force) {
                bail!(
                    "conflict: unable to remove repository reference \"{what}\" (must force) - \
                     container {} is using its referenced image {}",
                    &user[..12],
                    img.id().short()
                );
            }
            for n in &untag {
                let r = Reference::parse(n).map_err(anyhow::Error::msg)?;
                w.remove_ref(&r)?;
                println!("Untagged: {}", r.familiar());
            }
            if last_name && !users.is_empty() {
                w.keep_untagged(&img)?;
            } else if last_name {
                for m in store.untagged()? {
                    if store.index(&m)?.is_none() && store.image(&m)?.id() == img.id() {
                        w.drop_untagged(&m)?;
                    }
                }
                // An image a multi-platform image holds stays (with it): untagged only.
                let mut in_index = false;
                for m in names.keys() {
                    if store.index(m)?.is_some() && image_ids(store, m)?.contains(img.id()) {
                        in_index = true;
                    }
                }
                if !in_index {
                    println!("Deleted: {}", img.id());
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            eprintln!("Error: {e:#}");
            failed = true;
        }
    }
    drop(w);
    // Reclaim what no ref reaches any more.
    store.lock_exclusive()?.prune()?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Args)]
pub struct PruneArgs {
    /// Also remove build cache records and cache mounts.
    #[arg(short, long)]
    pub all: bool,
    /// `until=DURATION` (e.g. `until=24h`): only cache records older than that.
    #[arg(long)]
    pub filter: Option<String>,
    /// Do not prompt for confirmation (strata prompts only when stdin is a terminal).
    #[arg(short, long)]
    pub force: bool,
}

/// docker's confirmation, asked when stdin is a terminal and `-f` was not given; false
/// unless the answer is `y`/`yes`.
pub fn confirm(warning: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return true;
    }
    eprint!("WARNING! {warning}\nAre you sure you want to continue? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_lowercase().as_str(), "y" | "yes")
}

/// `strata prune` (and `builder prune`): what no image, container or cache record uses,
/// and with `--all` the build cache. `image prune` and `system prune` (`dangling`) also
/// remove dangling images (untagged, their id named by no tag), as docker's; strata's own
/// `prune` keeps them until `rmi`.
pub fn prune(store: &Store, a: PruneArgs, dangling_images: bool) -> Result<ExitCode> {
    let warning = match (dangling_images, a.all) {
        (true, true) => "This will remove all dangling images and all build cache.",
        (true, false) => "This will remove all dangling images.",
        (false, true) => "This will remove all build cache.",
        (false, false) => "This will remove everything no image, container or cache record uses.",
    };
    if !a.force && !confirm(warning) {
        return Ok(ExitCode::SUCCESS);
    }
    let all = a.all;
    let until = match a.filter.as_deref() {
        None => None,
        Some(f) => {
            let d = f.strip_prefix("until=").ok_or_else(|| {
                anyhow::anyhow!("unsupported filter {f:?}: only until=DURATION is supported")
            })?;
            let d = humantime::parse_duration(d)
                .map_err(|e| anyhow::anyhow!("invalid duration in {f:?}: {e}"))?;
            Some(std::time::SystemTime::now() - d)
        }
    };
    // Exclusive before anything is dropped: a running build may be writing cache records
    // or using a cache mount.
    let x = store.lock_exclusive()?;
    if all || until.is_some() {
        let n = x.drop_cache(until)?;
        println!("deleted build cache records: {n}");
        if until.is_none() {
            let mounts = store.root().join("cache-mounts");
            if mounts.exists() {
                store::remove_tree(&mounts)?;
                println!("deleted cache mounts");
            }
        }
    }
    // `image prune`: dangling images go first, as docker's; what a container still uses
    // stays on disk through the container's own root.
    let mut named = BTreeSet::new();
    for (_, manifest) in x.refs()? {
        named.extend(image_ids(&x, &manifest)?);
    }
    let mut dangling = Vec::new();
    for manifest in x.untagged()?.into_iter().filter(|_| dangling_images) {
        let img = x.image(&manifest)?;
        if !named.contains(img.id()) {
            x.drop_untagged(&manifest)?;
            dangling.push(img.id().clone());
        }
    }
    let rep = x.prune()?;
    drop(x);
    if !dangling.is_empty() {
        dangling.sort();
        dangling.dedup();
        println!("Deleted Images:");
        for id in &dangling {
            println!("deleted: {id}");
        }
        println!();
    }
    for (d, size) in &rep.blobs {
        println!("deleted: {d} ({})", human_size(*size));
    }
    for s in &rep.snapshots {
        println!("deleted snapshot: {s}");
    }
    let t = &rep.temporaries;
    if !t.entries.is_empty() {
        println!(
            "deleted temporaries of gone commands: {} ({})",
            t.entries.len(),
            human_size(t.bytes)
        );
    }
    println!("\nTotal reclaimed space: {}", human_size(rep.bytes));
    Ok(ExitCode::SUCCESS)
}

pub fn fsck(store: &Store) -> Result<ExitCode> {
    let mut problems = store.fsck()?;
    problems.extend(runtime::Volumes::open(store)?.check()?);
    if problems.is_empty() {
        println!(
            "store {} is consistent: {} refs",
            store.root().display(),
            store.refs()?.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        println!("problem: {p}");
    }
    Ok(ExitCode::FAILURE)
}
