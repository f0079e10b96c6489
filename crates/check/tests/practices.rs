//! strata's own rules (the tutorials' best practices): for each, a Dockerfile that fires and
//! one that does not; they stay out of BuildKit's warnings; the `check=skip` directive skips
//! them by name; the repository's examples give only the findings listed here.

use check::{check, BaseImage, BaseImages, Input, NoImages, Report};

fn run_with(df: &str, images: &dyn BaseImages) -> Report {
    check(&Input {
        dockerfile: df,
        images,
        practices: true,
        ..Default::default()
    })
}

fn own(df: &str) -> Vec<String> {
    let r = run_with(df, &NoImages);
    assert_eq!(r.error, None, "{df}");
    r.practices.iter().map(|w| w.short()).collect()
}

/// The findings of one rule.
fn fired(df: &str, rule: &str) -> Vec<String> {
    own(df)
        .into_iter()
        .filter(|s| s.starts_with(&format!("{rule}:")))
        .collect()
}

#[test]
fn stage_index_reference() {
    let r = "strata/StageIndexReference";
    assert_eq!(
        fired("FROM scratch\nCOPY a /a\nFROM scratch\nCOPY --from=0 /a /a\nUSER 1\n", r),
        ["strata/StageIndexReference: Stage 0 is referred to by its index: name it (FROM ... AS <name>) and use the name (line 4)"]
    );
    assert_eq!(
        fired(
            "FROM scratch AS build\nFROM busybox:1.36\nRUN --mount=from=0,target=/b true\n",
            r
        )
        .len(),
        1
    );
    assert!(fired("FROM scratch AS build\nFROM scratch\nCOPY --from=build /a /a\nCOPY --from=busybox:1.36 /bin/sh /sh\n", r).is_empty());
}

#[test]
fn unpinned_base_image() {
    let r = "strata/UnpinnedBaseImage";
    assert_eq!(
        fired("FROM node\nFROM busybox:latest AS b\nFROM registry:5000/x/y\n", r),
        [
            "strata/UnpinnedBaseImage: Base image node has no tag (it means latest): pin a version tag, or better a digest (image:tag@sha256:...) (line 1)",
            "strata/UnpinnedBaseImage: Base image busybox:latest is tagged latest: pin a version tag, or better a digest (image:tag@sha256:...) (line 2)",
            "strata/UnpinnedBaseImage: Base image registry:5000/x/y has no tag (it means latest): pin a version tag, or better a digest (image:tag@sha256:...) (line 3)",
        ]
    );
    // After ARG expansion; stages, scratch, tags and digests are fine.
    assert_eq!(fired("ARG V=latest\nFROM alpine:${V}\n", r).len(), 1);
    assert!(fired(
        "ARG V=3.20\nFROM alpine:${V} AS a\nFROM a\nFROM scratch\nFROM alpine@sha256:0123456789012345678901234567890123456789012345678901234567890123\n",
        r
    )
    .is_empty());
}

#[test]
fn dependencies_after_sources() {
    let r = "strata/DependenciesAfterSources";
    assert_eq!(
        fired("FROM node:20\nWORKDIR /app\nCOPY . .\nRUN npm ci\n", r),
        ["strata/DependenciesAfterSources: The whole context is copied before npm install (line 4): copy package.json, package-lock.json first and install, then the sources, so that a source change keeps the install cached (line 3)"]
    );
    for install in [
        "pip install -r requirements.txt",
        "go mod download",
        "cargo fetch",
        "yarn install --frozen-lockfile",
        "bundle install",
        "mvn -B dependency:go-offline",
    ] {
        let df = format!("FROM x:1\nCOPY ./ /src\nRUN {install}\n");
        assert_eq!(fired(&df, r).len(), 1, "{install}");
    }
    // The manifests first: fine; a COPY --from: fine; an install in another stage: fine.
    assert!(fired("FROM node:20\nCOPY package.json package-lock.json ./\nRUN npm ci\nCOPY . .\nRUN npm run build\n", r).is_empty());
    assert!(fired("FROM node:20 AS a\nCOPY --from=b . .\nRUN npm ci\n", r).is_empty());
    assert!(fired("FROM node:20 AS a\nCOPY . .\nFROM node:20\nRUN npm ci\n", r).is_empty());
}

struct Users;

impl BaseImages for Users {
    fn image(&self, reference: &str) -> Option<BaseImage> {
        (reference == "distroless:nonroot").then(|| BaseImage {
            user: "65532".into(),
            ..BaseImage::default()
        })
    }
}

#[test]
fn root_user() {
    let r = "strata/RootUser";
    assert_eq!(
        fired("FROM scratch AS build\nFROM alpine:3.20\nCOPY --from=build /a /a\n", r),
        ["strata/RootUser: The final stage has no USER and runs as root: add a user and switch to it (USER app, or USER 65534:65534) (line 2)"]
    );
    assert_eq!(
        fired("FROM alpine:3.20\nUSER app\nUSER root:root\n", r),
        ["strata/RootUser: The final stage runs as root:root: add a user and switch to it (USER app, or USER 65534:65534) (line 3)"]
    );
    // Only the final stage counts; a USER in its base stage counts.
    assert!(fired(
        "FROM alpine:3.20 AS build\nFROM alpine:3.20\nUSER 65534\n",
        r
    )
    .is_empty());
    assert!(fired(
        "FROM alpine:3.20 AS base\nUSER node\nFROM base\nCOPY a /a\n",
        r
    )
    .is_empty());
    // The base image's user, when the store has the image.
    let users: Vec<String> = run_with("FROM distroless:nonroot\nCOPY a /a\n", &Users)
        .practices
        .iter()
        .map(|w| w.rule.to_string())
        .collect();
    assert!(!users.iter().any(|r| r == "strata/RootUser"), "{users:?}");
}

#[test]
fn dev_dependencies() {
    let r = "strata/DevDependencies";
    assert_eq!(
        fired("FROM node:20-slim\nCOPY package*.json ./\nRUN npm ci\nUSER node\n", r),
        ["strata/DevDependencies: The final stage installs development dependencies (npm install without --omit=dev): install them in a build stage, and only the production ones here (line 3)"]
    );
    assert_eq!(
        fired(
            "FROM python:3.12-slim\nRUN pip install -r requirements-dev.txt\n",
            r
        )
        .len(),
        1
    );
    assert_eq!(
        fired("FROM python:3.12-slim\nRUN poetry install\n", r).len(),
        1
    );
    assert!(fired("FROM node:20-slim\nRUN npm ci --omit=dev\n", r).is_empty());
    assert!(fired(
        "FROM node:20-slim\nENV NODE_ENV=production\nRUN npm ci\n",
        r
    )
    .is_empty());
    assert!(fired(
        "FROM python:3.12-slim\nRUN pip install -r requirements.txt\n",
        r
    )
    .is_empty());
    // A build stage may have them.
    assert!(fired(
        "FROM node:20 AS build\nRUN npm ci\nFROM node:20-slim\nUSER node\n",
        r
    )
    .is_empty());
}

#[test]
fn add_without_checksum() {
    let r = "strata/AddWithoutChecksum";
    assert_eq!(
        fired("FROM scratch\nADD https://example.com/a.tar.gz /a\n", r),
        ["strata/AddWithoutChecksum: ADD https://example.com/a.tar.gz is not verified: add --checksum=sha256:<digest> (line 2)"]
    );
    assert!(fired("FROM scratch\nADD --checksum=sha256:0123 https://example.com/a /a\nADD https://github.com/a/b.git /b\nADD local.tar /l\n", r).is_empty());
}

#[test]
fn toolchain_final_stage() {
    let r = "strata/ToolchainFinalStage";
    assert_eq!(
        fired("FROM golang:1.22\nCOPY . .\nRUN go build -o /app .\nUSER 1\n", r),
        ["strata/ToolchainFinalStage: The final stage is based on golang:1.22, a full toolchain image: build in a stage of its own and copy the result onto a small runtime base (scratch, distroless, alpine, a -slim or -jre variant) (line 1)"]
    );
    assert_eq!(fired("FROM eclipse-temurin:21-jdk\n", r).len(), 1);
    assert_eq!(fired("FROM rust:1.80 AS base\nFROM base\n", r).len(), 1);
    assert_eq!(fired("FROM mcr.microsoft.com/dotnet/sdk:8.0\n", r).len(), 1);
    assert!(fired(
        "FROM golang:1.22 AS build\nFROM scratch\nCOPY --from=build /app /app\n",
        r
    )
    .is_empty());
    assert!(fired("FROM eclipse-temurin:21-jre\n", r).is_empty());
}

/// Images at hand: what their layers hold decides, whatever the name says.
struct Scanned;

impl BaseImages for Scanned {
    fn image(&self, _: &str) -> Option<BaseImage> {
        None
    }
    fn toolchain(&self, reference: &str) -> Option<check::ToolchainScan> {
        let mut scan = check::ToolchainScan::default();
        scan.add("etc/passwd", 1_000);
        if reference.starts_with("mytools") {
            scan.add("usr/lib/gcc/x86_64-linux-gnu/12/cc1", 30_000_000);
            scan.add("./usr/local/go/bin/go", 12_000_000);
            scan.add("usr/bin/gcc-12", 1_000_000);
        }
        Some(scan)
    }
}

#[test]
fn toolchain_final_stage_measured() {
    let r = "strata/ToolchainFinalStage";
    let fired_with = |df: &str| -> Vec<String> {
        run_with(df, &Scanned)
            .practices
            .iter()
            .map(|w| w.short())
            .filter(|s| s.starts_with(r))
            .collect()
    };
    assert_eq!(
        fired_with("FROM mytools:1
USER 1
"),
        ["strata/ToolchainFinalStage: The final stage is based on mytools:1, a full toolchain image (gcc, go: 43MB of its 43MB, which the final image would lose): build in a stage of its own and copy the result onto a small runtime base (scratch, distroless, alpine, a -slim or -jre variant) (line 1)"]
    );
    // A golang-named image without a toolchain in its layers: measured, not fired.
    assert!(fired_with(
        "FROM golang:1.22
USER 1
"
    )
    .is_empty());
    assert_eq!(
        check::toolchain_of("usr/lib/jvm/java-17/jmods/java.base.jmod"),
        Some("jdk")
    );
    assert_eq!(
        check::toolchain_of("opt/java/openjdk/bin/javac"),
        Some("jdk")
    );
    assert_eq!(
        check::toolchain_of("usr/local/rustup/toolchains/x/bin/rustc"),
        Some("rust")
    );
    assert_eq!(check::toolchain_of("usr/bin/python3"), None);
    assert_eq!(check::toolchain_of("usr/lib/gcc-cross"), None);
}

/// strata's rules never join BuildKit's warnings, are off unless asked for, do not count
/// for error=true, and `check=skip` skips them by their full name.
#[test]
fn kept_apart() {
    let df = "# check=error=true\nFROM node\nCOPY . .\nRUN npm ci\n";
    let r = run_with(df, &NoImages);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.error, None);
    assert_eq!(r.practices.len(), 4, "{:?}", r.practices);
    assert!(r
        .practices
        .iter()
        .all(|w| w.rule.starts_with("strata/") && w.url.starts_with("docs/rules/")));
    let off = check(&Input {
        dockerfile: df,
        ..Default::default()
    });
    assert!(off.practices.is_empty());
    let skipped = own(
        "# check=skip=strata/RootUser,strata/UnpinnedBaseImage\nFROM node\nCOPY . .\nRUN npm ci\n",
    );
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    let comment = own("FROM node:20\n# check=skip=strata/DependenciesAfterSources\nCOPY . .\nRUN npm ci --omit=dev\nUSER node\n");
    assert!(comment.is_empty(), "{comment:?}");
    // Every rule has its page.
    for rule in check::practices::ALL {
        let page = format!("{}/../../{}", env!("CARGO_MANIFEST_DIR"), rule.url_path);
        let text = std::fs::read_to_string(&page).unwrap_or_else(|_| panic!("no page {page}"));
        assert!(text.starts_with(&format!("# {}\n", rule.name)), "{page}");
        for part in ["## Why", "## How to fix", "## Example"] {
            assert!(text.contains(part), "{page}: no {part}");
        }
    }
}

/// The repository's examples: the findings we intend, and no others.
#[test]
fn examples() {
    let root = format!("{}/../../examples", env!("CARGO_MANIFEST_DIR"));
    let mut got = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&root)
        .expect("examples")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    for dir in names {
        for file in ["Dockerfile", "Dockerfile.single"] {
            let Ok(df) = std::fs::read_to_string(dir.join(file)) else {
                continue;
            };
            let r = run_with(&df, &NoImages);
            for w in r.warnings.iter().chain(&r.practices) {
                got.push(format!(
                    "{}/{file}: {}",
                    dir.file_name().unwrap().to_string_lossy(),
                    w.short()
                ));
            }
        }
    }
    let want: Vec<String> = include_str!("practices-examples.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    assert_eq!(got, want, "\n{}", got.join("\n"));
}

#[test]
fn no_dockerignore() {
    let entries = [
        (".git".to_string(), 2_500_000u64),
        ("node_modules".to_string(), 80_000_000),
    ];
    let run = |df: &str, ignore: Option<&str>| -> Vec<String> {
        check(&Input {
            dockerfile: df,
            dockerignore: ignore,
            practices: true,
            context_entries: &entries,
            ..Default::default()
        })
        .practices
        .iter()
        .filter(|w| w.rule == "strata/NoDockerignore")
        .map(|w| w.short())
        .collect()
    };
    let df = "FROM node:20-slim\nCOPY package.json ./\nCOPY . .\nUSER node\n";
    assert_eq!(
        run(df, None),
        ["strata/NoDockerignore: The context has no .dockerignore and holds .git (2.5MB), node_modules (80MB): this copies them into the image and sends them with every build; a .dockerignore listing them saves 82.5MB (line 3)"]
    );
    assert!(run(df, Some("node_modules\n.git\n")).is_empty());
    assert!(run("FROM node:20-slim\nCOPY src ./src\n", None).is_empty());
    let none = check(&Input {
        dockerfile: df,
        practices: true,
        ..Default::default()
    });
    assert!(none
        .practices
        .iter()
        .all(|w| w.rule != "strata/NoDockerignore"));
}

/// Each page's example: its "Before" Dockerfile fires the rule, its "After" does not.
#[test]
fn pages_examples_fire_as_said() {
    let entries = [(".git".to_string(), 1000u64)];
    for rule in check::practices::ALL {
        let page = format!("{}/../../{}", env!("CARGO_MANIFEST_DIR"), rule.url_path);
        let text = std::fs::read_to_string(&page).expect("page");
        let blocks: Vec<&str> = text
            .split("```dockerfile\n")
            .skip(1)
            .map(|b| b.split("```").next().unwrap_or(""))
            .collect();
        assert!(!blocks.is_empty(), "{page}: no example");
        let fires = |df: &str, ignore: Option<&str>| {
            check(&Input {
                dockerfile: df,
                dockerignore: ignore,
                practices: true,
                context_entries: &entries,
                ..Default::default()
            })
            .practices
            .iter()
            .any(|w| w.rule == rule.name)
        };
        assert!(fires(blocks[0], None), "{page}: Before does not fire");
        if rule.name == "strata/NoDockerignore" {
            assert!(!fires(blocks[0], Some(".git\n")), "{page}");
        } else {
            assert!(!fires(blocks[1], None), "{page}: After fires");
        }
    }
}
