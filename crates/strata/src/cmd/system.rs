//! `system df`: what the store holds, as docker's table of disk usage.

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

/// The bytes of the files under `dir` (apparent sizes, each inode once, symlinks not
/// followed); 0 when it cannot be read.
fn tree_size(dir: &Path, seen: &mut BTreeSet<(u64, u64)>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    total
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
        let img = store.image(m).with_context(|| format!("image {m}"))?;
        images.insert(img.id().to_string(), img.config.rootfs.diff_ids.clone());
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
        let size = tree_size(&c.dir.join("upper"), &mut seen);
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
        // strata has no volumes.
        row("Local Volumes", 0, 0, 0, reclaimable(0, 0, true)),
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
