//! BuildKit's own Dockerfile tests (conformance/buildkit-cases: 53 images to match
//! and 19 builds that must fail), run by its run.sh against this strata binary. Cases that
//! do not pass yet are listed in buildkit-known-failing.txt; the test fails on any failure
//! that is not listed, and on a listed case that now passes (so the list only shrinks).
//!
//! run.sh's `bk_prep_ctx` (tools/common.sh) copies each case's context (its symbolic links
//! are committed as links) to a temporary directory, so the cases run in place, read-only.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

#[test]
fn buildkit_cases() {
    strata_tests::require!(Root, PeersData, Python3);
    // run.sh runs strata without an Env: hold the share of the e2e lock an Env would.
    let _e2e = crate::common::share();
    let dir = strata_tests::repo_root().join("conformance/buildkit-cases");
    assert!(
        dir.join("run.sh").exists(),
        "{} is missing from the checkout",
        dir.display()
    );
    let tarball = Path::new("/var/tmp/strata-peers/busybox-rootfs.tar");
    assert!(
        tarball.exists(),
        "{} is missing: run scripts/peers.sh",
        tarball.display()
    );
    let out = Command::new("bash")
        .arg(dir.join("run.sh"))
        .env("STRATA_BIN", strata_tests::strata_bin())
        .output()
        .expect("run run.sh");
    check_run(&out);
}

/// Judge run.sh's output against buildkit-known-failing.txt (shared with the rootless run).
pub(crate) fn check_run(out: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stdout.lines().last().unwrap_or("");
    assert!(
        last.starts_with("BuildKit test cases passed: "),
        "run.sh did not finish:\n{stdout}\n{stderr}"
    );
    let failing: BTreeSet<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("--- "))
        .map(|s| s.trim().to_string())
        .collect();
    let known: BTreeSet<String> = include_str!("buildkit-known-failing.txt")
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    println!("{last}");
    println!("known failing: {}", known.len());
    let new_failures: Vec<&String> = failing.difference(&known).collect();
    let now_passing: Vec<&String> = known.difference(&failing).collect();
    if !new_failures.is_empty() {
        // Show the runner's details for the new failures.
        let mut show = false;
        for l in stdout.lines() {
            if let Some(n) = l.strip_prefix("--- ") {
                show = new_failures.iter().any(|f| f.as_str() == n.trim());
            }
            if show {
                println!("{l}");
            }
        }
    }
    assert!(
        new_failures.is_empty(),
        "cases failing that are not in buildkit-known-failing.txt: {new_failures:?}"
    );
    assert!(
        now_passing.is_empty(),
        "cases in buildkit-known-failing.txt that pass now (remove them from the list): {now_passing:?}"
    );
}
