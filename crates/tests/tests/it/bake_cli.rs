//! `strata bake`: real builds from busybox of bake files' targets, as child `strata build`s.

use std::fs;
use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

use crate::common::{self, Env};

/// A store with busybox and a project directory holding `files` (name, content).
fn project(files: &[(&str, &str)]) -> (Env, PathBuf) {
    let env = common::busybox_env();
    let dir = env.path("proj");
    for (name, text) in files {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    (env, dir)
}

fn bake(env: &Env, dir: &PathBuf, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut c = env.cmd();
    c.current_dir(dir).arg("bake").args(args);
    for (k, v) in vars {
        c.env(k, v);
    }
    c.output().expect("run strata bake")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn images(env: &Env) -> String {
    env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
}

const SLEEPY: &str = "FROM busybox:local\nARG NAME\nRUN sleep 3 && echo \"$NAME\" > /name\n";

#[test]
fn two_targets_build_in_parallel_with_their_tags() {
    strata_tests::require!(Root, Busybox);
    let (env, dir) = project(&[
        ("Dockerfile", SLEEPY),
        (
            "docker-bake.hcl",
            r#"
group "default" { targets = ["one", "two"] }
target "one" {
  tags = ["bake-one:1"]
  args = { NAME = "one" }
}
target "two" {
  tags = ["bake-two:1"]
  args = { NAME = "two" }
}
"#,
        ),
    ]);
    let o = bake(&env, &dir, &["--jobs", "2", "--progress", "plain"], &[]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    let listed = images(&env);
    assert!(
        listed.contains("bake-one:1") && listed.contains("bake-two:1"),
        "{listed}"
    );
    // Every line of a build is prefixed with its target.
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with("[one] ")), "{err}");
    assert!(lines.iter().any(|l| l.starts_with("[two] ")), "{err}");
    assert!(
        lines.iter().all(|l| ["[one] ", "[two] ", "bake: "]
            .iter()
            .any(|p| l.starts_with(p))),
        "{err}"
    );
    assert!(err.contains("bake: 2 targets built: one, two"), "{err}");
    // In parallel: both RUN steps (3 s each) started before either finished.
    let run_step = |t: &str| -> (usize, usize) {
        let prefix = format!("[{t}] ");
        let start = lines
            .iter()
            .position(|l| l.starts_with(&prefix) && l.contains("RUN sleep 3"))
            .unwrap_or_else(|| panic!("no RUN line of {t}:\n{err}"));
        // `[one] #2 [2/2] RUN ...` ends at `[one] #2 DONE 3.1s`.
        let step = lines[start][prefix.len()..].split(' ').next().unwrap();
        let done = format!("{prefix}{step} DONE");
        let end = lines
            .iter()
            .position(|l| l.starts_with(&done))
            .unwrap_or_else(|| panic!("no end of {t}'s RUN:\n{err}"));
        (start, end)
    };
    let (one, two) = (run_step("one"), run_step("two"));
    assert!(
        one.0 < two.1 && two.0 < one.1,
        "the builds ran one after the other:\n{err}"
    );
}

#[test]
fn index_builds_only_that_target() {
    strata_tests::require!(Root, Busybox);
    let (env, dir) = project(&[
        (
            "Dockerfile",
            "FROM busybox:local\nARG NAME\nRUN echo \"$NAME\" > /name\n",
        ),
        (
            "docker-bake.json",
            r#"{
  "group": {"default": {"targets": ["first", "nested"]}, "nested": {"targets": ["second", "first"]}},
  "target": {
    "first": {"tags": ["bake-idx-first:1"], "args": {"NAME": "first"}},
    "second": {"tags": ["bake-idx-second:1"], "args": {"NAME": "second"}}
  }
}"#,
        ),
    ]);
    let o = bake(&env, &dir, &["--index", "1"], &[]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("bake: index 1 is target second"), "{err}");
    let listed = images(&env);
    assert!(listed.contains("bake-idx-second:1"), "{listed}");
    assert!(!listed.contains("bake-idx-first"), "{listed}");
    // Out of range: an error naming how many there are; nothing built.
    let o = bake(&env, &dir, &["--index", "2"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("--index 2: there are 2 targets (first, second)"),
        "{err}"
    );
}

#[test]
fn a_variable_from_the_environment_reaches_the_image() {
    strata_tests::require!(Root, Busybox);
    let (env, dir) = project(&[
        (
            "Dockerfile",
            "FROM busybox:local\nARG GREETING\nLABEL greeting=$GREETING\n",
        ),
        (
            "docker-bake.hcl",
            r#"
variable "GREETING" { default = "hello" }
variable "TAG" { default = "default" }
target "default" {
  tags = ["bake-var:${TAG}"]
  args = { GREETING = upper(GREETING) }
}
"#,
        ),
    ]);
    let label = |tag: &str| -> Value {
        let inspect: Value =
            serde_json::from_str(&env.ok(&["inspect", &format!("bake-var:{tag}")])).unwrap();
        inspect[0]["Config"]["Labels"]["greeting"].clone()
    };
    let o = bake(&env, &dir, &[], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(label("default"), "HELLO");
    let o = bake(&env, &dir, &[], &[("GREETING", "bonjour"), ("TAG", "env")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(label("env"), "BONJOUR");
    // --print shows what was resolved, and builds nothing.
    let o = bake(
        &env,
        &dir,
        &["--print"],
        &[("GREETING", "hi"), ("TAG", "print")],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let printed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(printed["target"]["default"]["args"]["GREETING"], "HI");
    assert_eq!(printed["group"]["default"]["targets"][0], "default");
    assert!(!images(&env).contains("bake-var:print"));
}

#[test]
fn a_failing_target_fails_the_bake_and_is_named() {
    strata_tests::require!(Root, Busybox);
    let (env, dir) = project(&[
        ("good/Dockerfile", "FROM busybox:local\nRUN true\n"),
        ("bad/Dockerfile", "FROM busybox:local\nRUN exit 3\n"),
        (
            "docker-bake.hcl",
            r#"
group "default" { targets = ["good", "bad"] }
target "good" {
  context = "good"
  tags = ["bake-good:1"]
}
target "bad" {
  context = "bad"
  tags = ["bake-bad:1"]
}
"#,
        ),
    ]);
    let o = bake(&env, &dir, &[], &[]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("bake: 1 of 2 targets failed: bad"), "{err}");
    assert!(err.lines().any(|l| l.starts_with("[bad] ")), "{err}");
    let listed = images(&env);
    assert!(listed.contains("bake-good:1"), "{listed}");
    assert!(!listed.contains("bake-bad"), "{listed}");
}

#[test]
fn a_target_context_is_built_first_and_used() {
    strata_tests::require!(Root, Busybox);
    let (env, dir) = project(&[(
        "docker-bake.hcl",
        r#"
target "base" {
  dockerfile-inline = "FROM busybox:local\nRUN echo from-base > /marker\n"
}
target "app" {
  dockerfile-inline = "FROM busybox:local\nCOPY --from=base /marker /marker\nRUN grep -q from-base /marker\n"
  contexts = { base = "target:base" }
  tags = ["bake-app:1"]
}
"#,
    )]);
    let o = bake(&env, &dir, &["app"], &[]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("bake: 2 targets built: base, app"), "{err}");
    let listed = images(&env);
    assert!(listed.contains("bake-app:1"), "{listed}");
    // The tag that carried base to app is gone.
    assert!(!listed.contains("strata-bake/"), "{listed}");
}

#[test]
fn bad_files_are_errors_before_any_build() {
    strata_tests::require!(Root, Busybox);
    let (env, dir) = project(&[
        ("Dockerfile", "FROM busybox:local\n"),
        (
            "docker-bake.hcl",
            "target \"default\" {\n  tag = [\"x\"]\n}\n",
        ),
        ("compose.yaml", "services: {}\n"),
    ]);
    let o = bake(&env, &dir, &[], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "error: docker-bake.hcl:2:3: target \"default\": attribute \"tag\": unknown attribute (did you mean tags?)\n"
    );
    let o = bake(&env, &dir, &["-f", "compose.yaml"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("Compose files are not supported"));
    // Found by default instead of a bake file: said so, not "no file".
    let only = env.path("only-compose");
    fs::create_dir_all(&only).unwrap();
    fs::write(only.join("compose.yaml"), "services: {}\n").unwrap();
    let o = bake(&env, &only, &[], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr)
            .contains("compose.yaml is a Compose file, which strata bake does not read yet"),
        "{}",
        text(&o.stderr)
    );
}
