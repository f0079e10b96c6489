//! `strata compose config`: the built binary on a project in a temp dir: YAML and JSON
//! output, `--services`/`--volumes`/`--profiles`/`--images`, `-q`, `-o`, `-p`, `--profile`,
//! `--env-file`, the obsolete-`version` warning, a located error (exit 1) and a usage error
//! (exit 125). The model itself is tested in `crates/compose/tests/`.

use crate::common::strata_in as strata;

const PROJECT: &str = r#"version: "3.8"
services:
  web:
    build: .
    ports: ["${PORT:-8080}:80"]
    depends_on: [db]
  db:
    image: postgres:16
    volumes: ["data:/var/lib/postgresql/data"]
  debug:
    image: busybox
    profiles: [debug]
volumes:
  data: {}
"#;

#[test]
fn compose_config() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("Demo App");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("compose.yaml"), PROJECT).expect("write");
    std::fs::write(dir.join("ports.env"), "PORT=9000\n").expect("write");
    let shown = dir.display().to_string();

    let (code, out, err) = strata(&dir, &["compose", "config"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("name: demoapp\nservices:\n  db:\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "    build:\n      context: {shown}\n      dockerfile: Dockerfile\n"
        )),
        "{out}"
    );
    assert!(
        out.contains("      target: 80\n      published: \"8080\"\n"),
        "{out}"
    );
    assert!(
        out.contains("networks:\n  default:\n    name: demoapp_default\n"),
        "{out}"
    );
    assert!(
        !out.contains("debug:"),
        "an inactive profile's service is left out: {out}"
    );
    assert_eq!(
        err,
        format!("WARN[0000] compose.yaml: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion\n")
    );

    let (code, out, _) = strata(
        &dir,
        &[
            "compose",
            "--env-file",
            "ports.env",
            "-p",
            "other",
            "config",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["name"], "other");
    assert_eq!(v["services"]["web"]["ports"][0]["published"], "9000");
    assert_eq!(v["volumes"]["data"]["name"], "other_data");

    let lines = |args: &[&str]| {
        let (code, out, err) = strata(&dir, args);
        assert_eq!(code, 0, "{err}");
        out
    };
    assert_eq!(lines(&["compose", "config", "--services"]), "db\nweb\n");
    assert_eq!(
        lines(&["compose", "--profile", "debug", "config", "--services"]),
        "db\ndebug\nweb\n"
    );
    assert_eq!(lines(&["compose", "config", "--volumes"]), "data\n");
    assert_eq!(lines(&["compose", "config", "--profiles"]), "debug\n");
    assert_eq!(
        lines(&["compose", "config", "--images"]),
        "postgres:16\ndemoapp-web\n"
    );
    assert_eq!(lines(&["compose", "config", "-q"]), "");
    assert_eq!(lines(&["compose", "config", "-o", "out.yaml"]), "");
    let written = std::fs::read_to_string(dir.join("out.yaml")).expect("-o wrote");
    assert!(written.starts_with("name: demoapp\n"), "{written}");

    // A located error: file, line, column, key path; exit 1.
    std::fs::write(
        dir.join("bad.yaml"),
        "services:\n  web:\n    image: x\n    prots: [80]\n",
    )
    .expect("write");
    let (code, _, err) = strata(&dir, &["compose", "-f", "bad.yaml", "config"]);
    assert_eq!(code, 1);
    assert_eq!(err, "error: bad.yaml:4:5: services.web.prots: additional property not allowed — did you mean ports?\n");

    // A usage error: 125, as docker.
    let (code, _, err) = strata(&dir, &["compose", "config", "--format", "toml"]);
    assert_eq!(code, 125, "{err}");
    assert!(!dir.join("store").exists(), "compose config opens no store");
}
