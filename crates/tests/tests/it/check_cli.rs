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
