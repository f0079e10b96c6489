//! `strata build`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use engine::RemoteError;
use store::{Reference, Store, Writer};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    Auto,
    Tty,
    Plain,
    /// No progress at all (buildx's `quiet`; `-q` also prints the image ID).
    Quiet,
    /// BuildKit's solve status as JSON, one object per line (buildx's `rawjson`).
    Rawjson,
}

#[derive(Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (`name:tag`).
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub dockerfile: super::DockerfileFlags,
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
    /// route out; the host's loopback is not reachable), none (loopback only) or host (also
    /// `$STRATA_NETWORK`: a pod without /dev/net/tun builds with the pod's network).
    #[arg(long, env = "STRATA_NETWORK")]
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
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    pub label: Vec<(String, String)>,
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
    #[command(flatten)]
    pub registry: super::registry::RegistryFlags,
    /// Only check the Dockerfile against BuildKit's rules, as `strata check`: no build.
    #[arg(long)]
    pub check: bool,
    /// With --check: also strata's own rules (the tutorials' best practices), apart.
    #[arg(long, requires = "check")]
    pub practices: bool,
    /// Target platform (`os/arch[/variant]`): this host's only for now.
    #[arg(long, value_name = "PLATFORM", value_delimiter = ',')]
    pub platform: Vec<String>,
    /// Write the build's result (`containerimage.digest`, `image.name`, ...) as JSON, as
    /// buildx does.
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Provenance attestation (`false`, `true`, `mode=min|max`): strata produces none yet.
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub provenance: Option<String>,
    /// SBOM attestation (`false`, `true`, ...): strata produces none yet.
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub sbom: Option<String>,
    /// docker's default: no intermediate containers are left behind (strata keeps none).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub rm: Option<bool>,
    /// Accepted for docker's scripts: strata keeps no intermediate containers.
    #[arg(long)]
    pub force_rm: bool,
    /// Accepted for buildx's scripts: the image is always in strata's store.
    #[arg(long)]
    pub load: bool,
    /// Add a line to RUN's `/etc/hosts` (`HOST:IP`).
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Size of RUN's `/dev/shm` (`64m`, `1g`, bytes).
    #[arg(long = "shm-size", value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// How RUN is isolated: `default` (its own pid namespace and /proc), or `chroot` (the
    /// caller's /proc bound, for a container or pod whose masked /proc forbids a new one;
    /// weaker: RUN sees the pod's processes). Also `$STRATA_ISOLATION`.
    #[arg(long, value_name = "default|chroot", env = "STRATA_ISOLATION")]
    pub isolation: Option<String>,
    /// An extra named context (`NAME=docker-image://REF`): `FROM NAME` and `--from=NAME`
    /// use that image.
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_context: Vec<String>,
    /// A resource limit for RUN (`nofile=1024:2048`).
    #[arg(long, value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<String>,
    /// Build context: a directory, or `-` for a tar archive or a lone Dockerfile on stdin.
    pub context: PathBuf,
}

/// A `--cache-to` / `--cache-from` value, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheSpec {
    Local(PathBuf),
    Registry(String),
    /// `--cache-to type=inline`: the records in the image's own config.
    Inline,
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
        Some("inline") if export => Ok((CacheSpec::Inline, false)),
        Some("inline") => bail!(
            "{flag} {v}: an inline cache is read from its image: give --cache-from IMAGE \
             (or type=registry,ref=IMAGE)"
        ),
        Some(other) => {
            bail!("{flag} {v}: cache type {other:?} not supported: use local, registry or inline")
        }
        None => bail!("{flag} {v}: give type=local, type=registry or type=inline"),
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

/// The engine writes file outputs through the CLI, which owns stdout and `outpath`'s rules.
impl engine::Sink for Sink {
    fn write(
        &self,
        fill: &mut dyn FnMut(&mut dyn Write) -> Result<(), RemoteError>,
    ) -> Result<(), RemoteError> {
        Sink::write(self, |w| Ok(fill(w)?)).map_err(|e| RemoteError(format!("{e:#}")))
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

/// `--label KEY=VALUE` (a bare `KEY` is an empty value).
fn key_value(l: &str) -> Result<(String, String), std::convert::Infallible> {
    let (k, v) = l.split_once('=').unwrap_or((l, ""));
    Ok((k.to_string(), v.to_string()))
}

/// Secrets as the engine takes them: id and file.
type Secrets = Vec<(String, PathBuf)>;

/// A `--secret` whose value comes from the environment (`id=ID,env=VAR` or `type=env`).
pub struct EnvSecret {
    pub id: String,
    pub var: String,
}

/// `--secret`: a file (`id=ID[,src=PATH]`), or an environment variable (`id=ID,env=VAR`,
/// `type=env,id=ID` reads `$ID`), as buildx.
fn parse_secret(s: &str) -> Result<std::result::Result<(String, PathBuf), EnvSecret>> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    let mut kind = None;
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
            Some(("env", v)) => env = Some(v.to_string()),
            Some(("type", v @ ("file" | "env"))) => kind = Some(v),
            _ => bail!("invalid --secret {s:?}: expected id=ID,src=PATH or id=ID,env=VAR"),
        }
    }
    let id = id.context("--secret needs id=ID")?;
    if env.is_some() || kind == Some("env") {
        if src.is_some() {
            bail!("invalid --secret {s:?}: give src= or env=, not both");
        }
        let var = env.unwrap_or_else(|| id.clone());
        return Ok(Err(EnvSecret { id, var }));
    }
    let src = src.unwrap_or_else(|| PathBuf::from(&id));
    // A relative path names a file under the working directory, as with docker; the
    // executor binds it into the container, which needs it absolute.
    let src = std::path::absolute(&src)
        .with_context(|| format!("secret {id}: resolve {}", src.display()))?;
    if !src.exists() {
        bail!("secret {id}: {} does not exist", src.display());
    }
    Ok(Ok((id, src)))
}

/// Environment secrets as files the build can bind: each value written (mode 0600) into
/// a private directory (mode 0700) that lives as long as the returned guard, outside any
/// rootfs and the store.
fn env_secret_files(secrets: Vec<EnvSecret>) -> Result<(Secrets, Option<tempfile::TempDir>)> {
    if secrets.is_empty() {
        return Ok((Vec::new(), None));
    }
    let dir = tempfile::Builder::new()
        .prefix("strata-secrets-")
        .tempdir()
        .context("create a private directory for --secret env=")?;
    let mut out = Vec::new();
    for (i, s) in secrets.into_iter().enumerate() {
        let value = std::env::var_os(&s.var).with_context(|| {
            format!("secret {}: environment variable {} is not set", s.id, s.var)
        })?;
        let path = dir.path().join(i.to_string());
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(value.as_bytes()))
            .with_context(|| format!("secret {}: write {}", s.id, path.display()))?;
        out.push((s.id, path));
    }
    Ok((out, Some(dir)))
}

/// The `--build-context NAME=DIR`s of `a`, made into images and named in `options`.
fn directory_contexts(
    store: &Store,
    remote: &dyn engine::Remote,
    a: &BuildArgs,
    options: &mut engine::BuildOptions,
) -> Result<()> {
    for c in &a.build_context {
        if let (name, NamedContext::Dir(dir)) = parse_build_context(c)? {
            let id = directory_context(store, remote, &name, &dir)?;
            options.plan.named_contexts.push((name, id));
        }
    }
    Ok(())
}

/// A build as `strata compose build` runs it: `a` parsed from the service's build section
/// as `strata build` flags, the image kept and tagged in the store (no other output),
/// progress to `progress`. A failure is printed as `build` prints it (the step's box and
/// its Dockerfile frame) and returned as an error naming nothing more.
pub fn build_image(
    store: &Store,
    a: &BuildArgs,
    progress: &dyn engine::Progress,
) -> Result<engine::BuildResult> {
    target_platforms(&a.platform)?;
    let mut tags = Vec::new();
    for t in &a.tags {
        tags.push(Reference::parse(t).map_err(anyhow::Error::msg)?);
    }
    let (mut options, _secrets) = options(a)?;
    options.tags = tags;
    options.allow_network_host = allow_network_host(&a.allow)?;
    let (cache_imports, cache_exports, inline_cache) = cache_specs(a)?;
    options.inline_cache = inline_cache;
    let remote = RegistryRemote(a.registry.options());
    directory_contexts(store, &remote, a, &mut options)?;
    let (context, dockerfile, _) = sources(a)?;
    let request = engine::BuildRequest {
        context,
        dockerfile,
        options,
        pull: a.pull,
        exporters: Vec::new(),
        cache_imports,
        cache_exports,
        on_built: None,
    };
    match engine::build(store, request, &remote, progress) {
        Ok(r) => Ok(r),
        Err(f) => {
            failed(f, a.dockerfile.file.is_some(), &|| {})?;
            bail!("the build failed")
        }
    }
}

/// What a `--build-context NAME=VALUE` names.
#[derive(Debug, Clone, PartialEq)]
enum NamedContext {
    /// `docker-image://REF`: an image (from the store, else pulled).
    Image(String),
    /// A local directory (a path with no scheme), as buildx takes it.
    Dir(PathBuf),
}

/// `--build-context NAME=docker-image://REF` or `NAME=DIR`: the name and what it stands
/// for. git and https sources, `oci-layout://` and `target:` are not supported yet.
fn parse_build_context(v: &str) -> Result<(String, NamedContext)> {
    let (name, value) = v
        .split_once('=')
        .with_context(|| format!("invalid --build-context {v:?}: expected NAME=VALUE"))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
    {
        bail!("invalid --build-context {v:?}: the name must be lower-case letters, digits, '-', '_' or '.'");
    }
    match value.split_once("://") {
        Some(("docker-image", r)) => {
            let r = Reference::parse(r)
                .map_err(|e| anyhow::anyhow!("invalid --build-context {v:?}: {e}"))?;
            Ok((name.to_string(), NamedContext::Image(r.to_string())))
        }
        Some((scheme, _)) => bail!(
            "--build-context {v}: {scheme}:// contexts are not supported yet (docker-image://REF \
             and local directories are)"
        ),
        None if value.starts_with("target:") || value.starts_with("git@") => bail!(
            "--build-context {v}: {} contexts are not supported yet (docker-image://REF and \
             local directories are)",
            value.split(':').next().unwrap_or(value)
        ),
        None if value.is_empty() => {
            bail!("invalid --build-context {v:?}: expected NAME=DIR or NAME=docker-image://REF")
        }
        None => Ok((name.to_string(), NamedContext::Dir(PathBuf::from(value)))),
    }
}

/// A local directory given as `--build-context NAME=DIR`, made into an image BuildKit's
/// way: `FROM scratch` and the directory's files as `.dockerignore` (the directory's own)
/// leaves them, owned by root (BuildKit's file transfer resets owners), modes and
/// modification times kept. It is built as `FROM scratch\nCOPY . /` by the engine, so the
/// stat cache and the layer cache make an unchanged directory cost a stat walk; the image
/// stays in the store untagged. Returns the image's id, which `FROM NAME` and
/// `COPY --from=NAME` then use as they use a `docker-image://` context.
fn directory_context(
    store: &Store,
    remote: &dyn engine::Remote,
    name: &str,
    dir: &std::path::Path,
) -> Result<String> {
    let what = format!("--build-context {name}={}", dir.display());
    let meta = std::fs::metadata(dir).with_context(|| what.clone())?;
    if !meta.is_dir() {
        bail!("{what}: not a directory (a local named context is a directory)");
    }
    let request = engine::BuildRequest {
        context: engine::ContextSource::Dir(dir.to_path_buf()),
        dockerfile: engine::DockerfileSource::Stream(Box::new(&b"FROM scratch\nCOPY . /\n"[..])),
        options: engine::BuildOptions::default(),
        pull: false,
        exporters: Vec::new(),
        cache_imports: Vec::new(),
        cache_exports: Vec::new(),
        on_built: None,
    };
    let built = engine::build(store, request, remote, &engine::Quiet)
        .map_err(|f| anyhow::anyhow!("{what}: {}", f.error))?;
    Ok(built.image.id().to_string())
}

/// `--add-host HOST:IP` (or `HOST=IP`, docker ≥25); IPv6 addresses may be bracketed.
fn parse_add_host(v: &str) -> Result<(String, std::net::IpAddr)> {
    let (host, ip) = v
        .split_once('=')
        .or_else(|| v.split_once(':'))
        .with_context(|| {
            format!("invalid argument {v:?} for \"--add-host\" flag: expected HOST:IP")
        })?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        bail!("invalid argument {v:?} for \"--add-host\" flag: no host name");
    }
    if ip == "host-gateway" {
        bail!("--add-host {v}: host-gateway is not supported by strata yet");
    }
    let ip = ip.parse().map_err(|_| {
        anyhow::anyhow!("invalid argument {v:?} for \"--add-host\" flag: invalid IP address {ip:?}")
    })?;
    Ok((host.to_string(), ip))
}

pub fn run(store: &Store, a: BuildArgs) -> Result<ExitCode> {
    if a.check {
        return super::check::check_and_print(
            Some(store),
            &a.dockerfile,
            &a.context,
            a.practices,
            super::check::Format::Text,
        );
    }
    target_platforms(&a.platform)?;
    for (flag, v) in [("--provenance", &a.provenance), ("--sbom", &a.sbom)] {
        match v.as_deref() {
            None | Some("false" | "0") => {}
            Some(v) => eprintln!(
                "warning: {flag}={v}: strata does not produce attestations yet; the image has none"
            ),
        }
    }
    let output = parse_output(a.output.as_deref())?;
    let to_stdout = output.to_stdout();
    check_destinations(&output, &a)?;
    let mut tags = Vec::new();
    for t in &a.tags {
        tags.push(Reference::parse(t).map_err(anyhow::Error::msg)?);
    }
    // `_secrets` keeps the environment secrets' files until the build is over.
    let (mut options, _secrets) = options(&a)?;
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
    options.tags = tags.clone();
    options.allow_network_host = allow_network_host(&a.allow)?;
    let (cache_imports, cache_exports, inline_cache) = cache_specs(&a)?;
    options.inline_cache = inline_cache;
    let report = |store: &Writer<'_>, r: &engine::BuildResult| -> Result<(), RemoteError> {
        let report = super::size::build_report(store, r, a.report_format == "json")
            .map_err(|e| RemoteError(format!("{e:#}")))?;
        // stdout carries the streamed output, if any: the report goes to stderr then.
        if to_stdout {
            eprint!("{report}");
        } else {
            print!("{report}");
        }
        Ok(())
    };
    let remote = RegistryRemote(a.registry.options());
    directory_contexts(store, &remote, &a, &mut options)?;
    let (context, dockerfile, lint) = sources(&a)?;
    if let Some(code) = lint.as_ref().and_then(|l| lint_gate(store, &a, l)) {
        return Ok(code);
    }
    if exec::userns::active() && exec::userns::mapped_ids().0 <= 1 {
        let steps = lint
            .as_ref()
            .map(|l| single_id_steps(&l.text))
            .unwrap_or_default();
        if !steps.is_empty() {
            eprintln!(
                "warning: rootless with a single id, these steps need other users' ids and \
                 will fail:\n{}",
                steps.join("\n")
            );
        }
    }
    let request = engine::BuildRequest {
        context,
        dockerfile,
        options,
        pull: a.pull,
        exporters: exporters(output, push),
        cache_imports,
        cache_exports,
        on_built: if a.report { Some(&report) } else { None },
    };
    let started = std::time::Instant::now();
    let tty = match a.progress {
        ProgressMode::Tty => true,
        ProgressMode::Auto => std::io::IsTerminal::is_terminal(&std::io::stderr()),
        _ => false,
    };
    let quiet = a.quiet || a.progress == ProgressMode::Quiet;
    let tty_view = (tty && !quiet && a.progress != ProgressMode::Rawjson)
        .then(|| crate::progress::Tty::new(a.explain_cache));
    let progress: Box<dyn engine::Progress + '_> = if quiet {
        Box::new(engine::Quiet)
    } else if a.progress == ProgressMode::Rawjson {
        Box::new(crate::progress::RawJson::new(Box::new(std::io::stderr())))
    } else if let Some(t) = &tty_view {
        Box::new(t)
    } else {
        Box::new(crate::progress::plain_stderr())
    };
    let built = engine::build(store, request, &remote, progress.as_ref());
    if let Some(t) = &tty_view {
        let export = match &built {
            Ok(r) => {
                let mut lines = vec![" => exporting to image".to_string()];
                lines.extend(export_lines(r).into_iter().map(|l| format!(" => => {l}")));
                lines.extend(tags.iter().map(|t| format!(" => => naming to {t}")));
                lines
            }
            Err(_) => Vec::new(),
        };
        t.finish(&export, built.is_ok());
    }
    match built {
        Ok(r) => {
            let code = if tty_view.is_some() {
                done_tty(&a, &r, &tags)?
            } else {
                done(&a, &r, &tags, to_stdout, started)?
            };
            print_build_warnings(store, &a, lint.as_ref());
            Ok(code)
        }
        // As buildx: the failed step's box (progress), the warnings, then the error with
        // its source frame.
        Err(f) => failed(f, a.dockerfile.file.is_some(), &|| {
            print_build_warnings(store, &a, lint.as_ref())
        }),
    }
}

/// What the build's checks read: the Dockerfile's text and its ignore file.
struct LintSource {
    text: String,
    dockerignore: Option<String>,
}

/// The request's context and Dockerfile, and what the checks read when it can be read
/// without taking it from the engine: a Dockerfile file is read here, and a Dockerfile on
/// stdin (`-f -`, or a lone Dockerfile as the context `-`) is read here and handed on; a
/// tar context on stdin is not looked into (no checks then).
fn sources(
    a: &BuildArgs,
) -> Result<(
    engine::ContextSource,
    engine::DockerfileSource,
    Option<LintSource>,
)> {
    use std::io::Read;
    let stdin_text = |bytes: &[u8]| {
        std::str::from_utf8(bytes).ok().map(|t| LintSource {
            text: t.to_string(),
            dockerignore: None,
        })
    };
    if a.context.as_os_str() == "-" {
        let mut head = Vec::new();
        std::io::stdin()
            .take(512)
            .read_to_end(&mut head)
            .context("reading the context from stdin")?;
        let dockerfile = match &a.dockerfile.file {
            None => engine::DockerfileSource::Default,
            Some(f) if f.as_os_str() == "-" => {
                engine::DockerfileSource::Stream(Box::new(std::io::stdin()))
            }
            Some(f) => engine::DockerfileSource::Path(f.clone()),
        };
        if layer::is_tar_header(&head) {
            let stream = std::io::Cursor::new(head).chain(std::io::stdin());
            return Ok((
                engine::ContextSource::Stream(Box::new(stream)),
                dockerfile,
                None,
            ));
        }
        std::io::stdin()
            .read_to_end(&mut head)
            .context("reading the context from stdin")?;
        let lint = stdin_text(&head);
        let stream = std::io::Cursor::new(head);
        return Ok((
            engine::ContextSource::Stream(Box::new(stream)),
            dockerfile,
            lint,
        ));
    }
    let context = engine::ContextSource::Dir(a.context.clone());
    let ignore = |path: &std::path::Path| {
        super::check::read_dockerignore(&a.context, path)
            .ok()
            .flatten()
    };
    Ok(match &a.dockerfile.file {
        Some(f) if f.as_os_str() == "-" => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading Dockerfile from stdin")?;
            let lint = stdin_text(&bytes).map(|l| LintSource {
                dockerignore: ignore(f),
                ..l
            });
            let stream = std::io::Cursor::new(bytes);
            (
                context,
                engine::DockerfileSource::Stream(Box::new(stream)),
                lint,
            )
        }
        file => {
            let path = super::dockerfile_path(file.as_deref(), &a.context);
            let lint = std::fs::read(&path)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .map(|text| LintSource {
                    text,
                    dockerignore: ignore(&path),
                });
            let dockerfile = match file {
                None => engine::DockerfileSource::Default,
                Some(f) => engine::DockerfileSource::Path(f.clone()),
            };
            (context, dockerfile, lint)
        }
    })
}

/// Rootless with a single id (no subordinate ids): the instructions that need other ids —
/// `COPY`/`ADD --chown` to someone else, `USER` someone else, a RUN that chowns or adds a
/// user — as `  Dockerfile:LINE: TEXT` lines.
fn single_id_steps(text: &str) -> Vec<String> {
    let Ok(df) = dockerfile::parse(text) else {
        return Vec::new();
    };
    let root = |s: &str| matches!(s, "" | "0" | "root");
    let other = |spec: &str| !spec.split(':').all(root);
    df.nodes
        .iter()
        .filter(|n| match n.keyword.as_str() {
            "copy" | "add" => n
                .flags
                .iter()
                .any(|f| f.strip_prefix("--chown=").is_some_and(other)),
            "user" => n.args.first().is_some_and(|u| other(u)),
            "run" => [
                "chown ", "chgrp ", "useradd", "adduser", "groupadd", "addgroup",
            ]
            .iter()
            .any(|w| n.rest.contains(w)),
            _ => false,
        })
        .map(|n| {
            let text: String = n.original.trim().chars().take(100).collect();
            format!("  Dockerfile:{}: {}", n.span.start, escape::message(&text))
        })
        .collect()
}

/// BuildKit's checks in build mode (only the stages the build dispatches), base images from
/// the store.
fn lint_report(store: &Store, a: &BuildArgs, l: &LintSource) -> check::Report {
    let build_args = a.dockerfile.plan_options().build_args;
    check::check(&check::Input {
        dockerfile: &l.text,
        dockerignore: l.dockerignore.as_deref(),
        build_args: &build_args,
        images: &super::check::StoreImages(store),
        target: a.dockerfile.target.as_deref(),
        mode: check::Mode::Build,
        ..Default::default()
    })
}

/// `error=true` in the check directive (or `BUILDKIT_DOCKERFILE_CHECK`): a build whose
/// checks fire fails before it runs anything, with BuildKit's `lint violation found for
/// rules: ...`. As BuildKit decides with the base images' configs, base images the store does
/// not have yet are pulled first (the build would pull them anyway); if a pull fails, the
/// build goes on and reports that failure, as BuildKit's metadata resolution would.
fn lint_gate(store: &Store, a: &BuildArgs, l: &LintSource) -> Option<ExitCode> {
    let mut report = lint_report(store, a, l);
    if report.lint_error && !report.unresolved_images.is_empty() {
        if !pull_bases(store, a, &report.unresolved_images) {
            return None;
        }
        report = lint_report(store, a, l);
    }
    let e = report.error.as_deref().filter(|_| report.lint_error)?;
    if !a.quiet {
        let color = std::io::stderr().is_terminal();
        eprint!("{}", super::check::render_build_warnings(&report, color));
    }
    super::check::unresolved_notice(&report);
    eprintln!("error: failed to solve: {}", escape::message(e));
    Some(ExitCode::FAILURE)
}

/// Pull base images into the store for the checks; false when one cannot be pulled.
fn pull_bases(store: &Store, a: &BuildArgs, images: &[String]) -> bool {
    let Ok(writer) = store.lock_shared() else {
        return false;
    };
    let remote = RegistryRemote(a.registry.options());
    let platform = target_platforms(&a.platform)
        .ok()
        .and_then(|p| p.into_iter().next())
        .unwrap_or_default();
    images.iter().all(|r| {
        Reference::parse(r).is_ok_and(|reference| {
            engine::Remote::pull(&remote, &writer, &reference, &platform).is_ok()
        })
    })
}

/// After the build, as buildx: the checks' warnings, counted, on stderr (not with `-q`).
fn print_build_warnings(store: &Store, a: &BuildArgs, lint: Option<&LintSource>) {
    let Some(l) = lint.filter(|_| !a.quiet) else {
        return;
    };
    let report = lint_report(store, a, l);
    let color = std::io::stderr().is_terminal();
    eprint!("{}", super::check::render_build_warnings(&report, color));
}

/// A built image: the `--iidfile`, then the ID (`-q`) or docker's closing lines.
fn done(
    a: &BuildArgs,
    r: &engine::BuildResult,
    tags: &[Reference],
    to_stdout: bool,
    started: std::time::Instant,
) -> Result<ExitCode> {
    let id = result_id(r);
    result_files(a, r, tags)?;
    // Nothing but the progress stream: no closing text lines (they would break a JSON
    // reader of rawjson).
    if matches!(a.progress, ProgressMode::Quiet | ProgressMode::Rawjson) && !a.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    if a.quiet {
        // As docker's CLI: with the output on stdout, -q prints no image ID there.
        if !to_stdout {
            println!("{id}");
        }
    } else {
        let mut e = std::io::stderr().lock();
        let _ = writeln!(e);
        for l in export_lines(r) {
            let _ = writeln!(e, "#0 {l} done");
        }
        for t in tags {
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

/// What a build made: the image id, or with several platforms the image index's digest
/// (what buildx writes to `--iidfile` for a multi-platform build).
fn result_id(r: &engine::BuildResult) -> String {
    match &r.index {
        Some(ix) => ix.digest.to_string(),
        None => r.image.id().to_string(),
    }
}

/// The export lines: `writing image ID`, or buildx's manifest and manifest-list lines.
fn export_lines(r: &engine::BuildResult) -> Vec<String> {
    match &r.index {
        None => vec![format!("writing image {}", r.image.id())],
        Some(ix) => r
            .platforms
            .iter()
            .map(|(p, pr)| format!("exporting manifest {} ({p})", pr.image.manifest_digest))
            .chain([format!("exporting manifest list {}", ix.digest)])
            .collect(),
    }
}

/// The files a build writes about its result: `--iidfile` and `--metadata-file`.
fn result_files(a: &BuildArgs, r: &engine::BuildResult, tags: &[Reference]) -> Result<()> {
    if let Some(f) = &a.iidfile {
        let id = result_id(r);
        crate::outpath::write(f, |w| Ok(w.write_all(id.as_bytes())?))
            .with_context(|| format!("write {}", f.display()))?;
    }
    if let Some(f) = &a.metadata_file {
        let meta = metadata(r, tags);
        crate::outpath::write(f, |w| Ok(serde_json::to_writer_pretty(w, &meta)?))
            .with_context(|| format!("write {}", f.display()))?;
    }
    Ok(())
}

/// A built image under the tty view (which showed the export): the `--iidfile` and
/// `--metadata-file`, then the steps' counts.
fn done_tty(a: &BuildArgs, r: &engine::BuildResult, tags: &[Reference]) -> Result<ExitCode> {
    result_files(a, r, tags)?;
    eprintln!(
        "{} RUN executed, {} steps cached",
        r.runs_executed, r.cached
    );
    Ok(ExitCode::SUCCESS)
}

/// `--platform P[,P...]`: the target platforms, each once, in the order given (docker's
/// spellings: `linux/x86_64` is `linux/amd64`, a bare architecture means Linux).
pub(crate) fn target_platforms(list: &[String]) -> Result<Vec<registry::Platform>> {
    let mut out: Vec<registry::Platform> = Vec::new();
    for p in list.iter().filter(|p| !p.trim().is_empty()) {
        let parsed =
            registry::Platform::parse(p).map_err(|e| anyhow::anyhow!("--platform {p}: {e}"))?;
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    Ok(out)
}

/// buildx's `--metadata-file` keys for an image build.
fn metadata(r: &engine::BuildResult, tags: &[Reference]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert(
        "containerimage.config.digest".into(),
        r.image.id().to_string().into(),
    );
    // The registry's manifest after --push; else the store's own manifest.
    match &r.pushed_digest {
        Some(d) => {
            m.insert("containerimage.digest".into(), d.clone().into());
        }
        None => {
            // Several platforms: the index, as buildx writes it.
            let (media, digest, size) = match &r.index {
                Some(ix) => (
                    "application/vnd.oci.image.index.v1+json",
                    ix.digest.to_string(),
                    ix.bytes.len(),
                ),
                None => (
                    "application/vnd.oci.image.manifest.v1+json",
                    r.image.manifest_digest.to_string(),
                    r.image.manifest_bytes.len(),
                ),
            };
            m.insert("containerimage.digest".into(), digest.clone().into());
            m.insert(
                "containerimage.descriptor".into(),
                serde_json::json!({"mediaType": media, "digest": digest, "size": size}),
            );
        }
    }
    if r.index.is_some() {
        // buildx names no single config for an index.
        m.remove("containerimage.config.digest");
    }
    if !tags.is_empty() {
        let names: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        m.insert("image.name".into(), names.join(",").into());
    }
    serde_json::Value::Object(m)
}

/// Refuse a terminal for a streamed output, and a symlinked output directory; remove a stale
/// `--iidfile` (as docker: no stale image ID survives a failed build).
fn check_destinations(output: &Output, a: &BuildArgs) -> Result<()> {
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
    if let Output::Local(dir) = output {
        crate::outpath::check_dir(dir, "--output dest=")?;
    }
    if let Some(f) = &a.iidfile {
        crate::outpath::remove_stale(f)?;
    }
    Ok(())
}

/// The build's options from the flags (tags and entitlements are filled in by the caller).
fn options(a: &BuildArgs) -> Result<(engine::BuildOptions, Option<tempfile::TempDir>)> {
    let mut secrets = Vec::new();
    let mut from_env = Vec::new();
    for s in &a.secret {
        match parse_secret(s)? {
            Ok(file) => secrets.push(file),
            Err(env) => from_env.push(env),
        }
    }
    let (env_files, guard) = env_secret_files(from_env)?;
    secrets.extend(env_files);
    let platforms = target_platforms(&a.platform)?;
    let run_extras = engine::RunExtras {
        extra_hosts: a
            .add_host
            .iter()
            .map(|h| parse_add_host(h))
            .collect::<Result<_>>()?,
        shm_size: match &a.shm_size {
            Some(v) => {
                Some(super::parse_size(v).with_context(|| format!("invalid --shm-size {v:?}"))?)
            }
            None => None,
        },
        ulimits: a
            .ulimit
            .iter()
            .map(|u| exec::Rlimit::parse(u).map_err(anyhow::Error::msg))
            .collect::<Result<_>>()?,
        bind_proc: match a.isolation.as_deref() {
            None | Some("" | "default" | "process") => false,
            Some("chroot") => true,
            Some(other) => anyhow::bail!(
                "invalid --isolation {other:?}: strata isolates RUN as `default` (its own pid \
                 namespace and /proc) or `chroot` (the caller's /proc)"
            ),
        },
    };
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
    let mut plan = a.dockerfile.plan_options();
    for c in &a.build_context {
        // Directories become images once the store is at hand (`run`).
        if let (name, NamedContext::Image(r)) = parse_build_context(c)? {
            plan.named_contexts.push((name, r));
        }
    }
    let options = engine::BuildOptions {
        plan,
        no_cache: a.no_cache,
        no_cache_filter: a.no_cache_filter.clone(),
        network: a.network.clone(),
        labels: a.label.clone(),
        secrets,
        ssh,
        run_extras,
        platforms,
        ..engine::BuildOptions::default()
    };
    Ok((options, guard))
}

/// `--allow`: whether `network.host` is granted.
fn allow_network_host(allow: &[String]) -> Result<bool> {
    let mut granted = false;
    for e in allow.iter().flat_map(|v| v.split(',')) {
        match e.trim() {
            engine::entitlements::NETWORK_HOST => granted = true,
            "security.insecure" => bail!("--allow: entitlement security.insecure is not supported"),
            other => bail!("--allow: unknown entitlement {other:?} (supported: network.host)"),
        }
    }
    Ok(granted)
}

/// `--cache-from` and `--cache-to`, parsed (a local export directory must not be a link).
/// `--cache-from` and `--cache-to`: the imports, the exports, and whether the image carries
/// its cache inline (`--cache-to type=inline`).
type CacheSpecs = (Vec<engine::CacheImport>, Vec<engine::CacheExport>, bool);

fn cache_specs(a: &BuildArgs) -> Result<CacheSpecs> {
    let mut imports = Vec::new();
    for v in &a.cache_from {
        imports.push(match parse_cache_spec(v, false)?.0 {
            CacheSpec::Local(d) => engine::CacheImport::Local(d),
            CacheSpec::Registry(r) => engine::CacheImport::Registry(r),
            CacheSpec::Inline => unreachable!("refused by parse_cache_spec"),
        });
    }
    let mut exports = Vec::new();
    let mut inline = false;
    for v in &a.cache_to {
        let (spec, max) = parse_cache_spec(v, true)?;
        let to = match spec {
            CacheSpec::Local(dir) => {
                crate::outpath::check_dir(&dir, "--cache-to dest=")?;
                engine::CacheImport::Local(dir)
            }
            CacheSpec::Registry(r) => engine::CacheImport::Registry(r),
            CacheSpec::Inline => {
                inline = true;
                continue;
            }
        };
        exports.push(engine::CacheExport { to, max });
    }
    Ok((imports, exports, inline))
}

/// The engine's exporters for `--output` (and `--push`).
fn exporters(output: Output, push: bool) -> Vec<engine::Exporter> {
    let mut out = Vec::new();
    match output {
        Output::Image | Output::Registry(_) => {}
        Output::Archive(format, sink) => {
            out.push(engine::Exporter::Archive(format, Box::new(sink)))
        }
        Output::Local(dir) => out.push(engine::Exporter::Local(dir)),
        Output::Tar(sink) => out.push(engine::Exporter::Tar(Box::new(sink))),
    }
    if push {
        out.push(engine::Exporter::Push);
    }
    out
}

/// A failed build as docker prints it: a Dockerfile error located; a failed step with the
/// tail of its output, BuildKit's source frame of its lines (`Dockerfile:LINE` and the
/// lines around, its own marked `>>>`) and the error; anything else as an error.
/// `named`: the Dockerfile was given with `-f` (the frame names it as given, else
/// `Dockerfile`, as `strata check` does).
fn failed(f: engine::Failure, named: bool, warnings: &dyn Fn()) -> Result<ExitCode> {
    match *f.error {
        engine::BuildError::Dockerfile(d) => {
            warnings();
            eprint!("{}", d.render(&f.dockerfile));
            Ok(ExitCode::FAILURE)
        }
        engine::BuildError::Step {
            ref step,
            ref lines,
            ref error,
        } => {
            let mut e = std::io::stderr().lock();
            let _ = writeln!(e, "------\n > {step}:");
            for l in f.error.tail() {
                let _ = writeln!(e, "{l}");
            }
            let _ = writeln!(e, "------");
            drop(e);
            warnings();
            let mut e = std::io::stderr().lock();
            let name = if named {
                f.dockerfile.as_str()
            } else {
                "Dockerfile"
            };
            let text: Vec<&str> = f.text.split('\n').collect();
            let frame = super::check::frame(&text, *lines.start(), *lines.end(), name);
            let _ = write!(e, "{frame}");
            let _ = writeln!(e, "error: failed to solve: {step}: {error}");
            Ok(ExitCode::FAILURE)
        }
        engine::BuildError::Request(m) => {
            warnings();
            Err(anyhow::Error::msg(m))
        }
        other => {
            warnings();
            Err(anyhow::Error::new(other).context("failed to solve"))
        }
    }
}

/// The engine's registry side: pulls, pushes and registry caches through `registry`.
struct RegistryRemote(registry::Options);

impl engine::Remote for RegistryRemote {
    fn pull(
        &self,
        store: &Writer<'_>,
        reference: &Reference,
        platform: &registry::Platform,
    ) -> Result<String, RemoteError> {
        let progress = |_: &str, _: &str| {};
        let mut opts = self.0.clone();
        opts.platform = platform.clone();
        registry::pull(store, reference, &opts, &progress)
            .map(|p| p.digest.to_string())
            .map_err(|e| RemoteError(e.to_string()))
    }

    fn push(&self, store: &Store, reference: &Reference) -> Result<(String, u64), RemoteError> {
        let quiet = |_: &str, _: &str| {};
        registry::push(store, reference, &self.0, &quiet)
            .map(|p| (p.digest.to_string(), p.size))
            .map_err(|e| RemoteError(format!("{:#}", anyhow::Error::from(e))))
    }

    fn cache_source(
        &self,
        r: &str,
    ) -> Result<Option<(Box<dyn engine::cache::BlobSource>, Vec<u8>)>, RemoteError> {
        let open = || -> Result<_> {
            let reference =
                store::Reference::parse(r).map_err(|e| anyhow::anyhow!("--cache-from {r}: {e}"))?;
            let repo = registry::Repo::connect(&reference, &self.0, false)
                .with_context(|| format!("--cache-from {r}"))?;
            let manifest = repo
                .manifest()
                .with_context(|| format!("--cache-from {r}"))?;
            Ok(manifest.map(|m| {
                (
                    Box::new(RegistryCache { repo, store: None })
                        as Box<dyn engine::cache::BlobSource>,
                    m,
                )
            }))
        };
        open().map_err(|e| RemoteError(format!("{e:#}")))
    }

    fn cache_sink<'s>(
        &'s self,
        store: &'s Writer<'s>,
        name: &str,
    ) -> Result<Box<dyn engine::cache::BlobSink + 's>, RemoteError> {
        let connect = || -> Result<_> {
            let reference = store::Reference::parse(name)
                .map_err(|e| anyhow::anyhow!("--cache-to {name}: {e}"))?;
            registry::Repo::connect(&reference, &self.0, true)
                .with_context(|| format!("--cache-to {name}"))
        };
        let repo = connect().map_err(|e| RemoteError(format!("{e:#}")))?;
        Ok(Box::new(RegistryCache {
            repo,
            store: Some(&**store),
        }))
    }
}

/// A build cache in a registry repository: the cache manifest under the reference's tag,
/// its blobs in the repository.
struct RegistryCache<'s> {
    repo: registry::Repo,
    /// Set for exports: blobs are uploaded from the store.
    store: Option<&'s store::Store>,
}

impl engine::cache::BlobSource for RegistryCache<'static> {
    fn describe(&self) -> String {
        self.repo.describe()
    }
    fn open(
        &self,
        digest: &store::Digest,
    ) -> Result<Box<dyn std::io::Read + Send + '_>, RemoteError> {
        self.repo
            .open_blob(digest)
            .map_err(|e| RemoteError(e.to_string()))
    }
}

impl engine::cache::BlobSink for RegistryCache<'_> {
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
    ) -> Result<(), RemoteError> {
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
            .map_err(|e| RemoteError(e.to_string()))
    }
    fn put_manifest(&self, media_type: &str, bytes: &[u8]) -> Result<(), RemoteError> {
        self.repo
            .put_manifest(media_type, bytes, &|_, _| {})
            .map(|_| ())
            .map_err(|e| RemoteError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_specs_parse_as_buildx_does() {
        let p = |s: &str, export: bool| parse_cache_spec(s, export).map_err(|e| e.to_string());
        assert_eq!(p("type=inline", true).unwrap(), (CacheSpec::Inline, false));
        assert!(p("type=inline", false)
            .unwrap_err()
            .contains("give --cache-from IMAGE"));
        assert_eq!(
            p("reg.example/app:cache", false).unwrap(),
            (CacheSpec::Registry("reg.example/app:cache".into()), false)
        );
        assert_eq!(
            p("type=registry,ref=r/a,mode=max", true).unwrap(),
            (CacheSpec::Registry("r/a".into()), true)
        );
        assert!(p("type=gha", true)
            .unwrap_err()
            .contains("use local, registry or inline"));
    }

    #[test]
    fn build_contexts_parse_as_buildx_does() {
        let p = |s: &str| parse_build_context(s).map_err(|e| e.to_string());
        assert_eq!(
            p("base=docker-image://alpine:3").unwrap(),
            (
                "base".into(),
                NamedContext::Image("docker.io/library/alpine:3".into())
            )
        );
        assert_eq!(
            p("src=../lib").unwrap(),
            ("src".into(), NamedContext::Dir(PathBuf::from("../lib")))
        );
        assert!(p("x=").unwrap_err().contains("expected NAME=DIR"));
        assert!(p("x=oci-layout://d")
            .unwrap_err()
            .contains("not supported yet"));
    }

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

    #[test]
    fn flags_defined_once() {
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            b: BuildArgs,
        }
        let t = <T as clap::Parser>::try_parse_from([
            "t",
            "--label",
            "a=b=c",
            "--label",
            "bare",
            "--insecure-registry",
            "h:5000",
            "--build-arg",
            "K=V",
            "ctx",
        ])
        .unwrap();
        assert_eq!(
            t.b.label,
            [("a".into(), "b=c".into()), ("bare".into(), String::new())]
        );
        assert!(t
            .b
            .registry
            .options()
            .insecure
            .contains(&"h:5000".to_string()));
        assert_eq!(
            t.b.dockerfile.plan_options().build_args,
            [("K".into(), "V".into())]
        );
    }
}
