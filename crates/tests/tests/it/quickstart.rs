//! The README's quick start, run verbatim: its marked block is taken from README.md and run
//! with bash in an empty directory, `sudo` being a pass-through (the tests run as root) and
//! `strata` the binary under test on a private store.

use std::os::unix::fs::PermissionsExt;

use crate::common::Env;

/// The shell block between `<!-- quickstart -->` and `<!-- /quickstart -->`.
fn quickstart_block() -> String {
    let readme = std::fs::read_to_string(strata_tests::repo_root().join("README.md")).unwrap();
    let start = readme
        .find("<!-- quickstart -->")
        .expect("README has a quickstart block");
    let end = readme
        .find("<!-- /quickstart -->")
        .expect("the quickstart block ends");
    let block = &readme[start..end];
    let body = block
        .split_once("```sh\n")
        .and_then(|(_, b)| b.rsplit_once("```"))
        .map(|(b, _)| b)
        .expect("a ```sh block in the quickstart");
    body.to_string()
}

#[test]
fn readme_quick_start_runs_verbatim() {
    strata_tests::require!(Root, Busybox);
    let env = Env::new();
    let work = env.path("work");
    let bin = env.path("bin");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    let shim = |name: &str, body: String| {
        let p = bin.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    shim("sudo", "#!/bin/sh\nexec \"$@\"\n".into());
    shim(
        "strata",
        format!("#!/bin/sh\nexec {} \"$@\"\n", strata_tests::strata_bin()),
    );
    let script = env.path("quickstart.sh");
    std::fs::write(&script, format!("set -eu\n{}", quickstart_block())).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = std::process::Command::new("bash")
        .arg(&script)
        .current_dir(&work)
        .env("PATH", path)
        .env("STRATA_ROOT", env.root())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "the quick start failed:\n{out}\n{err}");
    assert!(out.contains("hello from a multi-stage build\n"), "{out}");
    assert!(
        out.contains("REPOSITORY") && out.contains("hello "),
        "{out}"
    );
    // The build stage holds 8 MiB the final image does not: the comparison says so.
    let line = out
        .lines()
        .find(|l| l.starts_with("hello:build ") && l.contains('→'))
        .unwrap_or_else(|| panic!("no comparison line:\n{out}"));
    assert!(line.contains("smaller"), "{line}");
}
