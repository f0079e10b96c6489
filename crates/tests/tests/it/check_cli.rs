//! `strata check`: docker build --check's output and exit status, the context's
//! `.dockerignore`, `-f`, `--build-arg`, and no store created.

use crate::common::strata_in as strata;

#[test]
fn check_command() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY app /app\nCMD [\"/app\"]\n",
    )
    .expect("write");
    let (code, out, _) = strata(dir, &["check"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "Check complete, no warnings found.\n")
    );

    // The context's .dockerignore is read.
    std::fs::write(dir.join(".dockerignore"), "app\n").expect("write");
    let (code, out, _) = strata(dir, &["check", "."]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with("Check complete, 1 warning has been found!\n"),
        "{out}"
    );
    assert!(out.contains("WARNING: CopyIgnoredFile - https://docs.docker.com/go/dockerfile/rule/copy-ignored-file/\nAttempting to Copy file \"app\" that is excluded by .dockerignore\nDockerfile:2\n"), "{out}");

    // -f names the file in the frame; error=true through the build arg makes it an error.
    std::fs::write(dir.join("Other"), "from scratch AS x\nCOPY app /app\n").expect("write");
    let (code, out, err) = strata(
        dir,
        &[
            "check",
            "-f",
            "Other",
            "--build-arg",
            "BUILDKIT_DOCKERFILE_CHECK=error=true;skip=CopyIgnoredFile",
            ".",
        ],
    );
    assert_eq!(code, 1);
    assert!(out.contains("\nOther:1\n"), "{out}");
    assert!(
        out.contains("Check complete, 2 warnings have been found!"),
        "{out}"
    );
    assert!(
        err.contains("ERROR: lint violation found for rules: "),
        "{err}"
    );
    assert!(!dir.join("store").exists(), "a check creates no store");
}

/// `strata/ToolchainFinalStage` with the base image in the store: its layers are read, so
/// an image of any name holding GCC's and Go's trees fires with their size, and a
/// golang-named image without them does not.
#[test]
fn toolchain_rule_measures_the_base_in_the_store() {
    strata_tests::require!(Root);
    let env = crate::common::Env::new();
    let mk = |name: &str, files: &[(&str, usize)]| {
        let d = env.path(&format!("rootfs-{}", name.replace([':', '/'], "-")));
        for (f, size) in files {
            let p = d.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, vec![b'x'; *size]).unwrap();
        }
        let tar = d.with_extension("tar");
        crate::common::tool(
            "tar",
            &["-C", d.to_str().unwrap(), "-cf", tar.to_str().unwrap(), "."],
        );
        env.ok(&["import", tar.to_str().unwrap(), name]);
    };
    mk(
        "mytools:1",
        &[
            ("usr/lib/gcc/x86_64-linux-gnu/12/cc1", 3_000_000),
            ("usr/local/go/bin/go", 2_000_000),
            ("etc/os-release", 1_000_000),
        ],
    );
    mk("golang:1.22", &[("etc/os-release", 1_000)]);
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let check = |base: &str| {
        std::fs::write(ctx.join("Dockerfile"), format!("FROM {base}\nUSER 1\n")).unwrap();
        let o = env.run(&["check", "--practices", ctx.to_str().unwrap()]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = check("mytools:1");
    assert!(
        out.contains("The final stage is based on mytools:1, a full toolchain image (gcc, go: 5MB of its 6MB, which the final image would lose)"),
        "{out}"
    );
    let out = check("golang:1.22");
    assert!(!out.contains("ToolchainFinalStage"), "{out}");
}
