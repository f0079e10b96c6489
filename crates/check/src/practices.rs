//! strata's own rules: the tutorials' best practices, in a namespace of their own
//! (`strata/<Name>`), each documented in `docs/rules/<name>.md`. They never join BuildKit's
//! warnings: they are asked for with [`crate::Input::practices`], come back in
//! [`crate::Report::practices`] and do not count for `error=true`. The `# check=skip=`
//! directive, `BUILDKIT_DOCKERFILE_CHECK` and per-instruction `# check=skip=` comments skip
//! them by their full name (`skip=strata/RootUser`), which BuildKit itself ignores.
//!
//! None of them needs image metadata except where said: the base image's user is read from
//! the provider when it knows the image.

use dockerfile::Node;

use crate::rules::Rule;
use crate::{span, BaseImages, Config, Lint};

macro_rules! rules {
    ($($id:ident = $name:literal, $desc:literal, $page:literal;)*) => {
        $(pub const $id: Rule = Rule { name: $name, description: $desc, url_path: $page, experimental: false };)*
        /// Every rule of strata's own.
        pub const ALL: &[Rule] = &[$($id),*];
    };
}

rules! {
    STAGE_INDEX_REFERENCE = "strata/StageIndexReference",
        "Stages should be referred to by name, not by index",
        "docs/rules/stage-index-reference.md";
    UNPINNED_BASE_IMAGE = "strata/UnpinnedBaseImage",
        "Base images should be pinned to a version tag, or better a digest",
        "docs/rules/unpinned-base-image.md";
    DEPENDENCIES_AFTER_SOURCES = "strata/DependenciesAfterSources",
        "Copy the dependency manifests and install the dependencies before copying the sources",
        "docs/rules/dependencies-after-sources.md";
    ROOT_USER = "strata/RootUser",
        "The final stage should not run as root",
        "docs/rules/root-user.md";
    DEV_DEPENDENCIES = "strata/DevDependencies",
        "Development dependencies should stay out of the final stage",
        "docs/rules/dev-dependencies.md";
    ADD_WITHOUT_CHECKSUM = "strata/AddWithoutChecksum",
        "ADD of a remote file should verify it with --checksum",
        "docs/rules/add-without-checksum.md";
    NO_DOCKERIGNORE = "strata/NoDockerignore",
        "A context with .git, node_modules or similar should have a .dockerignore",
        "docs/rules/no-dockerignore.md";
    TOOLCHAIN_FINAL_STAGE = "strata/ToolchainFinalStage",
        "The final stage should not be based on a full toolchain image",
        "docs/rules/toolchain-final-stage.md";
}

/// The rule called `name`, if strata has one.
pub fn by_name(name: &str) -> Option<&'static Rule> {
    ALL.iter().find(|r| r.name == name)
}

/// What the practices see of a stage.
pub(crate) struct StageView<'a> {
    pub from: &'a Node,
    /// The base as resolved: an image reference (after ARG expansion), `scratch`, or the
    /// name of an earlier stage when `parent` is set.
    pub base: &'a str,
    pub parent: Option<usize>,
    pub commands: &'a [&'a Node],
}

pub(crate) fn run(
    stages: &[StageView],
    target: usize,
    cfg: &Config,
    images: &dyn BaseImages,
    lint: &mut Lint,
) {
    for (i, st) in stages.iter().enumerate() {
        let fcfg = cfg.with_comments(&st.from.comments);
        if st.parent.is_none() {
            unpinned(st, &fcfg, lint);
        }
        dependencies_after_sources(st, cfg, lint);
        for n in st.commands {
            let ncfg = cfg.with_comments(&n.comments);
            stage_index(n, stages.len(), &ncfg, lint);
            add_checksum(n, &ncfg, lint);
        }
        if i == target {
            root_user(stages, i, cfg, images, lint);
            dev_dependencies(st, cfg, lint);
            toolchain(stages, i, &fcfg, images, lint);
        }
    }
}

fn flag<'n>(n: &'n Node, name: &str) -> Option<&'n str> {
    n.flags.iter().rev().find_map(|f| f.strip_prefix(name))
}

/// `COPY --from=0`, `RUN --mount=...,from=1`.
fn stage_index(n: &Node, count: usize, cfg: &Config, lint: &mut Lint) {
    let mut refs: Vec<String> = Vec::new();
    match n.keyword.as_str() {
        "copy" => refs.extend(flag(n, "--from=").map(str::to_string)),
        "run" => {
            for spec in n.flags.iter().filter_map(|f| f.strip_prefix("--mount=")) {
                refs.extend(
                    crate::csv_fields(spec)
                        .into_iter()
                        .filter_map(|f| f.strip_prefix("from=").map(str::to_string)),
                );
            }
        }
        _ => {}
    }
    for r in refs {
        if r.parse::<usize>().is_ok_and(|i| i < count) {
            lint.run(
                cfg,
                &STAGE_INDEX_REFERENCE,
                span(n),
                format!("Stage {r} is referred to by its index: name it (FROM ... AS <name>) and use the name"),
            );
        }
    }
}

/// A base image with no tag or `latest`, and no digest.
fn unpinned(st: &StageView, cfg: &Config, lint: &mut Lint) {
    let r = st.base;
    if r == "scratch" || r.contains('@') {
        return;
    }
    let last = r.rsplit('/').next().unwrap_or(r);
    let tag = last.split_once(':').map(|(_, t)| t);
    let why = match tag {
        None => "has no tag (it means latest)",
        Some("latest") => "is tagged latest",
        Some(_) => return,
    };
    lint.run(
        cfg,
        &UNPINNED_BASE_IMAGE,
        span(st.from),
        format!(
            "Base image {r} {why}: pin a version tag, or better a digest (image:tag@sha256:...)"
        ),
    );
}

/// A dependency install command in a RUN, and the manifests it reads.
fn install_step(cmd: &str) -> Option<(&'static str, &'static str)> {
    let words: Vec<&str> = cmd
        .split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')'))
        .filter(|w| !w.is_empty())
        .collect();
    let has = |a: &str, b: &[&str]| words.windows(2).any(|w| w[0] == a && b.contains(&w[1]));
    const TABLE: &[(&str, &[&str], &str, &str)] = &[
        (
            "npm",
            &["ci", "install", "i"],
            "npm install",
            "package.json, package-lock.json",
        ),
        (
            "yarn",
            &["install"],
            "yarn install",
            "package.json, yarn.lock",
        ),
        (
            "pnpm",
            &["install", "i"],
            "pnpm install",
            "package.json, pnpm-lock.yaml",
        ),
        (
            "poetry",
            &["install"],
            "poetry install",
            "pyproject.toml, poetry.lock",
        ),
        ("go", &["mod"], "go mod download", "go.mod, go.sum"),
        ("cargo", &["fetch"], "cargo fetch", "Cargo.toml, Cargo.lock"),
        (
            "bundle",
            &["install"],
            "bundle install",
            "Gemfile, Gemfile.lock",
        ),
        (
            "composer",
            &["install"],
            "composer install",
            "composer.json, composer.lock",
        ),
    ];
    for (tool, subs, what, manifests) in TABLE {
        if has(tool, subs) {
            if *tool == "go" && !words.contains(&"download") {
                continue;
            }
            return Some((what, manifests));
        }
    }
    if words.contains(&"dependency:go-offline") && words.contains(&"mvn") {
        return Some(("mvn dependency:go-offline", "pom.xml"));
    }
    if words.iter().any(|w| w.starts_with("pip")) && words.contains(&"install") {
        let r = words
            .iter()
            .any(|w| *w == "-r" || w.starts_with("--requirement"));
        if r {
            return Some(("pip install -r", "the requirements file"));
        }
    }
    None
}

/// The whole context copied (`COPY . .`) before a dependency install of the same stage.
fn dependencies_after_sources(st: &StageView, cfg: &Config, lint: &mut Lint) {
    let mut whole: Option<&Node> = None;
    for n in st.commands {
        match n.keyword.as_str() {
            "copy" | "add" if flag(n, "--from=").is_none() => {
                let sources = n.args.split_last().map(|(_, s)| s).unwrap_or(&[]);
                let all = sources
                    .iter()
                    .any(|s| matches!(s.as_str(), "." | "./" | "*" | "./*" | "/" | "./."));
                if all && whole.is_none() {
                    whole = Some(n);
                }
            }
            "run" => {
                let (Some(copy), Some((what, manifests))) = (whole, install_step(&n.rest)) else {
                    continue;
                };
                lint.run(
                    &cfg.with_comments(&copy.comments),
                    &DEPENDENCIES_AFTER_SOURCES,
                    span(copy),
                    format!(
                        "The whole context is copied before {what} (line {}): copy {manifests} first and install, then the sources, so that a source change keeps the install cached",
                        n.span.start
                    ),
                );
                return;
            }
            _ => {}
        }
    }
}

fn is_root(user: &str) -> bool {
    let u = user.split(':').next().unwrap_or("").trim();
    u.is_empty() || u == "root" || u == "0"
}

/// The final stage's user: its last USER, else its base stage's, else the base image's.
fn root_user(
    stages: &[StageView],
    target: usize,
    cfg: &Config,
    images: &dyn BaseImages,
    lint: &mut Lint,
) {
    let mut i = target;
    loop {
        let st = &stages[i];
        if let Some(n) = st.commands.iter().rev().find(|n| n.keyword == "user") {
            let user = n.args.first().map_or("", String::as_str);
            if is_root(user) {
                lint.run(
                    &cfg.with_comments(&n.comments),
                    &ROOT_USER,
                    span(n),
                    format!("The final stage runs as {user}: add a user and switch to it (USER app, or USER 65534:65534)"),
                );
            }
            return;
        }
        match st.parent {
            Some(p) => i = p,
            None => break,
        }
    }
    let base = stages[i].base;
    let user = if base == "scratch" {
        String::new()
    } else {
        match images.image(base) {
            Some(img) => img.user,
            None => String::new(),
        }
    };
    if is_root(&user) {
        let f = stages[target].from;
        lint.run(
            &cfg.with_comments(&f.comments),
            &ROOT_USER,
            span(f),
            "The final stage has no USER and runs as root: add a user and switch to it (USER app, or USER 65534:65534)".to_string(),
        );
    }
}

/// Development dependencies installed in the final stage.
fn dev_dependencies(st: &StageView, cfg: &Config, lint: &mut Lint) {
    let mut production_env = false;
    for n in st.commands {
        if n.keyword == "env" {
            for t in n.args.chunks(3) {
                if t[0] == "NODE_ENV" {
                    production_env = t.get(1).is_some_and(|v| v == "production");
                }
            }
        }
        if n.keyword != "run" {
            continue;
        }
        let cmd = n.rest.as_str();
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let after = |tool: &str, subs: &[&str]| {
            words
                .windows(2)
                .any(|w| w[0] == tool && subs.contains(&w[1]))
        };
        let omits = [
            "--omit=dev",
            "--production",
            "--only=prod",
            "--only=production",
            "--prod",
        ]
        .iter()
        .any(|f| cmd.contains(f));
        let what = if after("npm", &["ci", "install", "i"]) && !omits && !production_env {
            Some("npm install without --omit=dev")
        } else if after("yarn", &["install"]) && !omits && !production_env {
            Some("yarn install without --production")
        } else if after("poetry", &["install"])
            && ![
                "--without dev",
                "--only main",
                "--no-dev",
                "--only=main",
                "--without=dev",
            ]
            .iter()
            .any(|f| cmd.contains(f))
        {
            Some("poetry install without --only main")
        } else if words.iter().any(|w| w.starts_with("pip")) && words.contains(&"install") {
            words
                .iter()
                .filter(|w| w.ends_with(".txt"))
                .any(|w| {
                    let f = w.rsplit('/').next().unwrap_or(w).to_lowercase();
                    f.contains("dev") || f.contains("test")
                })
                .then_some("pip install of development requirements")
        } else {
            None
        };
        if let Some(what) = what {
            lint.run(
                &cfg.with_comments(&n.comments),
                &DEV_DEPENDENCIES,
                span(n),
                format!("The final stage installs development dependencies ({what}): install them in a build stage, and only the production ones here"),
            );
        }
    }
}

/// `ADD https://...` without `--checksum`.
fn add_checksum(n: &Node, cfg: &Config, lint: &mut Lint) {
    if n.keyword != "add" || flag(n, "--checksum=").is_some() {
        return;
    }
    let sources = n.args.split_last().map(|(_, s)| s).unwrap_or(&[]);
    for s in sources {
        if (s.starts_with("http://") || s.starts_with("https://")) && !crate::is_git(s) {
            lint.run(
                cfg,
                &ADD_WITHOUT_CHECKSUM,
                span(n),
                format!("ADD {s} is not verified: add --checksum=sha256:<digest>"),
            );
        }
    }
}

/// Image names (the repository's last part) that are full toolchains; tags that say so.
const TOOLCHAINS: &[&str] = &[
    "golang",
    "rust",
    "gcc",
    "maven",
    "gradle",
    "buildpack-deps",
    "sdk",
    "openjdk",
];

/// Bytes as docker prints image sizes (`312MB`).
fn mb(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.2}GB", bytes as f64 / 1e9)
    } else {
        format!("{:.0}MB", (bytes as f64 / 1e6).max(1.0))
    }
}

/// The final stage based (directly or through its base stages) on a toolchain image:
/// measured from the image's layers when it is at hand (what toolchains they hold and
/// their size, which a runtime base would not carry), else judged by its name.
fn toolchain(
    stages: &[StageView],
    target: usize,
    cfg: &Config,
    images: &dyn BaseImages,
    lint: &mut Lint,
) {
    let mut i = target;
    while let Some(p) = stages[i].parent {
        i = p;
    }
    let base = stages[i].base;
    if let Some(scan) = images.toolchain(base) {
        if scan.tools.is_empty() {
            return;
        }
        lint.run(
            cfg,
            &TOOLCHAIN_FINAL_STAGE,
            span(stages[target].from),
            format!(
                "The final stage is based on {base}, a full toolchain image ({}: {} of its {}, which the final image would lose): build in a stage of its own and copy the result onto a small runtime base (scratch, distroless, alpine, a -slim or -jre variant)",
                scan.tools.join(", "),
                mb(scan.tool_bytes),
                mb(scan.image_bytes)
            ),
        );
        return;
    }
    let name = base.split('@').next().unwrap_or(base);
    let last = name.rsplit('/').next().unwrap_or(name);
    let (repo, tag) = last.split_once(':').unwrap_or((last, ""));
    let jdk = tag.contains("jdk") && !tag.contains("jre");
    let full = TOOLCHAINS.contains(&repo) && !(repo == "openjdk" && tag.contains("jre"));
    if !(full || jdk) {
        return;
    }
    lint.run(
        cfg,
        &TOOLCHAIN_FINAL_STAGE,
        span(stages[target].from),
        format!("The final stage is based on {base}, a full toolchain image: build in a stage of its own and copy the result onto a small runtime base (scratch, distroless, alpine, a -slim or -jre variant)"),
    );
}

/// Entries at a context's root that rarely belong in an image: what `strata/NoDockerignore`
/// looks for.
pub const HEAVY_ENTRIES: &[&str] = &[
    ".git",
    "node_modules",
    "target",
    ".venv",
    "venv",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".tox",
    ".terraform",
    ".idea",
    ".vscode",
];

/// Bytes as docker prints sizes (decimal units, 3 significant digits).
fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{:.3}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + units[u]
    }
}

/// No `.dockerignore` while the whole context is copied and holds heavy entries.
pub(crate) fn no_dockerignore(
    stages: &[StageView],
    entries: &[(String, u64)],
    cfg: &Config,
    lint: &mut Lint,
) {
    if entries.is_empty() {
        return;
    }
    let copy = stages.iter().flat_map(|s| s.commands.iter()).find(|n| {
        matches!(n.keyword.as_str(), "copy" | "add")
            && flag(n, "--from=").is_none()
            && n.args
                .split_last()
                .map(|(_, s)| s)
                .unwrap_or(&[])
                .iter()
                .any(|s| matches!(s.as_str(), "." | "./" | "*" | "./*" | "/" | "./."))
    });
    let Some(n) = copy else {
        return;
    };
    let total: u64 = entries.iter().map(|(_, s)| s).sum();
    let list: Vec<String> = entries
        .iter()
        .map(|(name, size)| format!("{name} ({})", human(*size)))
        .collect();
    lint.run(
        &cfg.with_comments(&n.comments),
        &NO_DOCKERIGNORE,
        span(n),
        format!(
            "The context has no .dockerignore and holds {}: this copies them into the image and sends them with every build; a .dockerignore listing them saves {}",
            list.join(", "),
            human(total)
        ),
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_sizes() {
        assert_eq!(super::human(999), "999B");
        assert_eq!(super::human(12_345_678), "12.346MB");
        assert_eq!(super::human(2_000_000), "2MB");
    }
}
