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

#[test]
fn yaml_output_reads_back_as_the_same_model() {
    // Every golden project, plus strings that YAML would read as something else unquoted.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        if name == "discovery-name" {
            continue; // needs its `cwd`
        }
        let p = load_env(&name);
        let back: serde_json::Value = serde_saphyr::from_str(&p.to_yaml()).unwrap();
        assert_eq!(back, p.to_json_value(), "{name}");
    }
    let tricky = [
        "yes", "no", "on", "off", "y", "n", "true", "null", "~", "", "1.0", "0x1F", "1e3", "0o7",
        "010", "- x", "a: b", "#c", "*x", "&y", "!t", "'q'", "\"d\"", "%x", "@x", "`x", "x #y",
        " lead", "trail ", "a\nb", "tab\tx", "{x}", "[x]", "1:30", ".inf", "-.nan",
    ];
    let mut p = compose::Project {
        name: "t".into(),
        ..Default::default()
    };
    let mut svc = compose::Service::default();
    for (i, t) in tricky.iter().enumerate() {
        svc.environment.insert(format!("K{i}"), Some(t.to_string()));
    }
    p.services.insert("s".into(), svc);
    let back: serde_json::Value = serde_saphyr::from_str(&p.to_yaml()).unwrap();
    assert_eq!(back, p.to_json_value());
}

fn load_env(case: &str) -> compose::Project {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case);
    let mut env: std::collections::BTreeMap<String, String> =
        [("HOME".to_string(), "/home/user".to_string())].into();
    if let Ok(text) = std::fs::read_to_string(dir.join("env")) {
        for l in text.lines().filter_map(|l| l.split_once('=')) {
            env.insert(l.0.into(), l.1.replace("$CASE", dir.to_str().unwrap()));
        }
    }
    let mut files = Vec::new();
    let mut profiles = Vec::new();
    let mut env_files = Vec::new();
    let mut services = Vec::new();
    if let Ok(text) = std::fs::read_to_string(dir.join("args")) {
        for l in text.lines().filter_map(|l| l.split_once(' ')) {
            match l.0 {
                "-f" => files.push(PathBuf::from(l.1)),
                "--profile" => profiles.push(l.1.to_string()),
                "--env-file" => env_files.push(PathBuf::from(l.1)),
                "service" => services.push(l.1.to_string()),
                _ => {}
            }
        }
    }
    compose::load(&compose::Options {
        files,
        profiles,
        env_files,
        services,
        environment: env,
        working_dir: Some(dir),
        ..Default::default()
    })
    .unwrap()
}

/// Every bullet of the Compose Specification's profiles example (`15-profiles.md`).
#[test]
fn profiles_as_the_specification_illustrates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/profiles-spec");
    let run = |profiles: &[&str], services: &[&str]| {
        compose::load(&compose::Options {
            profiles: profiles.iter().map(|s| s.to_string()).collect(),
            services: services.iter().map(|s| s.to_string()).collect(),
            working_dir: Some(dir.clone()),
            ..Default::default()
        })
        .map(|p| p.services.keys().cloned().collect::<Vec<_>>().join(","))
        .map_err(|e| e.kind)
    };
    use compose::ErrorKind::UndefinedService as Undefined;
    assert_eq!(run(&[], &[]), Ok("foo".into()));
    assert_eq!(run(&["test"], &[]), Ok("bar,baz,foo".into()));
    assert_eq!(run(&["debug"], &[]), Err(Undefined));
    assert_eq!(run(&["debug", "test"], &[]), Ok("bar,baz,foo,zot".into()));
    assert_eq!(run(&[], &["bar"]), Ok("bar,baz,foo".into()));
    assert_eq!(run(&[], &["baz"]), Ok("bar,baz,foo".into()));
    assert_eq!(run(&[], &["zot"]), Err(Undefined));
    assert_eq!(run(&["test"], &["zot"]), Ok("bar,baz,foo,zot".into()));
}

#[test]
fn compose_file_variable_and_its_separator() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/merge-two");
    let with = |env: &[(&str, &str)]| {
        compose::load(&compose::Options {
            environment: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            working_dir: Some(dir.clone()),
            ..Default::default()
        })
        .unwrap()
    };
    let want = load("merge-two", &["base.yaml", "override.yaml"]);
    let colon = with(&[("COMPOSE_FILE", "base.yaml:override.yaml")]);
    let semi = with(&[
        ("COMPOSE_FILE", "base.yaml;override.yaml"),
        ("COMPOSE_PATH_SEPARATOR", ";"),
    ]);
    assert_eq!(colon.to_yaml(), want.to_yaml());
    assert_eq!(semi.to_yaml(), want.to_yaml());
}
