//! Issue 10, item 5: unbounded expansion. An 828-byte Dockerfile of doubling ENV lines used
//! to exhaust memory in `plan` and `build` (an abort). Expansion is bounded now: 1 MiB per
//! expanded value (and per build arg value), 16 MiB per stage, 64 MiB per build; past a
//! limit the frontend reports `error: FILE:LINE:COL: ...` and exits 1, with nothing tagged
//! and the store consistent. Every command here runs under `prlimit --as=1GiB`, so a
//! regression shows as an abort instead of eating the machine's memory.

use std::path::Path;
use std::process::Output;

use super::guard::{after, Canary};
use crate::common::Env;

/// The address-space limit the attacked commands run under.
const AS_LIMIT: &str = "--as=1073741824";

/// `strata --root STORE args...` under `prlimit --as=1GiB`.
fn limited(env: &Env, args: &[&str]) -> Output {
    let mut c = std::process::Command::new("prlimit");
    c.arg(AS_LIMIT)
        .arg(strata_tests::strata_bin())
        .arg("--root")
        .arg(env.root())
        .args(args);
    c.output().expect("run prlimit (util-linux)")
}

/// Requires exit code 1 (not an abort or a signal); returns stderr.
fn refused(env: &Env, args: &[&str]) -> String {
    let o = limited(env, args);
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(
        o.status.code(),
        Some(1),
        "strata {args:?} should fail with 1, got {}:\n{stderr}",
        o.status
    );
    stderr
}

/// A context directory holding `Dockerfile` with `text`; returns its path.
fn context(env: &Env, text: &str) -> String {
    let dir = env.path("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), text).unwrap();
    dir.to_str().unwrap().to_string()
}

/// `plan` and `build -t NAME` both refuse the context with `line` (after `error: `) as the
/// first line of stderr and `caret` under it; nothing is tagged and the store is
/// consistent. Extra arguments (build args) go to both commands.
fn both_refuse(env: &Env, ctx: &str, extra: &[&str], line: &str, caret: &str) {
    let file = Path::new(ctx).join("Dockerfile");
    let expected = format!("error: {}:{line}", file.display());
    for cmd in ["plan", "build"] {
        let mut args = vec![cmd];
        if cmd == "build" {
            args.extend(["-t", "expansion:attack"]);
        }
        args.extend(extra);
        args.push(ctx);
        let stderr = refused(env, &args);
        let mut lines = stderr.lines();
        assert_eq!(lines.next(), Some(expected.as_str()), "{cmd}:\n{stderr}");
        lines.next();
        assert_eq!(lines.next(), Some(caret), "{cmd}:\n{stderr}");
        assert!(
            stderr.contains("hint: strata limits one expanded value to 1 MiB, a stage's values to 16 MiB and a build's to 64 MiB"),
            "{cmd}:\n{stderr}"
        );
    }
    let images = env.ok(&["images"]);
    assert!(!images.contains("expansion"), "tagged anyway:\n{images}");
    env.fsck_clean();
}

/// `{keyword} {name}N=${name(N-1)}${name(N-1)}` for N in 1..lines, after `{name}0` of 16
/// bytes: line N+2 would be 16·2ᴺ bytes.
fn doubling(keyword: &str, name: &str, lines: usize) -> String {
    let mut s = format!("{keyword} {name}0=0123456789abcdef\n");
    for i in 1..lines {
        let p = i - 1;
        s.push_str(&format!(
            "{keyword} {name}{i}=${{{name}{p}}}${{{name}{p}}}\n"
        ));
    }
    s
}

/// ARG lines that leave `$m` at exactly 1 MiB (lines 2..=19 after a FROM on line 1).
fn mib_arg() -> String {
    doubling("ARG", "m", 17) + "ARG m=$m16\n"
}

#[test]
fn doubling_env_is_refused_by_plan_and_build() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    // The file: 39 doubling ENV lines, 827 bytes.
    let text = format!("FROM scratch\n{}", doubling("ENV", "a", 40));
    assert!(text.len() < 900, "{}", text.len());
    let ctx = context(&env, &text);
    both_refuse(
        &env,
        &ctx,
        &[],
        "19:9: failed to process \"${a16}${a16}\": expanded value longer than 1 MiB (the limit for one expanded value) at $a16",
        "    |         ^^^^^^^^^^^^",
    );
    after(&canary, &env);
}

#[test]
fn doubling_arg_is_refused_in_global_and_stage_scope() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    let ctx = context(
        &env,
        &format!("FROM scratch\n{}RUN true\n", doubling("ARG", "b", 40)),
    );
    both_refuse(
        &env,
        &ctx,
        &[],
        "19:9: failed to process \"${b16}${b16}\": expanded value longer than 1 MiB (the limit for one expanded value) at $b16",
        "    |         ^^^^^^^^^^^^",
    );
    let ctx = context(&env, &format!("{}FROM scratch\n", doubling("ARG", "g", 40)));
    both_refuse(
        &env,
        &ctx,
        &[],
        "18:9: failed to process \"${g16}${g16}\": expanded value longer than 1 MiB (the limit for one expanded value) at $g16",
        "    |         ^^^^^^^^^^^^",
    );
    after(&canary, &env);
}

#[test]
fn a_huge_build_arg_doubled_is_refused() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    // 120 KiB: about what one command-line argument may hold (MAX_ARG_STRLEN is 128 KiB).
    let big = format!("big={}", "y".repeat(120 << 10));
    let ctx = context(
        &env,
        "FROM scratch\nARG big\nARG b1=$big$big\nARG b2=$b1$b1\nARG b3=$b2$b2\nARG b4=$b3$b3\nRUN true\n",
    );
    both_refuse(
        &env,
        &ctx,
        &["--build-arg", &big],
        "6:8: failed to process \"$b3$b3\": expanded value longer than 1 MiB (the limit for one expanded value) at $b3",
        "   |        ^^^^^^",
    );
    after(&canary, &env);
}

#[test]
fn many_env_in_one_instruction_hit_the_stage_limit() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    let mut line = String::from("ENV");
    for i in 0..20 {
        line.push_str(&format!(" e{i}=$m"));
    }
    // 3 MiB of ARGs (less 16 bytes), then 12 × 1 MiB and the names fit, the 13th `$m` does
    // not. The caret marks the first `$m` of the line: the locator finds a word by its text.
    let ctx = context(&env, &format!("FROM scratch\n{}{line}\n", mib_arg()));
    both_refuse(
        &env,
        &ctx,
        &[],
        "20:8: failed to process \"$m\": the stage's values would be more than 16 MiB (the limit for one stage)",
        "    |        ^^",
    );
    after(&canary, &env);
}

#[test]
fn labels_doubled_through_args_hit_the_stage_limit() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    // One key over and over: the labels stay 1 MiB, the history would not.
    let labels = "LABEL x=$m\n".repeat(20);
    let ctx = context(&env, &format!("FROM scratch\n{}{labels}", mib_arg()));
    both_refuse(
        &env,
        &ctx,
        &[],
        "33:9: failed to process \"$m\": the stage's values would be more than 16 MiB (the limit for one stage)",
        "    |         ^^",
    );
    after(&canary, &env);
}

#[test]
fn a_copy_heredoc_is_bounded() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    let ctx = context(
        &env,
        &format!("FROM scratch\n{}COPY <<EOF /a\n${{m}}x\nEOF\n", mib_arg()),
    );
    both_refuse(
        &env,
        &ctx,
        &[],
        "20:1: failed to expand heredoc EOF: expanded value longer than 1 MiB (the limit for one expanded value) at $m",
        "    | ^^^^^^^^^^^^^",
    );
    after(&canary, &env);
}

#[test]
fn a_costly_pattern_is_refused() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    // 64 KiB of `a` against `b` and 2,000 `*`: about 2^27 matcher steps, hours unbounded
    // with a longer pattern; the word's budget is 2^24.
    let mut text = String::from("FROM scratch\nARG a0=aaaaaaaaaaaaaaaa\n");
    for i in 1..13 {
        text.push_str(&format!("ARG a{i}=$a{p}$a{p}\n", p = i - 1));
    }
    let word = format!("${{a12%%b{}}}", "*".repeat(2000));
    text.push_str(&format!("ENV x={word}\n"));
    let ctx = context(&env, &text);
    let file = Path::new(&ctx).join("Dockerfile");
    for cmd in ["plan", "build"] {
        let stderr = refused(&env, &[cmd, &ctx]);
        assert_eq!(
            stderr.lines().next(),
            Some(
                format!(
                    "error: {}:15:7: failed to process {word:?}: pattern matching takes too many steps",
                    file.display()
                )
                .as_str()
            ),
            "{stderr}"
        );
        assert!(
            stderr.contains("hint: strata limits the pattern operators"),
            "{stderr}"
        );
    }
    env.fsck_clean();
    after(&canary, &env);
}

#[test]
fn many_env_lines_build_with_every_value() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let canary = Canary::new(env.dir.path());
    let mut text = String::from("FROM scratch\n");
    for i in 0..20_000 {
        text.push_str(&format!("ENV v{}=x{i}\n", i % 15_000));
    }
    text.push_str("ENV last=$v0\n");
    let ctx = context(&env, &text);
    let o = limited(&env, &["build", "-q", "-t", "expansion:many", &ctx]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = env.ok(&["inspect", "expansion:many"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let envs: Vec<&str> = v[0]["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(envs.len(), 15_002, "PATH, v0..v14999, last");
    assert!(envs[0].starts_with("PATH="), "{}", envs[0]);
    assert_eq!(envs[1], "v0=x15000");
    assert_eq!(envs[5_000], "v4999=x19999");
    assert_eq!(envs[5_001], "v5000=x5000");
    assert_eq!(envs[15_001], "last=x15000");
    env.fsck_clean();
    after(&canary, &env);
}
