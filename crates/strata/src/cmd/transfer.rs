//! import, load, save.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use store::{Reference, Store};

use store::now_rfc3339;

#[derive(Args)]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
    /// ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL, SHELL).
    #[arg(short, long = "change")]
    pub changes: Vec<String>,
    /// Commit message (the history comment).
    #[arg(short, long)]
    pub message: Option<String>,
    /// The image's platform (`linux/arm64`): its config's os, architecture and variant
    /// (default: the host's), as `docker import --platform`.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Rootfs tarball (plain, gzip or zstd), or `-` for stdin.
    pub file: PathBuf,
    /// Name for the image (`NAME[:TAG]`).
    pub name: Option<String>,
}

fn open_input(path: &PathBuf) -> Result<Box<dyn Read>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(io::stdin().lock()));
    }
    let f = File::open(path).with_context(|| format!("open {}", path.display()))?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
}

/// A byte bar on stderr while `verb` reads or writes (`Loading [====>   ] 12 MiB/45 MiB`), on
/// a terminal only; `total` when it is known.
fn byte_bar(verb: &str, total: Option<u64>) -> Option<indicatif::ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let b = match total {
        Some(t) => indicatif::ProgressBar::new(t).with_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{verb} [{{bar:40}}] {{bytes}}/{{total_bytes}}"
            ))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        ),
        None => indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template(&format!("{verb} {{bytes}} {{spinner}}"))
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        ),
    };
    b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    Some(b)
}

/// The runtime config that `--change` instructions give an imported image.
fn config_from_changes(changes: &[String]) -> Result<store::image::RunConfig> {
    const ALLOWED: &[&str] = &[
        "CMD",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "LABEL",
        "ONBUILD",
        "USER",
        "VOLUME",
        "WORKDIR",
        "STOPSIGNAL",
        "SHELL",
    ];
    let mut cfg = store::image::RunConfig::default();
    let mut st = engine::config::StageState::default();
    for c in changes {
        let src = format!("FROM scratch\n{c}\n");
        let p = plan::plan(&src, &plan::PlanOptions::default(), &plan::Unresolved)
            .map_err(|d| anyhow::anyhow!("invalid --change {c:?}: {}", d.message))?;
        for step in &p.target_stage().steps {
            let kw = step.instruction.keyword();
            if !ALLOWED.contains(&kw) {
                bail!("{kw} is not a valid change command");
            }
            engine::config::apply(&mut cfg, &mut st, &step.instruction);
        }
    }
    Ok(cfg)
}

pub fn import(store: &Store, a: ImportArgs) -> Result<ExitCode> {
    let config = config_from_changes(&a.changes)?;
    let tags = match &a.name {
        Some(n) => vec![Reference::parse(n).map_err(anyhow::Error::msg)?],
        None => Vec::new(),
    };
    // docker's client streams a local file to the daemon, which records it as `-` in the
    // history (checked against docker 20.10); messages name the file itself.
    let opts = archive::ImportOptions {
        config,
        created: now_rfc3339(),
        comment: a
            .message
            .clone()
            .unwrap_or_else(|| "Imported from -".to_string()),
        platform: super::run::platform_flag(a.platform.as_deref())?,
    };
    let input = open_input(&a.file)?;
    let img = archive::import_rootfs(store, input, &opts, &tags)
        .with_context(|| format!("import {}", a.file.display()))?;
    println!("{}", img.id());
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct LoadArgs {
    /// Read from a tar archive file, instead of STDIN.
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Suppress the load output.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn load(store: &Store, a: LoadArgs) -> Result<ExitCode> {
    let path = a.input.clone().unwrap_or_else(|| PathBuf::from("-"));
    if path.as_os_str() == "-" && io::stdin().is_terminal() {
        bail!("requested load from stdin, but stdin is empty");
    }
    let input = open_input(&path)?;
    let size = (path.as_os_str() != "-")
        .then(|| std::fs::metadata(&path).ok().map(|m| m.len()))
        .flatten();
    let bar = byte_bar("Loading", size);
    let input: Box<dyn Read> = match &bar {
        Some(b) => Box::new(b.wrap_read(input)),
        None => input,
    };
    let loaded = archive::load(store, input).with_context(|| format!("load {}", path.display()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if !a.quiet {
        for l in &loaded {
            if l.names.is_empty() {
                // An untagged index is known by its digest (as docker's containerd store).
                let id = l.index.as_ref().map_or(l.image.id(), |i| &i.digest);
                println!("Loaded image ID: {id}");
            }
            for n in &l.names {
                println!("Loaded image: {}", n.familiar());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SaveFormat {
    Docker,
    Oci,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum CompressionArg {
    Gzip,
    Zstd,
}

#[derive(Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Archive format: docker-archive (as `docker save`) or an OCI image layout.
    #[arg(long, value_enum, default_value_t = SaveFormat::Docker)]
    pub format: SaveFormat,
    /// Layer compression in OCI archives.
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    pub compression: CompressionArg,
    /// Of a multi-platform image, save that platform's image only (a docker-archive holds
    /// one image per name: the host's without this flag; an OCI archive the whole index).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

pub fn save(store: &Store, a: SaveArgs) -> Result<ExitCode> {
    let platform = super::run::platform_flag(a.platform.as_deref())?;
    let _lock = store.lock_shared()?;
    let mut items: Vec<archive::SaveItem> = Vec::new();
    let mut indexes: Vec<archive::SaveIndex> = Vec::new();
    for what in &a.images {
        let names = match Reference::parse(what) {
            Ok(r) if store.refs()?.contains_key(&r.to_string()) => vec![r],
            _ => Vec::new(),
        };
        // An index in an OCI archive stays one (as `podman save --format oci-archive` of a
        // manifest list with `--multi-image-archive`, buildx's `type=oci`); a docker-archive
        // gets one image of it.
        if let (SaveFormat::Oci, None) = (a.format, &platform) {
            if let Some(index) = match store.ref_target(what)? {
                Some(d) => store.index(&d)?,
                None => None,
            } {
                match indexes.iter_mut().find(|i| i.index.digest == index.digest) {
                    Some(i) => i.names.extend(names),
                    None => indexes.push(archive::SaveIndex { index, names }),
                }
                continue;
            }
        }
        let image = store.resolve_platform(what, platform.as_ref())?;
        match items
            .iter_mut()
            .find(|i| i.image.manifest_digest == image.manifest_digest)
        {
            Some(i) => i.names.extend(names),
            None => items.push(archive::SaveItem { image, names }),
        }
    }
    let format = match a.format {
        SaveFormat::Docker => archive::Format::Docker,
        SaveFormat::Oci => archive::Format::Oci,
    };
    let compression = match a.compression {
        CompressionArg::Gzip => layer::Compression::Gzip,
        CompressionArg::Zstd => layer::Compression::Zstd,
    };
    match &a.output {
        None => {
            if io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
            archive::save_all(store, &items, &indexes, format, compression, &mut out)?;
            out.flush()?;
        }
        Some(path) => {
            // outpath's rules: a device or a pipe (`-o /dev/null`, a FIFO) is written into;
            // anything else is written beside the path (named after this process, so a
            // later save removes what a killed one left) and renamed over it, so a failed
            // save leaves no partial file and a planted symlink is replaced, not followed.
            let bar = byte_bar("Saving", None);
            crate::outpath::write(path, |w| {
                match &bar {
                    Some(b) => archive::save_all(
                        store,
                        &items,
                        &indexes,
                        format,
                        compression,
                        &mut b.wrap_write(w),
                    )?,
                    None => archive::save_all(store, &items, &indexes, format, compression, w)?,
                }
                Ok(())
            })
            .with_context(|| format!("save to {}", path.display()))?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
