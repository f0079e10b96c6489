//! `manifest create` and `manifest inspect`: multi-platform images (image indexes) made of
//! images in the store, as podman's `manifest` commands (docker 20.10's `manifest create`
//! takes images in a registry only; strata's live in its store, as podman's).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use store::{Image, Platform, Reference, Store};

#[derive(Subcommand)]
pub enum ManifestCommand {
    /// Join images of different platforms into one multi-platform image (an OCI image
    /// index) named NAME, as `podman manifest create NAME IMAGE...`.
    Create(CreateArgs),
    /// Print a multi-platform image's index (or an image's manifest) as JSON, as
    /// `docker manifest inspect` / `podman manifest inspect`.
    Inspect(InspectArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// Add the images to NAME's index if it exists (an image replaces the one of its
    /// platform), instead of refusing.
    #[arg(short, long)]
    pub amend: bool,
    /// The name of the multi-platform image (`NAME[:TAG]`).
    pub name: String,
    /// Images of the store (names or ids), one per platform; a multi-platform image adds
    /// each of its images.
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args)]
pub struct InspectArgs {
    /// A multi-platform image (or an image) of the store.
    pub name: String,
}

pub fn run(store: &Store, c: ManifestCommand) -> Result<ExitCode> {
    match c {
        ManifestCommand::Create(a) => create(store, a),
        ManifestCommand::Inspect(a) => inspect(store, a),
    }
}

/// The images a name or id stands for: each of an index's, else the one.
fn images_of(store: &Store, what: &str) -> Result<Vec<Image>> {
    match store.ref_target(what)? {
        Some(d) => Ok(store.images_at(&d)?),
        None => Ok(vec![store.resolve(what)?]),
    }
}

fn create(store: &Store, a: CreateArgs) -> Result<ExitCode> {
    let name = Reference::parse(&a.name).map_err(anyhow::Error::msg)?;
    if name.digest.is_some() {
        bail!(
            "refusing to create a manifest list with a digest reference: {}",
            a.name
        );
    }
    let w = store.lock_shared()?;
    // (the argument it came from, its image)
    let mut picked: Vec<(String, Image)> = Vec::new();
    if let Some(d) = store.ref_target(&name.to_string())? {
        if !a.amend {
            bail!(
                "{} already exists: give --amend to add images to it, or remove it first",
                name.familiar()
            );
        }
        for img in store.images_at(&d)? {
            picked.push((name.familiar(), img));
        }
    }
    let amended = picked.len();
    for what in &a.images {
        for img in images_of(store, what)? {
            let p = Platform::of_config(&img.config);
            let same = |i: &Image| Platform::of_config(&i.config) == p;
            // With --amend, a new image replaces the existing index's one of its platform.
            if let Some(k) = picked[..amended].iter().position(|(_, i)| same(i)) {
                picked[k].1 = img;
                continue;
            }
            if let Some((first, _)) = picked[amended..].iter().find(|(_, i)| same(i)) {
                bail!(
                    "{first} and {what} are both images for {p}: a multi-platform image holds \
                     one image per platform"
                );
            }
            picked.push((what.clone(), img));
        }
    }
    let refs: Vec<&Image> = picked.iter().map(|(_, i)| i).collect();
    let index = w.put_index(&refs)?;
    w.set_ref_index(&name, &index)?;
    println!("{}", index.digest);
    Ok(ExitCode::SUCCESS)
}

fn inspect(store: &Store, a: InspectArgs) -> Result<ExitCode> {
    let _lock = store.lock_shared()?;
    let digest = match store.ref_target(&a.name)? {
        Some(d) => d,
        None => store.resolve(&a.name)?.manifest_digest,
    };
    let bytes = store.read_blob(&digest)?;
    println!("{}", indent(&bytes)?);
    Ok(ExitCode::SUCCESS)
}

/// JSON indented with tabs, its keys in their order, as docker's `manifest inspect`
/// (Go's `json.Indent` with `"\t"`).
fn indent(bytes: &[u8]) -> Result<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes)?;
    super::indented_json(&v, b"\t")
}

#[cfg(test)]
mod tests {
    #[test]
    fn inspect_indents_with_tabs_keeping_the_key_order() {
        let raw = br#"{"schemaVersion":2,"mediaType":"m","manifests":[{"size":1,"digest":"d"}]}"#;
        assert_eq!(
            super::indent(raw).unwrap(),
            "{\n\t\"schemaVersion\": 2,\n\t\"mediaType\": \"m\",\n\t\"manifests\": [\n\t\t{\n\
             \t\t\t\"size\": 1,\n\t\t\t\"digest\": \"d\"\n\t\t}\n\t]\n}"
        );
    }
}
