//! `strata build`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use store::{Reference, Store};

use super::plan::parse_build_args;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    Auto,
    Tty,
    Plain,
}

#[derive(Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (`name:tag`).
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Set the target build stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Set build-time variables.
    #[arg(long = "build-arg", value_name = "NAME[=VALUE]")]
    pub build_args: Vec<String>,
    /// Do not use cache when building the image.
    #[arg(long)]
    pub no_cache: bool,
    /// Do not cache specified stages.
    #[arg(long = "no-cache-filter")]
    pub no_cache_filter: Vec<String>,
    /// Type of progress output (auto: tty when stderr is a terminal, else plain).
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// In tty mode, say why each step missed the cache (plain mode always does).
    #[arg(long)]
    pub explain_cache: bool,
    /// Networking mode for RUN instructions: default (a private network namespace with a
    /// route out; the host's loopback is not reachable), none (loopback only) or host.
    #[arg(long)]
    pub network: Option<String>,
    /// Allow an extra privileged entitlement: network.host (for `RUN --network=host`).
    #[arg(long, value_name = "ENTITLEMENT")]
    pub allow: Vec<String>,
    /// Secret to expose to the build: `id=ID,src=PATH`.
    #[arg(long)]
    pub secret: Vec<String>,
    /// After the build, print what each stage produced and what the final image kept.
    #[arg(long)]
    pub report: bool,
    /// Format of --report: `table` or `json`.
    #[arg(long, default_value = "table")]
    pub report_format: String,
    /// SSH agent socket for `RUN --mount=type=ssh`: `default` ($SSH_AUTH_SOCK) or `ID=PATH`.
    #[arg(long)]
    pub ssh: Vec<String>,
    /// Suppress the build output and print the image ID on success.
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image ID to the file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Set metadata for an image (`KEY=VALUE`).
    #[arg(long)]
    pub label: Vec<String>,
    /// Output destination: `type=image` (default: the store), `type=oci|docker,dest=FILE`
    /// (an archive; the image is kept in the store too), `type=local,dest=DIR` (the root
    /// filesystem), `type=tar,dest=FILE` (the root filesystem as a tar). `dest=-` (the
    /// default for tar and oci) streams the tar or archive to stdout, which must not be a
    /// terminal; `-o -` means `type=tar,dest=-`. A bare `DIR` means `type=local,dest=DIR`.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Export the build cache: `type=local,dest=DIR[,mode=min|max]` (an OCI layout
    /// directory) or `type=registry,ref=NAME[:TAG][,mode=min|max]`.
    #[arg(long = "cache-to")]
    pub cache_to: Vec<String>,
    /// Import a build cache: `type=local,src=DIR` or `type=registry,ref=NAME[:TAG]` (a bare
    /// `NAME[:TAG]` means a registry).
    #[arg(long = "cache-from")]
    pub cache_from: Vec<String>,
    /// Always look for a newer version of the base images in their registries.
    #[arg(long)]
    pub pull: bool,
    /// Push the image to its registry after the build (every `-t` name).
    #[arg(long)]
    pub push: bool,
    /// A registry that may be reached over plain http (also `STRATA_INSECURE_REGISTRIES`).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
    /// Build context: a directory, or `-` for a tar archive or a lone Dockerfile on stdin.
    pub context: PathBuf,
}

/// A `--cache-to` / `--cache-from` value, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheSpec {
    Local(PathBuf),
    Registry(String),
}

/// Parse `type=local,dest=DIR,mode=max` and friends; returns the place and whether
/// mode=max was asked for.
pub fn parse_cache_spec(v: &str, export: bool) -> Result<(CacheSpec, bool)> {
    let flag = if export { "--cache-to" } else { "--cache-from" };
    if !v.contains('=') {
        return Ok((CacheSpec::Registry(v.to_string()), false));
    }
    let mut kind = None;
    let mut path = None;
    let mut reference = None;
    let mut max = false;
    for part in v.split(',') {
        let (k, val) = part
            .split_once('=')
            .with_context(|| format!("{flag} {v}: {part:?} is not KEY=VALUE"))?;
        match k {
            "type" => kind = Some(val.to_string()),
            "dest" if export => path = Some(PathBuf::from(val)),
            "src" if !export => path = Some(PathBuf::from(val)),
            "ref" => reference = Some(val.to_string()),
            "mode" if export => {
                max = match val {
                    "max" => true,
                    "min" => false,
                    other => bail!("{flag} {v}: mode {other:?}: use min or max"),
                }
            }
            // BuildKit's other options (compression, oci-mediatypes, ...) do not apply.
            "compression" | "oci-mediatypes" | "image-manifest" | "ignore-error" => {}
            other => bail!("{flag} {v}: unknown option {other:?}"),
        }
    }
    let what = if export { "dest" } else { "src" };
    match kind.as_deref() {
        Some("local") => Ok((
            CacheSpec::Local(
                path.with_context(|| format!("{flag} {v}: type=local needs {what}=DIR"))?,
            ),
            max,
        )),
        Some("registry") => Ok((
            CacheSpec::Registry(
                reference.with_context(|| format!("{flag} {v}: type=registry needs ref=NAME"))?,
            ),
            max,
        )),
        Some(other) => {
            bail!("{flag} {v}: cache type {other:?} not supported: use local or registry")
        }
        None => bail!("{flag} {v}: give type=local or type=registry"),
    }
}

/// `--output`, parsed.
#[derive(Debug, PartialEq)]
enum Output {
    Image,
    /// `type=registry[,name=NAME]` or `type=image,name=NAME,push=true`: the image is kept in
    /// the store and pushed (under NAME and every `-t` name).
    Registry(Option<String>),
    Archive(archive::Format, Sink),
    Local(PathBuf),
    Tar(Sink),
}

/// Where a file output goes.
#[derive(Debug, PartialEq)]
enum Sink {
    /// `dest=-`: streamed to stdout (nothing else the build prints goes there).
    Stdout,
    File(PathBuf),
}

impl Sink {
    fn of(dest: PathBuf) -> Sink {
        if dest.as_os_str() == "-" {
            Sink::Stdout
        } else {
            Sink::File(dest)
        }
    }

    /// Write the output with `fill`: to stdout through a large buffer (streamed, never held
    /// whole), or to a file by `outpath`'s rules.
    fn write(&self, fill: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
        match self {
            Sink::Stdout => {
                let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
                fill(&mut out)?;
                out.flush().context("write to stdout")
            }
            Sink::File(path) => crate::outpath::write(path, fill),
        }
    }
}

impl Output {
    /// Whether the output is streamed to stdout.
    fn to_stdout(&self) -> bool {
        matches!(
            self,
            Output::Archive(_, Sink::Stdout) | Output::Tar(Sink::Stdout)
        )
    }
}

fn parse_output(s: Option<&str>) -> Result<Output> {
    let Some(s) = s else { return Ok(Output::Image) };
    // As buildx (and Docker 20.10's CLI): `-o -` is `type=tar,dest=-`.
    if s == "-" {
        return Ok(Output::Tar(Sink::Stdout));
    }
    if !s.contains('=') {
        return Ok(Output::Local(PathBuf::from(s)));
    }
    let mut typ = None;
    let mut dest = None;
    let mut name = None;
    let mut push = false;
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("type", v)) => typ = Some(v.to_string()),
            Some(("dest", v)) => dest = Some(PathBuf::from(v)),
            Some(("name", v)) => name = Some(v.to_string()),
            Some(("push", v)) => push = v == "true",
            _ => bail!("invalid --output {s:?}: expected type=TYPE[,dest=PATH][,name=NAME]"),
        }
    }
    let need =
        |d: Option<PathBuf>| d.ok_or_else(|| anyhow::anyhow!("--output {s:?} needs dest=PATH"));
    // buildx's rules: a tar or OCI archive without dest goes to stdout; a docker archive
    // needs one (buildx would load it into the daemon); a directory cannot be stdout.
    let file = |d: Option<PathBuf>| Sink::of(d.unwrap_or_else(|| PathBuf::from("-")));
    Ok(match typ.as_deref().unwrap_or("local") {
        "image" if push => Output::Registry(name),
        "image" => Output::Image,
        "registry" => Output::Registry(name),
        "oci" => Output::Archive(archive::Format::Oci, file(dest)),
        "docker" => Output::Archive(archive::Format::Docker, Sink::of(need(dest)?)),
        "local" => match need(dest)? {
            d if d.as_os_str() == "-" => {
                bail!("--output {s:?}: dest cannot be stdout for the local exporter: use type=tar,dest=-")
            }
            d => Output::Local(d),
        },
        "tar" => Output::Tar(file(dest)),
        other => bail!(
            "unsupported --output type {other:?}: use image, registry, oci, docker, local or tar"
        ),
    })
}

/// Unpack an image's layers into `dir` (whiteouts applied).
fn unpack_image(store: &Store, image: &store::Image, dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    for l in &image.config.rootfs.diff_ids {
        let blob = store.open_blob(l)?;
        layer::apply(blob, dir, &layer::ApplyOptions::default())
            .with_context(|| format!("unpack layer {l}"))?;
    }
    Ok(())
}

fn parse_secret(s: &str) -> Result<(String, PathBuf)> {
    let mut id = None;
    let mut src = None;
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
            Some(("type", "file")) => {}
            _ => bail!("invalid --secret {s:?}: expected id=ID,src=PATH"),
        }
    }
    let id = id.context("--secret needs id=ID")?;
    let src = src.unwrap_or_else(|| PathBuf::from(&id));
    // A relative path names a file under the working directory, as with docker; the
    // executor binds it into the container, which needs it absolute.
    let src = std::path::absolute(&src)
        .with_context(|| format!("secret {id}: resolve {}", src.display()))?;
    if !src.exists() {
        bail!("secret {id}: {} does not exist", src.display());
    }
    Ok((id, src))
}

pub fn run(store: &Store, a: BuildArgs) -> Result<ExitCode> {
    let output = parse_output(a.output.as_deref())?;
    if output.to_stdout() && std::io::stdout().is_terminal() {
        let kind = match output {
            Output::Archive(archive::Format::Oci, _) => "oci",
            Output::Archive(archive::Format::Docker, _) => "docker",
            _ => "tar",
        };
        bail!(
            "dest file is required for {kind} exporter. refusing to write to console \
             (redirect stdout to a file or a pipe, or give dest=FILE)"
        );
    }
    if let Output::Local(dir) = &output {
        crate::outpath::check_dir(dir, "--output dest=")?;
    }
    if let Some(f) = &a.iidfile {
        // As docker: no stale image ID survives a failed build.
        crate::outpath::remove_stale(f)?;
    }
    // `-`: a tar archive (the context) or a lone Dockerfile (no context) on stdin.
    let stdin_ctx = tempfile_dir(store)?;
    let mut stdin_dockerfile = None;
    let context = if a.context.as_os_str() == "-" {
        use std::io::Read;
        let mut head = Vec::new();
        std::io::stdin().lock().take(512).read_to_end(&mut head)?;
        if layer::is_tar_header(&head) {
            let reader = std::io::Cursor::new(head).chain(std::io::stdin().lock());
            context::extract_tar(reader, &stdin_ctx.0)
                .context("unable to prepare context from stdin")?;
            Some(stdin_ctx.0.clone())
        } else {
            let mut text = head;
            std::io::stdin().lock().read_to_end(&mut text)?;
            stdin_dockerfile = Some(
                String::from_utf8(text).context("the Dockerfile on stdin is not valid UTF-8")?,
            );
            None
        }
    } else {
        let meta = std::fs::metadata(&a.context).with_context(|| {
            format!(
                "unable to prepare context: path {:?} not found",
                a.context.display().to_string()
            )
        })?;
        if !meta.is_dir() {
            bail!(
                "unable to prepare context: {} is not a directory",
                a.context.display()
            );
        }
        Some(a.context.clone())
    };
    let path = super::dockerfile_path(
        a.file.as_deref(),
        context.as_deref().unwrap_or(std::path::Path::new(".")),
    );
    let src = match (&stdin_dockerfile, &context) {
        (Some(text), _) => super::DockerfileSource {
            display: "Dockerfile".into(),
            text: text.clone(),
        },
        (None, Some(_)) => super::read_dockerfile(&path)?,
        (None, None) => unreachable!("stdin gave either a context or a Dockerfile"),
    };
    // <Dockerfile>.dockerignore wins over the context's .dockerignore, as in BuildKit.
    let specific = PathBuf::from(format!("{}.dockerignore", path.display()));
    let ignore_text = match &context {
        Some(ctx) => std::fs::read_to_string(&specific)
            .or_else(|_| std::fs::read_to_string(ctx.join(".dockerignore")))
            .unwrap_or_default(),
        None => String::new(),
    };
    let ignore: Vec<String> = ignore_text.lines().map(str::to_string).collect();
    let mut tags = Vec::new();
    for t in &a.tags {
        tags.push(Reference::parse(t).map_err(anyhow::Error::msg)?);
    }
    let mut labels = Vec::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.push((k.to_string(), v.to_string()));
    }
    let secrets = a
        .secret
        .iter()
        .map(|s| parse_secret(s))
        .collect::<Result<Vec<_>>>()?;
    let mut ssh = Vec::new();
    for s in &a.ssh {
        let (id, path) = match s.split_once('=') {
            Some((id, p)) => (id.to_string(), PathBuf::from(p)),
            None => match std::env::var_os("SSH_AUTH_SOCK") {
                Some(p) => (s.clone(), PathBuf::from(p)),
                None => bail!("--ssh {s}: SSH_AUTH_SOCK is not set; pass --ssh {s}=SOCKET"),
            },
        };
        if !path.exists() {
            bail!("--ssh {id}: {} does not exist", path.display());
        }
        ssh.push((id, path));
    }
    if let Some(n) = &a.network {
        if !["default", "none", "host"].contains(&n.as_str()) {
            bail!("network mode {n:?} not supported: use default, none or host");
        }
    }
    if let Output::Registry(Some(n)) = &output {
        let r = Reference::parse(n).map_err(anyhow::Error::msg)?;
        if !tags.contains(&r) {
            tags.push(r);
        }
    }
    let push = a.push || matches!(output, Output::Registry(_));
    if push && tags.is_empty() {
        bail!("--push needs a name: give -t NAME or --output type=registry,name=NAME");
    }
    let plan_opts = plan::PlanOptions {
        target: a.target.clone(),
        build_args: parse_build_args(&a.build_args),
        ..plan::PlanOptions::default()
    };
    let mut allow_network_host = false;
    for e in a.allow.iter().flat_map(|v| v.split(',')) {
        match e.trim() {
            build::entitlements::NETWORK_HOST => allow_network_host = true,
            "security.insecure" => bail!("--allow: entitlement security.insecure is not supported"),
            other => bail!("--allow: unknown entitlement {other:?} (supported: network.host)"),
        }
    }
    let allow_host = allow_network_host || a.network.as_deref() == Some("host");
    // Base images and `--from` images not in the store (all of them with --pull) come from
    // their registries first. A Dockerfile error (a refused entitlement too) is left for the
    // build to report, before anything is pulled.
    let planned = plan::plan(&src.text, &plan_opts, &plan::Unresolved)
        .ok()
        .filter(|p| build::entitlements::check(p, &src.text, allow_host).is_none());
    if let Some(p) = planned {
        for r in build::external_images(&p) {
            ensure_image(store, &r, a.pull, &registry_options(&a), a.quiet)?;
        }
    }
    let mut cache_from = Vec::new();
    for v in &a.cache_from {
        match parse_cache_spec(v, false)? {
            (CacheSpec::Local(dir), _) => {
                // A missing cache is not an error (the first build that exports it).
                if dir.join("index.json").exists() {
                    cache_from.push(std::sync::Arc::new(
                        build::cache::Imported::open_local(&dir).map_err(anyhow::Error::msg)?,
                    ));
                } else if !a.quiet {
                    eprintln!(
                        "#0 importing cache from {}: no cache there yet",
                        dir.display()
                    );
                }
            }
            (CacheSpec::Registry(r), _) => {
                let reference = store::Reference::parse(&r)
                    .map_err(|e| anyhow::anyhow!("--cache-from {r}: {e}"))?;
                let repo = registry::Repo::connect(&reference, &registry_options(&a), false)
                    .with_context(|| format!("--cache-from {r}"))?;
                match repo
                    .manifest()
                    .with_context(|| format!("--cache-from {r}"))?
                {
                    Some(m) => cache_from.push(std::sync::Arc::new(
                        build::cache::Imported::open(
                            Box::new(RegistryCache { repo, store: None }),
                            &m,
                        )
                        .map_err(anyhow::Error::msg)?,
                    )),
                    None if !a.quiet => {
                        eprintln!("#0 importing cache from {r}: no cache there yet")
                    }
                    None => {}
                }
            }
        }
    }
    let mut cache_to = Vec::new();
    for v in &a.cache_to {
        let spec = parse_cache_spec(v, true)?;
        if let (CacheSpec::Local(dir), _) = &spec {
            crate::outpath::check_dir(dir, "--cache-to dest=")?;
        }
        cache_to.push(spec);
    }
    let opts = build::BuildOptions {
        cache_from,
        dockerfile: src.text.clone(),
        context: context.clone(),
        plan: plan_opts,
        no_cache: a.no_cache,
        no_cache_filter: a.no_cache_filter.clone(),
        network: a.network.clone(),
        allow_network_host,
        labels,
        tags: tags.clone(),
        ignore,
        secrets,
        ssh,
    };
    let started = std::time::Instant::now();
    let tty = match a.progress {
        ProgressMode::Tty => true,
        ProgressMode::Plain => false,
        ProgressMode::Auto => std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let progress: Box<dyn build::Progress> = if a.quiet {
        Box::new(build::Quiet)
    } else if tty {
        Box::new(build::Tty::new(a.explain_cache))
    } else {
        Box::new(build::Plain::stderr())
    };
    // The store lock, held across the build, its report and the cache export (which
    // write compressed layers and size records), so no prune runs between them.
    let store = &store.lock_shared()?;
    match build::build(store, &opts, progress.as_ref()) {
        Ok(r) => {
            let id = r.image.id().to_string();
            if a.report {
                let report = super::size::build_report(store, &r, a.report_format == "json")?;
                // stdout carries the streamed output, if any: the report goes to stderr then.
                if output.to_stdout() {
                    eprint!("{report}");
                } else {
                    print!("{report}");
                }
            }
            match &output {
                Output::Image | Output::Registry(_) => {}
                Output::Archive(format, dest) => {
                    let item = archive::SaveItem {
                        image: r.image.clone(),
                        names: tags.clone(),
                    };
                    dest.write(|w| {
                        archive::save(store, &[item], *format, layer::Compression::Gzip, w)?;
                        Ok(())
                    })?;
                }
                Output::Local(dir) => unpack_image(store, &r.image, dir)?,
                Output::Tar(file) => {
                    let tmp = tempfile_dir(store)?;
                    let root = tmp.0.join("rootfs");
                    unpack_image(store, &r.image, &root)?;
                    file.write(|w| {
                        layer::commit(&root, &layer::CommitOptions::default(), w)?;
                        Ok(())
                    })?;
                }
            }
            for (spec, max) in &cache_to {
                let stats = match spec {
                    CacheSpec::Local(dir) => {
                        build::cache::export(store, &r, *max, &build::cache::LocalDir(dir.clone()))?
                    }
                    CacheSpec::Registry(name) => {
                        let reference = store::Reference::parse(name)
                            .map_err(|e| anyhow::anyhow!("--cache-to {name}: {e}"))?;
                        let repo = registry::Repo::connect(&reference, &registry_options(&a), true)
                            .with_context(|| format!("--cache-to {name}"))?;
                        build::cache::export(
                            store,
                            &r,
                            *max,
                            &RegistryCache {
                                repo,
                                store: Some(store),
                            },
                        )?
                    }
                };
                if !a.quiet {
                    let where_ = match spec {
                        CacheSpec::Local(d) => d.display().to_string(),
                        CacheSpec::Registry(r) => r.clone(),
                    };
                    eprintln!(
                        "#0 exporting cache to {where_} (mode={}): {} records, {} layers, {} cache mounts, {} blobs written",
                        if *max { "max" } else { "min" },
                        stats.records,
                        stats.layers,
                        stats.mounts,
                        stats.uploaded
                    );
                }
            }
            if !r.cache_fetched.is_empty() && !a.quiet {
                eprintln!(
                    "#0 fetched {} layers from the imported cache",
                    r.cache_fetched.len()
                );
            }
            if push {
                let opts = registry_options(&a);
                for t in &tags {
                    if !a.quiet {
                        eprintln!("#0 pushing {t}");
                    }
                    let quiet = |_: &str, _: &str| {};
                    let p = registry::push(store, t, &opts, &quiet)
                        .with_context(|| format!("pushing {t} to {}", t.domain))?;
                    if !a.quiet {
                        eprintln!("#0 pushed {t}: digest: {} size: {}", p.digest, p.size);
                    }
                }
            }
            if let Some(f) = &a.iidfile {
                crate::outpath::write(f, |w| Ok(w.write_all(id.as_bytes())?))
                    .with_context(|| format!("write {}", f.display()))?;
            }
            if a.quiet {
                // As docker's CLI: with the output on stdout, -q prints no image ID there.
                if !output.to_stdout() {
                    println!("{id}");
                }
            } else {
                let mut e = std::io::stderr().lock();
                let _ = writeln!(e, "\n#0 writing image {id} done");
                for t in &tags {
                    let _ = writeln!(e, "#0 naming to {t} done");
                }
                let _ = writeln!(
                    e,
                    "#0 DONE {:.1}s ({} RUN executed, {} steps cached)",
                    started.elapsed().as_secs_f64(),
                    r.runs_executed,
                    r.cached
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(build::BuildError::Dockerfile(d)) => {
            eprint!("{}", d.render(&src.display));
            Ok(ExitCode::FAILURE)
        }
        Err(build::BuildError::Step {
            step,
            message,
            tail,
        }) => {
            let mut e = std::io::stderr().lock();
            let _ = writeln!(e, "------\n > {step}:");
            for l in &tail {
                let _ = writeln!(e, "{l}");
            }
            let _ = writeln!(e, "------");
            let _ = writeln!(e, "error: failed to solve: {step}: {message}");
            Ok(ExitCode::FAILURE)
        }
        Err(other) => Err(anyhow::Error::new(other).context("failed to solve")),
    }
}

/// A private directory under the store's tmp/, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = store::remove_tree(&self.0);
    }
}

fn tempfile_dir(store: &Store) -> Result<TempDir> {
    let p = store.temp_path("cli");
    std::fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
    Ok(TempDir(p))
}

/// Registries this build may reach over plain http, and mirrors: the environment's.
fn registry_options(a: &BuildArgs) -> registry::Options {
    let mut o = registry::Options::from_env();
    o.insecure.extend(a.insecure_registry.iter().cloned());
    o
}

/// A build cache in a registry repository: the cache manifest under the reference's tag,
/// its blobs in the repository.
struct RegistryCache<'s> {
    repo: registry::Repo,
    /// Set for exports: blobs are uploaded from the store.
    store: Option<&'s store::Store>,
}

impl build::cache::BlobSource for RegistryCache<'static> {
    fn describe(&self) -> String {
        self.repo.describe()
    }
    fn open(&self, digest: &store::Digest) -> Result<Box<dyn std::io::Read + Send + '_>, String> {
        self.repo.open_blob(digest).map_err(|e| e.to_string())
    }
}

impl build::cache::BlobSink for RegistryCache<'_> {
    fn describe(&self) -> String {
        self.repo.describe()
    }
    fn has(&self, digest: &store::Digest) -> bool {
        self.repo.has_blob(digest).unwrap_or(false)
    }
    fn put(
        &self,
        digest: &store::Digest,
        size: u64,
        _data: &mut dyn std::io::Read,
    ) -> Result<(), String> {
        let store = self.store.ok_or("no store to upload from")?;
        let d = store::image::Descriptor {
            media_type: "application/octet-stream".into(),
            digest: digest.clone(),
            size,
            annotations: None,
            platform: None,
        };
        self.repo
            .push_store_blob(store, &d)
            .map_err(|e| e.to_string())
    }
    fn put_manifest(&self, media_type: &str, bytes: &[u8]) -> Result<(), String> {
        self.repo
            .put_manifest(media_type, bytes, &|_, _| {})
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Make sure the store has image `r`: pulled when it is missing, or always with `--pull`.
fn ensure_image(
    store: &Store,
    r: &str,
    force: bool,
    opts: &registry::Options,
    quiet: bool,
) -> Result<()> {
    if !force && store.resolve(r).is_ok() {
        return Ok(());
    }
    let reference =
        Reference::parse(r).map_err(|e| anyhow::anyhow!("failed to resolve image {r}: {e}"))?;
    if !quiet {
        eprintln!("#0 pulling {reference}");
    }
    let started = std::time::Instant::now();
    let progress = |_: &str, _: &str| {};
    let p = registry::pull(store, &reference, opts, &progress).map_err(|e| {
        if force {
            anyhow::anyhow!("failed to resolve image {reference} (--pull): {e}")
        } else {
            anyhow::anyhow!("failed to resolve image {reference}: not in the local store, and {e}")
        }
    })?;
    if !quiet {
        eprintln!(
            "#0 pulled {reference} ({}) in {:.1}s",
            p.digest,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_dest_dash_is_stdout() {
        let p = |s: &str| parse_output(Some(s)).unwrap();
        assert_eq!(p("-"), Output::Tar(Sink::Stdout));
        assert_eq!(p("type=tar,dest=-"), Output::Tar(Sink::Stdout));
        // buildx: tar and oci default to stdout, docker needs a dest.
        assert_eq!(p("type=tar"), Output::Tar(Sink::Stdout));
        assert_eq!(
            p("type=oci"),
            Output::Archive(archive::Format::Oci, Sink::Stdout)
        );
        assert_eq!(
            p("type=docker,dest=-"),
            Output::Archive(archive::Format::Docker, Sink::Stdout)
        );
        assert!(parse_output(Some("type=docker")).is_err());
        assert_eq!(
            p("type=tar,dest=out.tar"),
            Output::Tar(Sink::File("out.tar".into()))
        );
        assert_eq!(p("out"), Output::Local("out".into()));
        assert_eq!(p("./-"), Output::Local("./-".into()));
        let e = parse_output(Some("type=local,dest=-")).unwrap_err();
        assert!(e.to_string().contains("dest cannot be stdout"), "{e}");
        assert!(p("-").to_stdout() && !p("type=tar,dest=x").to_stdout());
    }
}
