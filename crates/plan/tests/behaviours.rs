//! Planning behaviours from conformance/README.md §4 that need no execution (numbers refer
//! to that list), plus the error contract: kind, line and column, not only message text.

use plan::{
    plan, Base, BaseImage, Diagnostic, ErrorKind, ImageResolver, Instruction, MountKind, Plan,
    PlanOptions, Unresolved,
};

fn ok(src: &str) -> Plan {
    ok_with(src, &PlanOptions::default())
}

fn ok_with(src: &str, opts: &PlanOptions) -> Plan {
    match plan(src, opts, &Unresolved) {
        Ok(p) => p,
        Err(d) => panic!("unexpected error:\n{}", d.render("Dockerfile")),
    }
}

fn err(src: &str) -> Diagnostic {
    err_with(src, &PlanOptions::default())
}

fn err_with(src: &str, opts: &PlanOptions) -> Diagnostic {
    match plan(src, opts, &Unresolved) {
        Ok(p) => panic!(
            "expected an error, got a plan with {} stages",
            p.stages.len()
        ),
        Err(d) => d,
    }
}

fn target(t: &str) -> PlanOptions {
    PlanOptions {
        target: Some(t.into()),
        ..PlanOptions::default()
    }
}

fn args(a: &[(&str, &str)]) -> PlanOptions {
    PlanOptions {
        build_args: a
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..PlanOptions::default()
    }
}

fn step(p: &Plan, stage: usize, i: usize) -> &Instruction {
    &p.stages[stage].steps[i].instruction
}

fn run_env_arg<'a>(p: &'a Plan, stage: usize, i: usize, name: &str) -> Option<&'a str> {
    p.stages[stage].steps[i]
        .args
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

// 1, 2: --from names an image unless a stage has that name; the stage wins.
#[test]
fn from_image_or_stage() {
    let p = ok("FROM scratch\nCOPY --from=busybox /etc/passwd test\n");
    assert_eq!(p.stages[0].images, vec!["busybox"]);
    assert!(p.stages[0].depends_on.is_empty());

    let p = ok("FROM busybox AS golang\nRUN touch /usr/bin/go\nFROM scratch\nCOPY --from=golang /usr/bin/go go\n");
    assert_eq!(p.stages[1].depends_on, vec![0]);
    assert!(p.stages[1].images.is_empty());
}

// 3, 12: stage names are case-insensitive, in --from and --target.
#[test]
fn case_insensitive_names() {
    let src = "FROM busybox AS STAge0\nRUN true\nFROM busybox AS staGE1\nCOPY --from=staGE0 / /\nFROM scratch\nCOPY --from=stage1 / /\n";
    let p = ok_with(src, &target("Stage1"));
    assert_eq!(p.target, 1);
    assert_eq!(p.stages[1].name.as_deref(), Some("stage1"));
    assert_eq!(p.stages[1].depends_on, vec![0]);
    assert!(!p.stages[2].needed);
    let d = err_with(src, &target("nosuch"));
    assert_eq!(d.kind, ErrorKind::TargetNotFound);
}

// 4: --from by index; an index outside the list is an error at the COPY line.
#[test]
fn from_by_index() {
    let p = ok("FROM busybox\nRUN true\nFROM scratch\nCOPY --from=0 /x /x\n");
    assert_eq!(p.stages[1].depends_on, vec![0]);
    let d = err("FROM busybox\nRUN true\nFROM scratch\nCOPY --from=5 /x /x\n");
    assert_eq!(
        (d.kind, d.line, d.col),
        (ErrorKind::InvalidStageIndex, 4, 13)
    );
    assert!(d.message.contains("invalid stage index 5"));
}

// 5: a stage copying from a later stage.
#[test]
fn forward_reference() {
    let d = err("FROM busybox AS target\nCOPY --from=build /d2 /out\n\nFROM busybox AS build\nCOPY x /d2\n\nFROM target\n");
    assert_eq!((d.kind, d.line), (ErrorKind::ForwardReference, 2));
    assert!(
        d.message.contains("cannot copy from stage"),
        "{}",
        d.message
    );
    assert!(d
        .message
        .contains("needs to be defined before current stage"));
}

// 6: cycles are reported (before the ordering check) naming the stage the search began at.
#[test]
fn circular_dependency() {
    let d = err("FROM busybox AS a\nCOPY --from=b /x /x\n\nFROM busybox AS b\nCOPY --from=a /y /y\n\nFROM a\n");
    assert_eq!(d.kind, ErrorKind::CircularDependency);
    assert_eq!(d.message, "circular dependency detected on stage: a");
    let d = err("FROM busybox AS stage0\nCOPY --from=stage0 /x /x\n");
    assert_eq!((d.kind, d.line), (ErrorKind::CircularDependency, 2));
    let d = err("FROM scratch AS stage0\nCOPY --from=stage2 / /\nFROM scratch AS stage1\nCOPY --from=stage0 / /\nFROM scratch AS stage2\nCOPY --from=stage1 / /\n");
    assert_eq!(d.message, "circular dependency detected on stage: stage0");
}

// 7: no variables in --from.
#[test]
fn from_variable_rejected() {
    let d = err("FROM scratch\nCOPY --from=$FOO . .\n");
    assert_eq!((d.kind, d.line, d.col), (ErrorKind::FromVariable, 2, 13));
    assert!(d.hint.as_deref().unwrap_or("").contains("global scope"));
}

// 13: target typo gets a suggestion.
#[test]
fn target_typo_did_you_mean() {
    let d = err_with(
        "FROM scratch AS build\nCOPY Dockerfile /out\nFROM scratch\nCOPY --from=build /out /\n",
        &target("bulid"),
    );
    assert_eq!(d.kind, ErrorKind::TargetNotFound);
    assert_eq!(d.message, "target stage \"bulid\" could not be found");
    assert_eq!(d.hint.as_deref(), Some("did you mean build?"));
}

// 14: no stages.
#[test]
fn no_stages() {
    let d = err("ARG foo=bar\n");
    assert_eq!(d.kind, ErrorKind::NoStages);
    assert_eq!(d.message, "dockerfile contains no stages to build");
    assert_eq!(d.line, 1);
}

// 15: blank base names.
#[test]
fn blank_base_name() {
    let d = err("FROM \"\" AS foo\n");
    assert_eq!((d.kind, d.line), (ErrorKind::BlankBaseName, 1));
    let d = err("ARG BLANK\nFROM ${BLANK} AS foo\n");
    assert_eq!((d.kind, d.line, d.col), (ErrorKind::BlankBaseName, 2, 6));
}

// 16: COPY of a URL; ADD accepts it.
#[test]
fn copy_url() {
    let d = err("FROM scratch\nCOPY http://example.com/x /x\n");
    assert_eq!((d.kind, d.line, d.col), (ErrorKind::CopyUrl, 2, 6));
    ok("FROM scratch\nADD http://example.com/x /x\n");
}

// 17: step names and totals.
#[test]
fn step_numbers() {
    let p = ok("FROM busybox AS base\nENV A=1\nWORKDIR /w\nCOPY a b\nRUN x\nFROM scratch\nCOPY --from=base /w /\n");
    assert_eq!(p.stages[0].total_steps, 4);
    let nums: Vec<Option<usize>> = p.stages[0].steps.iter().map(|s| s.number).collect();
    assert_eq!(nums, vec![None, Some(2), Some(3), Some(4)]);
    assert_eq!(p.stages[1].display_name, "stage-1");
    assert_eq!(p.stages[1].total_steps, 1);
}

/// BuildKit numbers no step for the FROM of a stage (Docker 20.10: `FROM base AS build` with
/// two COPY and a RUN prints `[build 1/3] COPY scripts/ ./scripts/`).
#[test]
fn step_numbers_from_stage() {
    let p = ok("FROM busybox AS base
RUN x
FROM base AS b
COPY a b
ENV X=1
RUN y
");
    assert_eq!(p.stages[0].total_steps, 2);
    assert_eq!(p.stages[1].total_steps, 2);
    let nums: Vec<Option<usize>> = p.stages[1].steps.iter().map(|s| s.number).collect();
    assert_eq!(nums, vec![Some(1), None, Some(2)]);
}

/// Step names as BuildKit's progress prints them (Docker 20.10, checked live; the end-to-end
/// comparison is tests/progress_text.rs of the strata crate).
#[test]
fn progress_names() {
    let p = ok("FROM busybox AS a\nARG V=val\nENV E=e\n\
                run [\"sh\", \"-c\",  \"x\"]\n\
                RUN --mount=type=cache,target=/c,id=foo echo \"$V\" $NOPE '$E' \\\n  # c\n  && ${E}\n\
                WORKDIR \"/w$V\"\ncopy --chown=1 \"f\" ./$V/ \n\
                RUN echo $V ${NOPE:?} ${V\n");
    let names: Vec<&str> = p.stages[0]
        .steps
        .iter()
        .filter(|s| s.number.is_some())
        .map(|s| s.progress.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "RUN [\"sh\", \"-c\",  \"x\"]",
            "RUN --mount=type=cache,target=/c,id=foo echo \"val\" $NOPE '$E'   && e",
            "WORKDIR /wval",
            "COPY --chown=1 f ./val/",
            // An expansion that fails (unterminated `${`): the text as written.
            "RUN echo $V ${NOPE:?} ${V",
        ]
    );
    // A name that would expand past 64 KiB is printed as written.
    let big = "x".repeat(40_000);
    let p = ok(&format!("FROM busybox\nARG B={big}\nRUN echo $B$B\n"));
    assert_eq!(p.stages[0].steps[1].progress, "RUN echo $B$B");
}

// 19: a global ARG used in FROM, overridden by --build-arg.
#[test]
fn global_arg_in_from() {
    let src = "ARG tag=nosuchtag\nFROM busybox:${tag}\n";
    let p = ok(src);
    assert_eq!(
        p.stages[0].base,
        Base::Image {
            reference: "busybox:nosuchtag".into()
        }
    );
    let p = ok_with(src, &args(&[("tag", "latest")]));
    assert_eq!(
        p.stages[0].base,
        Base::Image {
            reference: "busybox:latest".into()
        }
    );
}

// 20, 21: ${FOO:?msg} errors, and a supplied value skips the default.
#[test]
fn required_arg_errors() {
    let src = "ARG FOO=${FOO:?\"custom error\"}\nFROM scratch\n";
    let d = err(src);
    assert_eq!((d.kind, d.line), (ErrorKind::Expansion, 1));
    assert!(d.message.contains("FOO: custom error"), "{}", d.message);
    ok_with(src, &args(&[("FOO", "bar")]));

    let src = "FROM scratch\nARG FOO\nARG BAR=${FOO:?\"foo missing\"}\n";
    let d = err(src);
    assert_eq!((d.kind, d.line), (ErrorKind::Expansion, 3));
    assert!(d.message.contains("FOO: foo missing"), "{}", d.message);
    ok_with(src, &args(&[("FOO", "x")]));
    ok_with(src, &args(&[("BAR", "x")]));
}

// 22: multi ARGs, global ARGs referring to earlier ones, redeclaration imports the value.
#[test]
fn multi_and_quoted_args() {
    let p = ok("ARG a1=\"foo bar\" a2=box\nARG a3=\"$a2-foo\"\nFROM busy$a2 AS build\nARG a3 a4=\"123 456\" a1\nRUN echo -n \"$a1:$a3:$a4\" > /out\n");
    assert_eq!(
        p.stages[0].base,
        Base::Image {
            reference: "busybox".into()
        }
    );
    assert_eq!(run_env_arg(&p, 0, 1, "a1"), Some("foo bar"));
    assert_eq!(run_env_arg(&p, 0, 1, "a3"), Some("box-foo"));
    assert_eq!(run_env_arg(&p, 0, 1, "a4"), Some("123 456"));
    // Without redeclaration a global ARG is not visible in the stage.
    let p = ok("ARG g=1\nFROM scratch\nENV x=${g:-unset}\n");
    assert_eq!(
        step(&p, 0, 0),
        &Instruction::Env {
            vars: vec![plan::KeyValue {
                key: "x".into(),
                value: "unset".into()
            }]
        }
    );
}

// 23: ARG defaults with modifiers in FROM and ENV; an empty build arg counts as unset for :-.
#[test]
fn default_env_with_args() {
    let src = "ARG image=idlebox\nFROM busy${image#idle}\nARG my_arg\nENV my_arg \"my_arg=${my_arg:-def_val}\"\nENV t \"${my_arg%%e*}\"\n";
    let p = ok(src);
    assert_eq!(
        p.stages[0].base,
        Base::Image {
            reference: "busybox".into()
        }
    );
    let Instruction::Env { vars } = step(&p, 0, 1) else {
        panic!()
    };
    assert_eq!(vars[0].value, "my_arg=def_val");
    let p = ok_with(src, &args(&[("my_arg", "")]));
    let Instruction::Env { vars } = step(&p, 0, 1) else {
        panic!()
    };
    assert_eq!(vars[0].value, "my_arg=def_val");
    let Instruction::Env { vars } = step(&p, 0, 2) else {
        panic!()
    };
    assert_eq!(vars[0].value, "my_arg=d");
    let p = ok_with(src, &args(&[("my_arg", "override")]));
    let Instruction::Env { vars } = step(&p, 0, 1) else {
        panic!()
    };
    assert_eq!(vars[0].value, "my_arg=override");
}

// 24: ARG without value is not in the RUN env; ARG BAR= is, as empty.
#[test]
fn empty_string_arg() {
    let p = ok("FROM busybox\nARG FOO\nARG BAR=\nRUN env\n");
    assert_eq!(run_env_arg(&p, 0, 2, "FOO"), None);
    assert_eq!(run_env_arg(&p, 0, 2, "BAR"), Some(""));
}

// 25: proxy build args need no ARG line and are not reported as unused.
#[test]
fn proxy_args() {
    let p = ok_with(
        "FROM busybox\nRUN env\n",
        &args(&[("http_proxy", "hp"), ("NO_PROXY", "np"), ("OTHER", "x")]),
    );
    assert_eq!(
        p.proxy_args,
        vec![
            ("http_proxy".into(), "hp".into()),
            ("NO_PROXY".into(), "np".into())
        ]
    );
    assert_eq!(
        run_env_arg(&p, 0, 0, "http_proxy"),
        None,
        "proxies stay out of the step's args"
    );
    assert_eq!(p.unused_build_args, vec!["OTHER".to_string()]);
}

// 26: TARGETSTAGE once declared.
#[test]
fn target_stage_arg() {
    let src = "FROM busybox AS foo\nARG TARGETSTAGE\nRUN echo $TARGETSTAGE\nFROM busybox\nARG TARGETSTAGE\nRUN x\n";
    let p = ok_with(src, &target("foo"));
    assert_eq!(run_env_arg(&p, 0, 1, "TARGETSTAGE"), Some("foo"));
    let p = ok(src);
    assert_eq!(run_env_arg(&p, 1, 1, "TARGETSTAGE"), Some("default"));
    let p = ok("FROM busybox\nRUN echo $TARGETSTAGE\n");
    assert_eq!(run_env_arg(&p, 0, 0, "TARGETSTAGE"), None);
}

// 27, 28: automatic platform args in global scope; in a stage only after ARG; overridable.
#[test]
fn platform_args() {
    let p = ok("FROM busybox AS build-linux\nRUN true\nFROM build-${TARGETOS}\n");
    assert_eq!(
        p.stages[1].base,
        Base::Stage {
            index: 0,
            name: "build-linux".into()
        }
    );
    let src = "FROM --platform=$BUILDPLATFORM busybox AS build\nARG TARGETPLATFORM\nARG TARGETOS\nRUN echo $TARGETPLATFORM $TARGETOS\n";
    let p = ok(src);
    assert_eq!(p.stages[0].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(run_env_arg(&p, 0, 2, "TARGETPLATFORM"), Some("linux/amd64"));
    assert_eq!(run_env_arg(&p, 0, 2, "TARGETOS"), Some("linux"));
    let p = ok_with(src, &args(&[("TARGETOS", "freebsd")]));
    assert_eq!(run_env_arg(&p, 0, 2, "TARGETOS"), Some("freebsd"));
}

// Issue 18: a plan per target platform. A stage on $BUILDPLATFORM stays the host's, a stage
// built on it inherits its platform, the others are the target's; base images are asked
// for the stage's platform.
#[test]
fn stage_platforms_for_a_foreign_target() {
    struct Asked(std::cell::RefCell<Vec<(String, String)>>);
    impl ImageResolver for Asked {
        fn resolve(&self, _: &str) -> Option<BaseImage> {
            panic!("the planner asks with the platform")
        }
        fn resolve_for(&self, r: &str, p: &str) -> Option<BaseImage> {
            self.0.borrow_mut().push((r.into(), p.into()));
            Some(BaseImage::default())
        }
    }
    let arm64 = plan::Platform {
        os: "linux".into(),
        arch: "arm64".into(),
        variant: String::new(),
    };
    let opts = PlanOptions {
        target_platform: arm64.clone(),
        ..PlanOptions::default()
    };
    let src = "FROM --platform=$BUILDPLATFORM golang AS build\nARG TARGETARCH\nRUN GOARCH=$TARGETARCH go build\n\
               FROM build AS tested\nRUN go test\n\
               FROM busybox\nARG TARGETPLATFORM\nCOPY --from=tested /out /out\nRUN echo $TARGETPLATFORM\n";
    let asked = Asked(Default::default());
    let p = plan(src, &opts, &asked).unwrap();
    assert_eq!(p.target_platform, arm64);
    assert_eq!(p.stage_platform(0), "linux/amd64");
    assert_eq!(
        p.stage_platform(1),
        "linux/amd64",
        "inherited from its base stage"
    );
    assert_eq!(p.stage_platform(2), "linux/arm64");
    assert_eq!(run_env_arg(&p, 0, 1, "TARGETARCH"), Some("arm64"));
    assert_eq!(run_env_arg(&p, 2, 2, "TARGETPLATFORM"), Some("linux/arm64"));
    assert_eq!(
        *asked.0.borrow(),
        vec![
            ("golang".to_string(), "linux/amd64".to_string()),
            ("busybox".to_string(), "linux/arm64".to_string())
        ]
    );
}

// 29: EXPOSE expansion with word splitting; bad protocols are errors.
#[test]
fn expose_expansion() {
    let p = ok("FROM scratch\nARG PORTS=\"3000 4000/udp\"\nEXPOSE $PORTS\nEXPOSE 5000\n");
    assert_eq!(
        step(&p, 0, 1),
        &Instruction::Expose {
            ports: vec!["3000/tcp".into(), "4000/udp".into()]
        }
    );
    assert_eq!(
        step(&p, 0, 2),
        &Instruction::Expose {
            ports: vec!["5000/tcp".into()]
        }
    );
    let d = err("FROM scratch\nEXPOSE 80/xyz\n");
    assert_eq!((d.kind, d.line, d.col), (ErrorKind::InvalidArguments, 2, 8));
    assert!(d.message.contains("xyz"));
}

// 30: % kept literally in ENV.
#[test]
fn env_percent() {
    let p = ok("FROM scratch\nENV myenv foo%sbar\n");
    assert_eq!(
        step(&p, 0, 0),
        &Instruction::Env {
            vars: vec![plan::KeyValue {
                key: "myenv".into(),
                value: "foo%sbar".into()
            }]
        }
    );
}

// 33, 34: ONBUILD declared in a stage fires in a stage built FROM it; its --from is a dependency.
#[test]
fn onbuild_in_file() {
    let p = ok("FROM busybox AS src\nRUN touch /f\nFROM busybox AS base\nONBUILD COPY --from=src /f /g\nFROM base AS mid\nRUN ls /g\n");
    assert_eq!(
        p.stages[1].onbuild,
        vec!["COPY --from=src /f /g".to_string()]
    );
    let mid = &p.stages[2];
    assert!(mid.steps[0].onbuild_trigger);
    assert!(matches!(mid.steps[0].instruction, Instruction::Copy(_)));
    assert_eq!(mid.depends_on, vec![0, 1]);
    // Triggers run once: a grandchild does not run them again.
    let p = ok("FROM busybox AS parent\nONBUILD RUN x\nFROM parent AS base\nRUN y\nFROM base AS child\nRUN z\n");
    assert_eq!(
        p.stages[1]
            .steps
            .iter()
            .filter(|s| s.onbuild_trigger)
            .count(),
        1
    );
    assert_eq!(
        p.stages[2]
            .steps
            .iter()
            .filter(|s| s.onbuild_trigger)
            .count(),
        0
    );
}

struct WithOnbuild;
impl ImageResolver for WithOnbuild {
    fn resolve(&self, r: &str) -> Option<BaseImage> {
        (r == "img").then(|| BaseImage {
            env: vec![("FROMIMG".into(), "yes".into())],
            onbuild: vec!["RUN echo trigger".into()],
        })
    }
}

// 31: triggers of a base image, and its Env, through the resolver; the stub marks them pending.
#[test]
fn base_image_through_resolver() {
    let src = "FROM img\nENV X=$FROMIMG\n";
    let p = plan(src, &PlanOptions::default(), &WithOnbuild).unwrap();
    assert!(p.stages[0].steps[0].onbuild_trigger);
    assert_eq!(p.stages[0].steps[1].display, "ENV X=yes");
    assert!(!p.stages[0].waits_on_base);
    let p = ok(src);
    assert!(p.stages[0].waits_on_base);
    assert_eq!(
        p.stages[0].steps[0].waits_on_base,
        vec!["FROMIMG".to_string()]
    );
}

// 36 (plan side): the last stage or the target is built; others are pruned with a reason.
#[test]
fn pruning_and_waves() {
    let src = "FROM busybox AS a\nRUN sleep 3\nFROM busybox AS b\nRUN sleep 3\nFROM busybox AS unused\nRUN sleep 5\nFROM scratch\nCOPY --from=a / /a\nCOPY --from=b / /b\n";
    let p = ok(src);
    assert_eq!(p.waves, vec![vec![0, 1], vec![3]]);
    assert!(!p.stages[2].needed);
    assert!(p.stages[2]
        .skip_reason
        .as_deref()
        .unwrap()
        .contains("not needed"));
    let p = ok_with(src, &target("a"));
    assert_eq!(p.waves, vec![vec![0]]);
    assert!(p.stages[3]
        .skip_reason
        .as_deref()
        .unwrap()
        .contains("after the target"));
}

// 40, 41: stage-name rules.
#[test]
fn stage_name_rules() {
    let d = err("FROM scratch AS 1bad\n");
    assert_eq!(
        (d.kind, d.line, d.col, d.width),
        (ErrorKind::InvalidStageName, 1, 17, 4)
    );
    let d = err("FROM scratch AS b@d\n");
    assert_eq!(d.kind, ErrorKind::InvalidStageName);
    let d = err("FROM scratch AS\n");
    assert_eq!(d.kind, ErrorKind::InvalidArguments);
    let d = err("FROM scratch foo bar\n");
    assert_eq!(d.kind, ErrorKind::InvalidArguments);
    let p = ok("FROM scratch AS b\nFROM scratch AS b\nFROM scratch AS context\n");
    assert!(p
        .warnings
        .iter()
        .any(|w| w.line == 2 && w.message.contains("DuplicateStageName")));
    assert!(p
        .warnings
        .iter()
        .any(|w| w.line == 3 && w.message.contains("ReservedStageName")));
    ok("FROM scratch as lower\n");
}

#[test]
fn unknown_instruction_and_flag() {
    let d = err("FROM scratch\nFNTRYPOINT [\"/bin/sh\", \"-c\", \"echo invalidinstruction\"]\n");
    assert_eq!(
        (d.kind, d.line, d.col, d.width),
        (ErrorKind::UnknownInstruction, 2, 1, 10)
    );
    assert_eq!(d.message, "unknown instruction: FNTRYPOINT");
    assert_eq!(d.hint.as_deref(), Some("did you mean ENTRYPOINT?"));
    let d = err("from scratch\nenv foo=bar\ncopy --foo=bar / /\nenv bar=baz\n");
    assert_eq!((d.kind, d.line, d.col), (ErrorKind::UnknownFlag, 3, 6));
    let d = err("FROM busybox\nCOPY --frm=x a b\n");
    assert_eq!(d.hint.as_deref(), Some("did you mean --from?"));
    let d = err("FROM busybox\nRUN --mount=type=nfs,target=/x true\n");
    assert_eq!((d.kind, d.line), (ErrorKind::InvalidFlag, 2));
}

#[test]
fn instructions_before_from() {
    let d = err("\nRUN true\nFROM scratch\n");
    assert_eq!((d.kind, d.line), (ErrorKind::InstructionBeforeFrom, 2));
}

#[test]
fn syntax_directive() {
    let p = ok("# syntax=docker/dockerfile:1\nFROM scratch\n");
    assert_eq!(p.syntax.as_deref(), Some("docker/dockerfile:1"));
    let d = err("# syntax=example.com/other/frontend:1\nFROM scratch\n");
    assert_eq!((d.kind, d.line), (ErrorKind::UnsupportedFrontend, 1));
}

#[test]
fn env_chains_through_stages() {
    let p =
        ok("FROM busybox AS base\nENV A=1\nFROM base AS mid\nLABEL x=y\nFROM mid\nENV B=${A}2\n");
    assert_eq!(p.stages[2].steps[0].display, "ENV B=12");
}

#[test]
fn run_mounts_and_heredoc_copy() {
    let p = ok("FROM busybox AS deps\nRUN true\nFROM busybox\nARG CACHE=/root/.cache\nRUN --mount=type=cache,target=$CACHE --mount=type=bind,from=deps,target=/d --mount=type=secret,id=tok true\nCOPY <<EOF /etc/x\nhello $CACHE\nEOF\n");
    let Instruction::Run(r) = step(&p, 1, 1) else {
        panic!()
    };
    assert_eq!(r.mounts[0].target.as_deref(), Some("/root/.cache"));
    assert_eq!(r.mounts[1].from.as_deref(), Some("deps"));
    assert!(r.mounts[1].readonly);
    assert_eq!(r.mounts[2].target.as_deref(), Some("/run/secrets/tok"));
    let kinds: Vec<MountKind> = r.mounts.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [MountKind::Cache, MountKind::Bind, MountKind::Secret]
    );
    // The kind serializes as the `type=` value (the engine's RUN cache key holds it).
    let json = serde_json::to_value(&r.mounts[0]).unwrap();
    assert_eq!(json["type"], "cache");
    assert_eq!(p.stages[1].depends_on, vec![0]);
    let Instruction::Copy(c) = step(&p, 1, 2) else {
        panic!()
    };
    assert_eq!(c.sources, vec!["<<EOF".to_string()]);
    assert_eq!(c.heredocs.len(), 1);
    assert_eq!(c.dest, "/etc/x");
}

#[test]
fn run_mount_display_is_the_spec_as_written() {
    // BuildKit names the step with the instruction as written (variables expanded): every
    // field of --mount, source= and id= included, in the Dockerfile's order.
    let p = ok("FROM busybox AS a\nRUN true\nFROM busybox\nARG S=/c\nRUN --mount=type=bind,from=a,source=$S,target=/mnt/c --mount=target=/k,id=x,type=cache cat /mnt/c\n");
    assert_eq!(
        p.stages[1].steps[1].display,
        "RUN --mount=type=bind,from=a,source=/c,target=/mnt/c --mount=target=/k,id=x,type=cache cat /mnt/c"
    );
    let Instruction::Run(r) = step(&p, 1, 1) else {
        panic!()
    };
    assert_eq!(r.mounts[0].source.as_deref(), Some("/c"));
}

#[test]
fn healthcheck_parsing() {
    let p = ok("FROM scratch\nHEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD [\"true\"]\nHEALTHCHECK NONE\n");
    let Instruction::Healthcheck(h) = step(&p, 0, 0) else {
        panic!()
    };
    assert_eq!(
        (h.interval, h.timeout, h.retries),
        (5_000_000_000, 2_000_000_000, 4)
    );
    let d = err("FROM scratch\nHEALTHCHECK --interval=5 CMD true\n");
    assert_eq!((d.kind, d.line), (ErrorKind::InvalidFlag, 2));
    let d = err("FROM scratch\nHEALTHCHECK BOGUS true\n");
    assert_eq!(d.kind, ErrorKind::InvalidArguments);
}

#[test]
fn diagnostics_render_with_file_line_col() {
    let d = err("FROM busybox:local\nCOPY --frm=x a b\nBOGUS x\n");
    let text = d.render("Dockerfile");
    assert!(
        text.starts_with("error: Dockerfile:2:6: unknown flag: --frm\n"),
        "{text}"
    );
    assert!(
        text.contains(" 2 | COPY --frm=x a b\n   |      ^^^^^^^\n"),
        "{text}"
    );
}

#[test]
fn copy_heredoc_expands_unless_quoted() {
    let p = ok(
        "FROM scratch\nARG V=1\nCOPY <<EOF /a\nv=$V \"q\" '$V'\nEOF\nCOPY <<'EOF' /b\nv=$V\nEOF\n",
    );
    let Instruction::Copy(a) = step(&p, 0, 1) else {
        panic!()
    };
    assert_eq!(a.heredocs[0].content, "v=1 \"q\" '1'\n");
    let Instruction::Copy(b) = step(&p, 0, 2) else {
        panic!()
    };
    assert_eq!(b.heredocs[0].content, "v=$V\n");
}

// Issue 10, item 5: expansion is bounded (1 MiB per value, 16 MiB per stage, 64 MiB per build).

/// `ARG`/`ENV` lines doubling a 16-byte value: line `n + 2` sets `{name}{n}` to 16·2ⁿ bytes.
fn doubling(keyword: &str, name: &str, lines: usize) -> String {
    let mut s = format!("FROM scratch\n{keyword} {name}0=0123456789abcdef\n");
    for i in 1..lines {
        s.push_str(&format!(
            "{keyword} {name}{i}=${{{name}{}}}${{{name}{}}}\n",
            i - 1,
            i - 1
        ));
    }
    s
}

/// A stage preamble that makes `$m` exactly 1 MiB (doubling ARGs, not counted twice).
const MIB_ARG: &str = "ARG m0=0123456789abcdef\nARG m1=$m0$m0\nARG m2=$m1$m1\nARG m3=$m2$m2\nARG m4=$m3$m3\nARG m5=$m4$m4\nARG m6=$m5$m5\nARG m7=$m6$m6\nARG m8=$m7$m7\nARG m9=$m8$m8\nARG m10=$m9$m9\nARG m11=$m10$m10\nARG m12=$m11$m11\nARG m13=$m12$m12\nARG m14=$m13$m13\nARG m15=$m14$m14\nARG m16=$m15$m15\nARG m=$m16\n";

fn too_large(d: &Diagnostic) -> String {
    assert_eq!(d.kind, ErrorKind::TooLarge, "{}", d.render("Dockerfile"));
    assert!(
        d.hint.as_deref().unwrap_or("").contains("1 MiB"),
        "{:?}",
        d.hint
    );
    d.render("Dockerfile")
}

#[test]
fn doubling_env_stops_at_one_mib() {
    // 16·2¹⁶ = 1 MiB is allowed; line 19 (a17) would be 2 MiB.
    let d = err(&doubling("ENV", "a", 39));
    let text = too_large(&d);
    assert_eq!((d.line, d.col, d.width), (19, 9, 12), "{text}");
    assert!(
        text.starts_with("error: Dockerfile:19:9: failed to process \"${a16}${a16}\": expanded value longer than 1 MiB (the limit for one expanded value) at $a16\n"),
        "{text}"
    );
    let p = ok(&doubling("ENV", "a", 17));
    assert_eq!(p.stages[0].env.last().unwrap().1.len(), 1 << 20);
}

#[test]
fn doubling_arg_stops_at_one_mib() {
    let d = err(&doubling("ARG", "b", 39));
    too_large(&d);
    assert_eq!((d.line, d.col), (19, 9));
    // Global ARGs too (the FROM comes last).
    let global = doubling("ARG", "g", 30).replace("FROM scratch\n", "") + "FROM scratch\n";
    let d = err(&global);
    too_large(&d);
    assert_eq!((d.line, d.col), (18, 9));
}

#[test]
fn nested_and_repeated_references_are_bounded() {
    for (word, var) in [
        // The substitution that produced the long value is named.
        ("${u:-${m}x}", "u"),
        ("\"$m\"$m", "m"),
        ("$m$m$m$m$m$m$m$m$m$m$m$m$m$m$m$m", "m"),
        ("${m//?/xx}", "m"),
        ("${u:-${u:-${u:-$m$m}}}", "m"),
    ] {
        let src = format!("FROM scratch\n{MIB_ARG}ENV x={word}\n");
        let d = err(&src);
        let text = too_large(&d);
        assert_eq!(d.line, 20, "{text}");
        assert!(text.contains(&format!("at ${var}")), "{text}");
    }
}

#[test]
fn many_env_in_one_instruction_hit_the_stage_limit() {
    let mut line = String::from("ENV");
    for i in 0..20 {
        line.push_str(&format!(" e{i}=$m"));
    }
    let d = err(&format!("FROM scratch\n{MIB_ARG}{line}\n"));
    let text = too_large(&d);
    assert_eq!(d.line, 20);
    assert!(
        text.contains("the stage's values would be more than 16 MiB (the limit for one stage)"),
        "{text}"
    );
    // ENV a=$b b=$a: both read the scope before the instruction, so nothing chains.
    let p = ok("FROM scratch\nENV a=1 b=2\nENV a=$b b=$a\n");
    assert_eq!(
        p.stages[0].env,
        vec![("a".into(), "2".into()), ("b".into(), "1".into())]
    );
}

#[test]
fn labels_through_args_hit_the_stage_limit() {
    // The same key over and over: the config's labels stay small but every LABEL is in the
    // history, so the stage's count grows.
    let labels = "LABEL x=$m\n".repeat(17);
    let d = err(&format!("FROM scratch\n{MIB_ARG}{labels}"));
    too_large(&d);
    assert!((20..=36).contains(&d.line), "{}", d.line);
}

#[test]
fn run_args_count_per_run() {
    let runs = "RUN true\n".repeat(20);
    let d = err(&format!("FROM busybox\n{MIB_ARG}{runs}"));
    let text = too_large(&d);
    assert!(text.contains("the ARG values this RUN records"), "{text}");
    // Only RUN steps carry the ARGs.
    let p = ok("FROM busybox\nARG a=1\nENV b=2\nRUN true\n");
    assert!(p.stages[0].steps[1].args.is_empty());
    assert_eq!(p.stages[0].steps[2].args, vec![("a".into(), "1".into())]);
}

#[test]
fn heredoc_expansion_is_bounded() {
    let d = err(&format!(
        "FROM scratch\n{MIB_ARG}COPY <<EOF /a\n$m$m\nEOF\n"
    ));
    let text = too_large(&d);
    assert!(text.contains("failed to expand heredoc EOF"), "{text}");
    // Quoted: not expanded, nothing to bound.
    ok(&format!(
        "FROM scratch\n{MIB_ARG}COPY <<'EOF' /a\n$m$m\nEOF\n"
    ));
}

#[test]
fn huge_build_args_are_refused_where_an_arg_takes_them() {
    let big = "x".repeat((1 << 20) + 1);
    let d = err_with(
        "FROM scratch\nARG small\nARG big\nRUN true\n",
        &args(&[("big", &big)]),
    );
    let text = too_large(&d);
    assert_eq!((d.line, d.col), (3, 5), "{text}");
    assert!(
        text.contains("build arg big is longer than 1 MiB (the limit for one value)"),
        "{text}"
    );
    // Unused, it harms nothing.
    ok_with("FROM scratch\n", &args(&[("big", &big)]));
    // 128 KiB (what one command-line argument can hold) doubled by ARGs.
    let arg = "y".repeat(128 << 10);
    let d = err_with(
        "FROM scratch\nARG big\nARG b1=$big$big\nARG b2=$b1$b1\nARG b3=$b2$b2\nARG b4=$b3$b3\n",
        &args(&[("big", &arg)]),
    );
    too_large(&d);
    assert_eq!(d.line, 6);
    // A proxy arg reaches every RUN without an ARG: refused up front.
    let d = err_with("FROM busybox\nRUN true\n", &args(&[("http_proxy", &big)]));
    assert_eq!((d.kind, d.line), (ErrorKind::TooLarge, 0));
}

struct BigEnv;
impl ImageResolver for BigEnv {
    fn resolve(&self, r: &str) -> Option<BaseImage> {
        (r == "big").then(|| BaseImage {
            env: (0..17)
                .map(|i| (format!("E{i}"), "z".repeat(1 << 20)))
                .collect(),
            onbuild: Vec::new(),
        })
    }
}

#[test]
fn a_base_image_env_counts_against_the_stage() {
    let d = plan("FROM big\nRUN true\n", &PlanOptions::default(), &BigEnv).unwrap_err();
    let text = too_large(&d);
    assert_eq!(d.line, 1);
    assert!(
        text.contains("the environment stage stage-0 starts with"),
        "{text}"
    );
}

#[test]
fn the_build_as_a_whole_is_bounded() {
    // Five stages of 13 MiB each (3 MiB of ARGs, 10 MiB of ENV), all needed: 65 MiB.
    let mut src = String::new();
    for s in 0..5 {
        src.push_str(&format!("FROM scratch AS s{s}\n{MIB_ARG}"));
        for i in 0..10 {
            src.push_str(&format!("ENV e{i}=$m\n"));
        }
    }
    src.push_str("FROM scratch\n");
    for s in 0..5 {
        src.push_str(&format!("COPY --from=s{s} /a /a{s}\n"));
    }
    let d = err(&src);
    let text = too_large(&d);
    assert!(
        text.contains("the build's values would be more than 64 MiB (the limit for one build)"),
        "{text}"
    );
    // Not needed, not expanded: the same stages without the COPYs plan.
    let last = src.find("COPY").unwrap();
    ok(&src[..last]);
}

#[test]
fn many_env_lines_keep_their_order_and_last_values() {
    let mut src = String::from("FROM scratch\n");
    for i in 0..20_000 {
        src.push_str(&format!("ENV v{}=x{i}\n", i % 7_000));
    }
    src.push_str("ENV last=$v0\n");
    let p = ok(&src);
    let env = &p.stages[0].env;
    assert_eq!(env.len(), 7_001);
    assert_eq!(env[0], ("v0".into(), "x14000".into()));
    assert_eq!(env[6_999], ("v6999".into(), "x13999".into()));
    assert_eq!(env[7_000], ("last".into(), "x14000".into()));
}

#[test]
fn onbuild_triggers_are_bounded_where_they_run() {
    // The base stage only declares the triggers (nothing expands there); the stage built on
    // it runs them and is refused, at the trigger's line.
    let triggers: String = MIB_ARG
        .lines()
        .map(|l| format!("ONBUILD {l}\n"))
        .collect::<String>()
        + "ONBUILD ENV x=$m$m\n";
    let src = format!("FROM scratch AS base\n{triggers}FROM base\n");
    let d = err(&src);
    let text = too_large(&d);
    assert_eq!((d.line, d.col), (20, 15), "{text}");
    assert!(text.contains("at $m"), "{text}");
    // The base stage alone plans.
    ok_with(&src, &target("base"));
}

fn recorded(p: &Plan, stage: usize, i: usize) -> Vec<(String, String)> {
    p.stages[stage].steps[i].recorded_args.clone()
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// Issue 11, item 1: a stage built FROM another stage starts with its ARG values (BuildKit
// keeps them in the stage's LLB environment). RUN sees them, expansions see them, the
// history line records only the stage's own ARGs, and the config's Env never gets them.
#[test]
fn stage_args_are_inherited_by_stages_built_from_it() {
    let src = "FROM busybox AS a\nARG X=fromA\nARG Y=ya\nRUN true\n\
               FROM a AS b\nARG Y\nRUN echo \"X=$X Y=$Y\" > /out\nENV E=$X\nLABEL l=$Y\nWORKDIR /w/$X\n\
               FROM b AS c\nARG Z=zc\nRUN echo $X $Y $Z\n";
    let p = ok(src);
    // b: the redeclared `ARG Y` takes a's value; X comes along without a line.
    assert_eq!(run_env_arg(&p, 1, 1, "X"), Some("fromA"));
    assert_eq!(run_env_arg(&p, 1, 1, "Y"), Some("ya"));
    assert_eq!(recorded(&p, 1, 1), kv(&[("Y", "ya")]));
    let Instruction::Env { vars } = step(&p, 1, 2) else {
        panic!()
    };
    assert_eq!(vars[0].value, "fromA");
    let Instruction::Label { labels } = step(&p, 1, 3) else {
        panic!()
    };
    assert_eq!(labels[0].value, "ya");
    assert_eq!(p.stages[1].steps[4].display, "WORKDIR /w/fromA");
    assert_eq!(p.stages[1].env, kv(&[("E", "fromA")]));
    // c, a grandchild: a's and b's ARGs, and its own; it records only Z.
    assert_eq!(run_env_arg(&p, 2, 1, "X"), Some("fromA"));
    assert_eq!(run_env_arg(&p, 2, 1, "Y"), Some("ya"));
    assert_eq!(run_env_arg(&p, 2, 1, "Z"), Some("zc"));
    assert_eq!(recorded(&p, 2, 1), kv(&[("Z", "zc")]));
    // a is unchanged: both its ARGs in its own history line.
    assert_eq!(recorded(&p, 0, 2), kv(&[("X", "fromA"), ("Y", "ya")]));
}

// A child's own default and a build arg win over the parent's value; a stage FROM an image
// inherits nothing; a build arg for the parent's ARG reaches the child through the parent.
#[test]
fn inherited_stage_args_and_overrides() {
    let src = "FROM busybox AS a\nARG X=fromA\nARG Y=ya\n\
               FROM a AS b\nARG X=fromB\nARG Y\nRUN echo $X $Y\n\
               FROM busybox AS other\nRUN echo $X $Y\n\
               FROM scratch\nCOPY --from=b /out /b\nCOPY --from=other /out /o\n";
    let p = ok(src);
    assert_eq!(run_env_arg(&p, 1, 2, "X"), Some("fromB"));
    assert_eq!(run_env_arg(&p, 1, 2, "Y"), Some("ya"));
    assert_eq!(recorded(&p, 1, 2), kv(&[("X", "fromB"), ("Y", "ya")]));
    assert_eq!(run_env_arg(&p, 2, 0, "X"), None);
    assert_eq!(run_env_arg(&p, 2, 0, "Y"), None);

    let p = ok_with(
        src,
        &PlanOptions {
            target: Some("b".into()),
            ..args(&[("Y", "cli"), ("X", "cliX")])
        },
    );
    assert_eq!(p.target, 1);
    // X: b's own ARG X takes the build arg; Y: the build arg wins over a's value.
    assert_eq!(run_env_arg(&p, 1, 2, "X"), Some("cliX"));
    assert_eq!(run_env_arg(&p, 1, 2, "Y"), Some("cli"));

    // A build arg for an ARG only the parent declares reaches the child's RUN.
    let p = ok_with(
        "FROM busybox AS a\nARG X=fromA\nFROM a\nRUN echo $X\n",
        &args(&[("X", "cli")]),
    );
    assert_eq!(run_env_arg(&p, 1, 0, "X"), Some("cli"));
    assert!(recorded(&p, 1, 0).is_empty());
    assert!(p.unused_build_args.is_empty());
}

// A parent's ONBUILD trigger runs in the child with the parent's ARG values; a re-declared
// ARG without a value keeps the value an earlier ARG of the same stage gave it.
#[test]
fn inherited_stage_args_reach_onbuild_triggers() {
    let src = "FROM busybox AS a\nARG X=fromA\nONBUILD RUN echo $X\nFROM a AS b\nRUN true\n";
    let p = ok(src);
    let trig = &p.stages[1].steps[0];
    assert!(trig.onbuild_trigger);
    assert_eq!(run_env_arg(&p, 1, 0, "X"), Some("fromA"));
    assert!(trig.recorded_args.is_empty());

    let p = ok("FROM busybox\nARG Y=1\nARG Y\nRUN true\n");
    assert_eq!(run_env_arg(&p, 0, 2, "Y"), Some("1"));
}

// The history line lists every ARG line of the stage in order, repeats included, with the
// value the step sees (an ENV of the same name first) or empty (Docker 20.10's BuildKit:
// `RUN |4 Q= A=1 B=2 A=1 /bin/sh -c true`, and `|2 X=fromB Y=envY` below).
#[test]
fn run_history_lists_each_arg_line() {
    let p = ok("FROM busybox\nARG Q\nARG A=1\nARG B=2\nARG A\nRUN true\n");
    assert_eq!(
        recorded(&p, 0, 4),
        kv(&[("Q", ""), ("A", "1"), ("B", "2"), ("A", "1")])
    );
    assert_eq!(run_env_arg(&p, 0, 4, "Q"), None);
    let p = ok("FROM busybox AS a\nARG X=fromA\nARG Y=ya\n\
                FROM a AS b\nARG X=fromB\nARG Y\nENV Y=envY\nRUN true\n");
    assert_eq!(recorded(&p, 1, 3), kv(&[("X", "fromB"), ("Y", "envY")]));
}

// A value-less `ARG G` in the child imports the global ARG G, over the parent's value
// (Docker 20.10's BuildKit: `G=global H=h`, history `RUN |1 G=global ...`).
#[test]
fn global_arg_import_wins_over_the_parent_stage_value() {
    let p = ok("ARG G=global\nFROM busybox AS a\nARG G=p\nARG H=h\n\
                FROM a AS b\nARG G\nRUN echo $G $H\n");
    assert_eq!(run_env_arg(&p, 1, 1, "G"), Some("global"));
    assert_eq!(run_env_arg(&p, 1, 1, "H"), Some("h"));
    assert_eq!(recorded(&p, 1, 1), kv(&[("G", "global")]));
}

// Within a stage the later of an ENV and an ARG of the same name wins for RUN and expansions
// (Docker 20.10's BuildKit: `ENV P=penv` then `ARG P=parg` gives `P=parg` to RUN and LABEL,
// the config keeps `P=penv`); a stage built FROM it starts with the Env over the ARG.
#[test]
fn a_later_arg_wins_over_an_env_of_the_same_name() {
    let p = ok(
        "FROM busybox AS a\nENV P=penv\nARG P=parg\nRUN true\nLABEL p=$P\n\
                ENV Q=q1\nARG Q=qarg\nENV Q=q2\nRUN true\n\
                FROM a AS b\nRUN true\nLABEL p=$P\n",
    );
    assert_eq!(run_env_arg(&p, 0, 2, "P"), Some("parg"));
    assert_eq!(recorded(&p, 0, 2), kv(&[("P", "parg")]));
    assert_eq!(p.stages[0].steps[3].display, "LABEL p=parg");
    assert_eq!(run_env_arg(&p, 0, 7, "Q"), None);
    assert_eq!(recorded(&p, 0, 7), kv(&[("P", "parg"), ("Q", "q2")]));
    assert_eq!(p.stages[0].env, kv(&[("P", "penv"), ("Q", "q2")]));
    assert_eq!(run_env_arg(&p, 1, 0, "P"), None);
    assert_eq!(p.stages[1].steps[1].display, "LABEL p=penv");
}

/// A resolver that records what it was asked; `onbuild` images carry a trigger that copies
/// from stage `extra`.
#[derive(Default)]
struct Recording(std::cell::RefCell<Vec<String>>);

impl ImageResolver for Recording {
    fn resolve(&self, r: &str) -> Option<BaseImage> {
        self.0.borrow_mut().push(r.to_string());
        Some(BaseImage {
            env: Vec::new(),
            onbuild: if r == "onbuild" {
                vec!["COPY --from=extra /x /x".into()]
            } else {
                Vec::new()
            },
        })
    }
}

#[test]
fn only_needed_base_images_are_resolved_once_each() {
    let r = Recording::default();
    let src = "FROM a AS one\nFROM b AS unused\nFROM a AS two\nCOPY --from=one / /\n";
    plan(src, &PlanOptions::default(), &r).unwrap();
    assert_eq!(*r.0.borrow(), ["a", "a"], "b is not needed: never asked");
}

#[test]
fn a_dockerfile_that_cannot_build_resolves_nothing() {
    for src in [
        "FROM a AS x\nCOPY --from=y / /\nFROM b AS y\nCOPY --from=x / /\n",
        "FROM a\nCOPY --from=later / /\nFROM b AS later\n",
        "FROM a\nCOPY --from=$X / /\n",
    ] {
        let r = Recording::default();
        assert!(plan(src, &PlanOptions::default(), &r).is_err(), "{src}");
        assert!(r.0.borrow().is_empty(), "{src}: asked {:?}", r.0.borrow());
    }
}

#[test]
fn a_base_images_onbuild_trigger_links_the_stage_it_copies_from() {
    let r = Recording::default();
    let src = "FROM e AS extra\nFROM onbuild\nRUN true\n";
    let p = plan(src, &PlanOptions::default(), &r).unwrap();
    assert!(
        p.stages[0].needed,
        "the trigger's COPY --from=extra needs stage 0"
    );
    assert_eq!(p.stages[1].depends_on, [0]);
    assert!(p.stages[1].steps[0].onbuild_trigger);
    assert_eq!(*r.0.borrow(), ["onbuild", "e"]);
}
