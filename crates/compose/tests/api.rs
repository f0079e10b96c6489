//! The public API the orchestration uses: start order, replicas, image names, typed fields.

use std::path::{Path, PathBuf};
use std::time::Duration;

fn load(case: &str, files: &[&str]) -> compose::Project {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case);
    compose::load(&compose::Options {
        files: files.iter().map(PathBuf::from).collect(),
        environment: [("HOME".to_string(), dir.join("home").display().to_string())].into(),
        working_dir: Some(dir),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn start_order_follows_depends_on_then_names() {
    let p = load("depends-health", &[]);
    assert_eq!(p.start_order(), ["db", "migrate", "app", "nocheck"]);
    let app = &p.services["app"];
    assert_eq!(app.replicas(), 3);
    assert_eq!(app.depends_on["db"].condition, "service_healthy");
    assert!(app.depends_on["db"].restart);
    assert!(
        !app.depends_on.contains_key("optional"),
        "an optional missing dependency is dropped"
    );
    assert_eq!(app.stop_grace_period, Some(Duration::from_secs(90)));
    let limits = app
        .deploy
        .as_ref()
        .unwrap()
        .resources
        .as_ref()
        .unwrap()
        .limits
        .as_ref()
        .unwrap();
    assert_eq!(
        (limits.cpus, limits.memory, limits.pids),
        (Some(1.5), Some(1 << 30), Some(100))
    );
    let hc = p.services["db"].healthcheck.as_ref().unwrap();
    assert_eq!(hc.start_interval, Some(Duration::from_millis(500)));
    assert_eq!(hc.test, ["CMD-SHELL", "pg_isready -U postgres"]);
    assert_eq!(p.services["migrate"].replicas(), 1);
}

#[test]
fn images_and_paths() {
    let p = load("tutorial", &[]);
    assert_eq!(p.images(), ["tutorial-app-dev", "tutorial-app-prod"]);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tutorial");
    assert_eq!(p.working_dir, dir);
    let v = &p.services["app-dev"].volumes[0];
    assert_eq!(
        (v.kind.as_str(), v.source.as_deref()),
        ("bind", dir.to_str())
    );
    assert_eq!(p.files, [dir.join("compose.yaml")]);
    assert_eq!(p.warnings.len(), 1);
}

#[test]
fn json_round_trips_through_the_model() {
    let p = load("networks-secrets", &[]);
    let json = p.to_json();
    let back: compose::Project = serde_json::from_str(&json).unwrap();
    assert_eq!(back.services, p.services);
    assert_eq!(back.networks, p.networks);
    assert_eq!(
        p.services["back"].other["privileged"],
        serde_json::json!(true)
    );
}

#[test]
fn project_name_normalisation() {
    assert_eq!(compose::normalize_project_name("My_App.v2"), "my_appv2");
    assert_eq!(compose::normalize_project_name("-_Foo Bar"), "foobar");
}
