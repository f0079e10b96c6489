//! Behaviours the BuildKit cases do not cover: base-image metadata through the provider,
//! the configuration's edge cases, and no panic on any input.

mod common;

use check::{check, BaseImage, BaseImages, Input, NoImages, Report};

struct Images;

impl BaseImages for Images {
    fn image(&self, reference: &str) -> Option<BaseImage> {
        match reference {
            "python:3.12" => Some(BaseImage {
                env: vec![
                    ("PATH".into(), "/usr/local/bin:/usr/bin".into()),
                    ("PYTHON_VERSION".into(), "3.12.4".into()),
                ],
                has_shell: false,
                platform: Some("linux/amd64".into()),
                onbuild: Vec::new(),
                user: String::new(),
            }),
            "onbuilder" => Some(BaseImage {
                onbuild: vec!["COPY $NOPE /".into()],
                ..BaseImage::default()
            }),
            "shelly" => Some(BaseImage {
                has_shell: true,
                platform: Some("linux/amd64".into()),
                ..BaseImage::default()
            }),
            "armonly" => Some(BaseImage {
                platform: Some("linux/arm64".into()),
                ..BaseImage::default()
            }),
            _ => None,
        }
    }
}

fn run(df: &str, images: &dyn BaseImages) -> Report {
    check(&Input {
        dockerfile: df,
        dockerignore: None,
        build_args: &[],
        images,
        ..Default::default()
    })
}

fn shorts(r: &Report) -> Vec<String> {
    r.warnings.iter().map(|w| w.short()).collect()
}

#[test]
fn base_image_env_defines_variables() {
    let df = "FROM python:3.12\nRUN true\nCOPY $PYTHON_VERSION $PYTHON_VERSON /\n";
    let r = run(df, &Images);
    assert_eq!(
        shorts(&r),
        ["UndefinedVar: Usage of undefined variable '$PYTHON_VERSON' (did you mean $PYTHON_VERSION?) (line 3)"]
    );
    assert!(r.unresolved_images.is_empty());
    // Unknown to the provider: the image's ENV cannot count, and the report says so.
    let r = run(df, &NoImages);
    assert_eq!(r.warnings.len(), 2);
    assert_eq!(r.unresolved_images, ["python:3.12"]);
}

#[test]
fn base_image_shell_silences_json_args() {
    assert!(run("FROM shelly\nCMD run\n", &Images).warnings.is_empty());
    let r = run("FROM python:3.12\nCMD run\n", &Images);
    assert_eq!(r.warnings[0].rule, "JSONArgsRecommended");
    // Inherited through a stage.
    assert!(run("FROM shelly AS a\nFROM a\nENTRYPOINT run\n", &Images)
        .warnings
        .is_empty());
}

#[test]
fn base_image_platform() {
    let r = run("FROM armonly\n", &Images);
    assert_eq!(
        shorts(&r),
        ["InvalidBaseImagePlatform: Base image armonly was pulled with platform \"linux/arm64\", expected \"linux/amd64\" for current build (line 1)"]
    );
    assert_eq!(r.warnings[0].url, "");
    assert!(
        run("FROM --platform=linux/arm64 armonly AS arm64\n", &Images)
            .warnings
            .is_empty()
    );
}

#[test]
fn configuration() {
    // error=true with nothing firing: no error.
    let r = run("# check=error=true\nFROM scratch\n", &NoImages);
    assert_eq!(r.error, None);
    // A bad directive stops the check.
    let r = run("# check=skip\nFROM scratch as a\n", &NoImages);
    assert_eq!(
        r.error.as_deref(),
        Some("failed to parse check options: invalid check option \"skip\"")
    );
    let r = run("# check=error=maybe\nFROM scratch\n", &NoImages);
    assert_eq!(
        r.error.as_deref(),
        Some("failed to parse check options: failed to parse check option \"error=maybe\": strconv.ParseBool: parsing \"maybe\": invalid syntax")
    );
    // skip=all does not skip an enabled experimental rule.
    let r = run(
        "# check=skip=all;experimental=all\n# nope\nARG a\nFROM scratch\n",
        &NoImages,
    );
    assert_eq!(r.warnings.len(), 1);
    assert_eq!(r.warnings[0].rule, "InvalidDefinitionDescription");
    // A per-instruction skip only covers its instruction.
    let r = run(
        "FROM scratch\n# check=skip=MaintainerDeprecated\nMAINTAINER a\nMAINTAINER b\n",
        &NoImages,
    );
    assert_eq!(r.warnings.len(), 1);
    assert_eq!(r.warnings[0].line, 4);
    // Several rules in the violation, in the order they first fired.
    let r = run(
        "# check=error=true\nFROM scratch as A\nMAINTAINER x\n",
        &NoImages,
    );
    assert!(r.lint_error);
    assert_eq!(
        r.error.as_deref(),
        Some("lint violation found for rules: StageNameCasing, FromAsCasing, MaintainerDeprecated")
    );
}

#[test]
fn run_mounts_are_expanded_not_the_command() {
    let r = run(
        "FROM scratch\nARG id=x\nRUN --mount=type=cache,id=$id,target=/c$directory,ro echo $nope\n",
        &NoImages,
    );
    assert_eq!(
        shorts(&r),
        ["UndefinedVar: Usage of undefined variable '$directory' (line 3)"]
    );
}

#[test]
fn onbuild_triggers_are_checked_where_they_run() {
    // From a base stage the target reaches: checked at the FROM line of the stage using it.
    let df = "FROM scratch AS base\nONBUILD COPY $missing /\nFROM base\n";
    let r = run(df, &NoImages);
    assert_eq!(
        shorts(&r),
        ["UndefinedVar: Usage of undefined variable '$missing' (line 3)"]
    );
    // Not reached from the target: not run, not checked.
    let df = "FROM scratch AS base\nONBUILD COPY $missing /\nFROM base AS child\nFROM scratch\n";
    assert!(run(df, &NoImages).warnings.is_empty());
    // From the base image's config.
    let df = "FROM onbuilder\n";
    assert_eq!(
        shorts(&run(df, &Images)),
        ["UndefinedVar: Usage of undefined variable '$NOPE' (line 1)"]
    );
}

#[test]
fn instruction_errors_stop_the_check_after_earlier_warnings() {
    let r = run(
        "FROM scratch AS A\nCOPY --bogus=1 a b\nMAINTAINER x\n",
        &NoImages,
    );
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert_eq!(r.warnings[0].rule, "StageNameCasing");
    let e = r.error.unwrap_or_default();
    assert!(
        e.starts_with("dockerfile parse error on line 2: unknown flag: "),
        "{e}"
    );
    assert!(!r.lint_error);
}

#[test]
fn unknown_instruction_suggests() {
    let r = run("FROM scratch\nCOPPY a b\n", &NoImages);
    assert_eq!(
        r.error.as_deref(),
        Some("dockerfile parse error on line 2: unknown instruction: COPPY (did you mean COPY?)")
    );
}

/// Every case's Dockerfile and a few odd ones, truncated at every char boundary: the
/// checker returns, never panics.
#[test]
fn no_panic() {
    let data = format!("{}/cases.jsonl", common::DATA);
    let mut inputs: Vec<String> = std::fs::read_to_string(data)
        .expect("cases")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|c| c["dockerfile"].as_str().map(str::to_string))
        .collect();
    // The parser's conformance Dockerfiles (in the repository).
    let parser_data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../conformance/buildkit-parser"
    );
    for sub in ["testfiles", "testfiles-negative"] {
        for entry in std::fs::read_dir(format!("{parser_data}/{sub}"))
            .expect("parser data")
            .flatten()
        {
            if let Ok(t) = std::fs::read_to_string(entry.path().join("Dockerfile")) {
                inputs.push(t);
            }
        }
    }
    inputs.extend(
        [
            "FROM --platform=${X:?bad} a\n",
            "ARG A=${\nFROM $A\n",
            "FROM a AS\u{212a}\nEXPOSE ::::/ 1:2:3/TCP [::1]\nWORKDIR\nENV\n",
            "FROM é/ü:ß@sha256:xx\nCOPY --from= <<EOF\nEOF\nADD git@x:y /\n",
            "ONBUILD RUN x\nFROM a\nHEALTHCHECK NONE\nHEALTHCHECK NONE\n",
        ]
        .map(str::to_string),
    );
    for df in &inputs {
        for (k, (i, _)) in df.char_indices().enumerate() {
            let _ = run(&df[..i], &Images);
            if k % 4 != 0 {
                continue;
            }
            let _ = check(&Input {
                dockerfile: &df[..i],
                dockerignore: Some("*\n!a\n**\n["),
                build_args: &[("BUILDKIT_DOCKERFILE_CHECK".into(), "error=1".into())],
                images: &Images,
                ..Default::default()
            });
        }
    }
}

/// A 10,000-instruction Dockerfile (many stages, thousands of variables, every rule's
/// instruction kinds) is checked without an error. Its speed is a benchmark, not a test:
/// `cargo bench -p check --bench check_large` (goal: under 50 ms).
#[test]
fn large_dockerfile_is_checked() {
    let df = common::large::dockerfile();
    assert!(df.lines().count() > 10_000);
    let r = check(&Input {
        dockerfile: &df,
        dockerignore: Some("secret\n"),
        build_args: &[],
        images: &NoImages,
        practices: true,
        ..Default::default()
    });
    assert!(r.error.is_none(), "{:?}", r.error);
}

/// `--target` and build mode: the dispatched stages are those the target needs; parse-time
/// rules (FromAsCasing) still see every stage; an unknown target is BuildKit's error.
#[test]
fn target_and_build_mode() {
    let df = "FROM scratch as a\nENV x y\nFROM scratch AS b\nENV p q\nFROM b AS c\nENV r s\n";
    let run = |target: Option<&str>, mode: check::Mode| {
        let r = check(&Input {
            dockerfile: df,
            target,
            mode,
            ..Default::default()
        });
        (shorts(&r), r.error)
    };
    let lines = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|s| s.rsplit(' ').next().unwrap_or("").to_string())
            .collect()
    };
    // Check mode without a target: every stage.
    assert_eq!(
        lines(run(None, check::Mode::Check).0),
        ["1)", "2)", "4)", "6)"]
    );
    // A build of the last stage: b and c dispatched, a not.
    assert_eq!(lines(run(None, check::Mode::Build).0), ["1)", "4)", "6)"]);
    // With a target, check mode too dispatches only what the target needs.
    assert_eq!(lines(run(Some("a"), check::Mode::Check).0), ["1)", "2)"]);
    assert_eq!(lines(run(Some("B"), check::Mode::Build).0), ["1)", "4)"]);
    let (w, e) = run(Some("bb"), check::Mode::Build);
    assert_eq!(
        e.as_deref(),
        Some("target stage \"bb\" could not be found (did you mean b?)")
    );
    assert_eq!(lines(w), ["1)"]);
}

/// `--fix`: the mechanical fixes, the result checked again, and the unified diff.
#[test]
fn fixes() {
    let df = "FROM scratch as Build\nMAINTAINER me@example.com\nenv a b c\nLABEL x y\nCMD node server.js\nENTRYPOINT echo $HOME\nENV p=q\n";
    let r = run(df, &NoImages);
    let fixed = check::fix::fix(df, &r);
    assert_eq!(
        fixed,
        "FROM scratch AS build\nLABEL org.opencontainers.image.authors=\"me@example.com\"\nENV a=\"b c\"\nLABEL x=y\nCMD [\"node\", \"server.js\"]\nENTRYPOINT echo $HOME\nENV p=q\n"
    );
    // What is left: only what no fix applies to.
    let left: Vec<&str> = run(&fixed, &NoImages)
        .warnings
        .iter()
        .map(|w| w.rule)
        .collect();
    assert_eq!(left, ["JSONArgsRecommended"]);
    let diff = check::fix::unified_diff(
        "A\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\n",
        "A\nB\nc\nd\ne\nf\ng\nh\ni\nj\nk\nL\n",
        "Dockerfile",
    );
    assert_eq!(
        diff,
        "--- Dockerfile\n+++ Dockerfile\n@@ -1,5 +1,5 @@\n A\n-b\n+B\n c\n d\n e\n@@ -9,4 +9,4 @@\n i\n j\n k\n-l\n+L\n"
    );
    assert_eq!(check::fix::unified_diff("a\n", "a\n", "D"), "");
    // The keyword's case is fixed first, the AS keyword then follows it.
    let df = "FROM scratch AS a\nfrom a AS b\nRUN true\n";
    let fixed = check::fix::fix(df, &run(df, &NoImages));
    assert_eq!(fixed, "FROM scratch AS a\nFROM a AS b\nRUN true\n");
}
