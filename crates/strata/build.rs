//! Build facts for `strata version`: the git commit and its date, and the compiler's version.
//! Anything that cannot be found (a source tarball, no git) is "unknown"; nothing fails.

use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    let s = String::from_utf8(o.stdout).ok()?.trim().to_string();
    (o.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = run(&rustc, &["--version"]).unwrap_or_else(|| "unknown".into());
    let commit =
        run("git", &["rev-parse", "--short=7", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // The commit's time, not the build's: the same source gives the same binary.
    let time = run("git", &["log", "-1", "--format=%ct"]).unwrap_or_default();
    println!("cargo:rustc-env=STRATA_RUSTC_VERSION={rustc_version}");
    println!("cargo:rustc-env=STRATA_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=STRATA_GIT_TIME={time}");
    // A new commit or checkout changes these.
    if let Some(git_dir) = run("git", &["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        if let Some(r) = run("git", &["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={git_dir}/{r}");
        }
        println!("cargo:rerun-if-changed={git_dir}/packed-refs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
