//! `strata build` and BuildKit's checks (issue 16): the warnings printed after a build as
//! buildx prints them, only for the stages the build dispatches; `build --check` (no build,
//! `strata check`'s output and exit status); `error=true` failing the build before it runs
//! anything. Every Dockerfile here is `FROM scratch`: no image is needed.

use std::process::Command;

use crate::common::strata_in as strata;

const SUMMARY: &str = concat!(
    "\n",
    " 2 warnings found (use docker --debug to expand):\n",
    " - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)\n",
    " - LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format (line 5)\n",
);

#[test]
fn build_prints_warnings_after_the_build() {
    strata_tests::require!(Root);
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::write(dir.join("app"), "hi\n").expect("write");
    // Stage `unused` is not dispatched: its legacy ENV (line 3) is not a build's warning,
    // but `strata check` (every stage) reports it.
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch as base\nFROM scratch AS unused\nENV a b\nFROM base\nENV c d\nCOPY app /app\n",
    )
    .expect("write");
    let (code, _, err) = strata(dir, &["build", "--progress=plain", "-t", "w:1", "."]);
    assert_eq!(code, 0, "{err}");
    assert!(err.ends_with(SUMMARY), "{err}");
    // After the build's own lines.
    let at = err.find(" 2 warnings found").expect("summary");
    assert!(
        err[..at].contains("#0 naming to docker.io/library/w:1 done"),
        "{err}"
    );

    // -q: the image ID only.
    let (code, out, err) = strata(dir, &["build", "-q", "-t", "w:1", "."]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("sha256:"), "{out}");
    assert!(!err.contains("warning"), "{err}");

    // --target: the dispatched stages change.
    let (code, _, err) = strata(
        dir,
        &["build", "--progress=plain", "--target", "unused", "."],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.ends_with(concat!(
            "\n",
            " 2 warnings found (use docker --debug to expand):\n",
            " - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)\n",
            " - LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format (line 3)\n",
        )),
        "{err}"
    );

    // The same build from stdin (`-f -`) warns the same.
    let out = Command::new(strata_tests::strata_bin())
        .args(["build", "--progress=plain", "-f", "-", "."])
        .current_dir(dir)
        .env("STRATA_ROOT", dir.join("store"))
        .stdin(std::fs::File::open(dir.join("Dockerfile")).expect("open"))
        .output()
        .expect("run strata");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.ends_with(SUMMARY), "{err}");

    // --check: strata check's output and exit status, no build.
    let (code, out, err) = strata(dir, &["build", "--check", "-t", "w:2", "."]);
    let (ccode, cout, _) = strata(dir, &["check", "."]);
    assert_eq!((code, out.as_str()), (ccode, cout.as_str()), "{err}");
    assert_eq!(code, 1);
    assert!(
        out.starts_with("Check complete, 3 warnings have been found!\n"),
        "{out}"
    );
    let (_, _, err) = strata(dir, &["inspect", "w:2"]);
    assert!(err.contains("w:2"), "no image w:2 was built: {err}");
}

#[test]
fn build_without_warnings_prints_nothing_more() {
    strata_tests::require!(Root);
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\nENV a=b\n").expect("write");
    let (code, _, err) = strata(dir, &["build", "--progress=plain", "-t", "c:1", "."]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
    assert!(err.trim_end().ends_with("steps cached)"), "{err}");
}

#[test]
fn error_true_fails_before_the_build() {
    strata_tests::require!(Root);
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::write(
        dir.join("Dockerfile"),
        "# check=error=true\nFROM scratch as base\nENV a=b\n",
    )
    .expect("write");
    let (code, out, err) = strata(dir, &["build", "--progress=plain", "-t", "e:1", "."]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(out, "");
    assert_eq!(
        err,
        concat!(
            "\n",
            " 1 warning found (use docker --debug to expand):\n",
            " - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 2)\n",
            "error: failed to solve: lint violation found for rules: FromAsCasing\n",
        )
    );
    // The build arg overrides the directive.
    let (code, _, err) = strata(
        dir,
        &[
            "build",
            "--progress=plain",
            "--build-arg",
            "BUILDKIT_DOCKERFILE_CHECK=error=false",
            "-t",
            "e:1",
            ".",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.ends_with(" - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 2)\n"),
        "{err}"
    );
    // skip= makes it pass as well.
    std::fs::write(
        dir.join("Dockerfile"),
        "# check=error=true;skip=FromAsCasing\nFROM scratch as base\nENV a=b\n",
    )
    .expect("write");
    let (code, _, err) = strata(dir, &["build", "--progress=plain", "."]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
}

/// strata's own rules: off by default (BuildKit's output exactly), `--practices` prints them
/// after BuildKit's, apart, and they make the exit status 1.
#[test]
fn practices_apart_from_buildkit() {
    strata_tests::require!(Root);
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY app /app\n").expect("write");
    let (code, out, _) = strata(dir, &["check"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "Check complete, no warnings found.\n")
    );
    let (code, out, _) = strata(dir, &["check", "--practices"]);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        concat!(
            "Check complete, no warnings found.\n",
            "\n",
            "Best practices (strata's own rules, docs/rules/): 1 finding\n",
            "\n",
            "WARNING: strata/RootUser - docs/rules/root-user.md\n",
            "The final stage has no USER and runs as root: add a user and switch to it (USER app, or USER 65534:65534)\n",
            "Dockerfile:1\n",
            "--------------------\n",
            "   1 | >>> FROM scratch\n",
            "   2 |     COPY app /app\n",
            "   3 |     \n",
            "--------------------\n",
        )
    );
    let (bcode, bout, _) = strata(dir, &["build", "--check", "--practices", "."]);
    assert_eq!((bcode, bout), (code, out));
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY app /app\nUSER 65534\n",
    )
    .expect("write");
    let (code, out, _) = strata(dir, &["check", "--practices"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "Check complete, no warnings found.\n\nBest practices (strata's own rules, docs/rules/): none found.\n")
    );
}

/// strata/NoDockerignore: the context's heavy entries and their size, measured by the CLI.
#[test]
fn practices_measure_the_context() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ctx");
    std::fs::create_dir_all(dir.join("node_modules/x")).expect("mkdir");
    std::fs::write(dir.join("node_modules/x/a.js"), vec![b'a'; 1500]).expect("write");
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY . /app\nUSER 1\n",
    )
    .expect("write");
    let (code, out, err) = strata(&dir, &["check", "--practices"]);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("\nWARNING: strata/NoDockerignore - docs/rules/no-dockerignore.md\nThe context has no .dockerignore and holds node_modules (1.5kB): this copies them into the image and sends them with every build; a .dockerignore listing them saves 1.5kB\nDockerfile:2\n"), "{out}");
    std::fs::write(dir.join(".dockerignore"), "node_modules\n").expect("write");
    let (code, out, _) = strata(&dir, &["check", "--practices"]);
    assert_eq!(code, 0, "{out}");
}

/// `strata check --format json|sarif`: machine-readable, same exit status as the text.
#[test]
fn check_formats() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::write(dir.join("Dockerfile"), "FROM scratch as a\n").expect("write");
    let (code, out, err) = strata(dir, &["check", "--format", "json"]);
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["warnings"][0]["ruleName"], "FromAsCasing");
    assert_eq!(v["sources"][0]["filename"], "Dockerfile");
    let (code, out, err) = strata(dir, &["check", "--format", "sarif", "--practices"]);
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("sarif");
    assert_eq!(v["version"], "2.1.0");
    let ids: Vec<&str> = v["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["ruleId"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["FromAsCasing", "strata/RootUser"]);
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").expect("write");
    let (code, out, _) = strata(dir, &["check", "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["warnings"], serde_json::json!([]));
}

/// `strata check --fix` prints the mechanical fixes as a diff; `--fix --write` applies them.
#[test]
fn check_fix() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let df = "FROM scratch as base\nenv a b\nCMD run me\n";
    std::fs::write(dir.join("Dockerfile"), df).expect("write");
    let (code, out, err) = strata(dir, &["check", "--fix"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        concat!(
            "--- ./Dockerfile\n+++ ./Dockerfile\n@@ -1,3 +1,3 @@\n",
            "-FROM scratch as base\n+FROM scratch AS base\n",
            "-env a b\n+ENV a=b\n",
            "-CMD run me\n+CMD [\"run\", \"me\"]\n",
        )
    );
    assert_eq!(std::fs::read_to_string(dir.join("Dockerfile")).unwrap(), df);
    let (code, _, err) = strata(dir, &["check", "--fix", "--write"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("Dockerfile")).unwrap(),
        "FROM scratch AS base\nENV a=b\nCMD [\"run\", \"me\"]\n"
    );
    let (code, out, _) = strata(dir, &["check"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "Check complete, no warnings found.\n")
    );
}

/// A lone Dockerfile on stdin (`strata build -`) is checked as well.
#[test]
fn stdin_dockerfile_is_checked() {
    strata_tests::require!(Root);
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let df = dir.join("df");
    std::fs::write(&df, "FROM scratch as a\nENV k=v\n").expect("write");
    let out = Command::new(strata_tests::strata_bin())
        .args(["build", "--progress=plain", "-t", "s:1", "-"])
        .current_dir(dir)
        .env("STRATA_ROOT", dir.join("store"))
        .stdin(std::fs::File::open(&df).expect("open"))
        .output()
        .expect("run strata");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.ends_with(" 1 warning found (use docker --debug to expand):\n - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)\n"),
        "{err}"
    );
}

/// `error=true` with a rule that reads the base image's config (UndefinedVar: the image's
/// ENV) and a base image the store does not have: BuildKit decides after resolving the image,
/// so strata pulls it first; a failed pull is the build's error, not a lint violation.
#[test]
fn error_true_resolves_base_images_first() {
    strata_tests::require!(Root);
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::write(
        dir.join("Dockerfile"),
        "# check=error=true\nFROM 127.0.0.1:1/nothing:1\nENV a=$FROM_THE_IMAGE\n",
    )
    .expect("write");
    let (code, _, err) = strata(dir, &["build", "--progress=plain", "."]);
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("lint violation"), "{err}");
    assert!(err.contains("127.0.0.1:1/nothing:1"), "{err}");
}
