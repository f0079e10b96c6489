//! The files of `deploy/`, checked offline: every Kubernetes manifest against k8s-openapi's
//! types with unknown fields rejected and the semantic rules of `deploy_check`; the CI examples
//! as YAML; the example bake file as HCL. And proof that the checks can fail: the real
//! manifests with one field misspelled, one value made wrong.

use std::fs;
use std::path::{Path, PathBuf};

use deploy_check::{check_manifest, parse_yaml_documents, Object};
use k8s_openapi::api::batch::v1::Job;

const IMAGE: &str = "strata";

fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(dir: &str, exts: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(top().join(dir))
        .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| exts.iter().any(|e| x == *e)))
        .collect();
    out.sort();
    out
}

fn read(rel: &str) -> String {
    fs::read_to_string(top().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

fn check(name: &str, text: &str) -> Result<Vec<Object>, String> {
    check_manifest(name, text, IMAGE).map_err(|ps| {
        ps.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn jobs(objects: &[Object]) -> Vec<&Job> {
    objects
        .iter()
        .filter_map(|o| match o {
            Object::Job(j) => Some(&**j),
            _ => None,
        })
        .collect()
}

#[test]
fn every_kubernetes_manifest_is_valid() {
    let manifests = files("deploy/kubernetes", &["yaml", "yml"]);
    assert!(
        manifests.len() >= 3,
        "expected the manifests in deploy/kubernetes, found {manifests:?}"
    );
    let mut documents = 0;
    for path in &manifests {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = fs::read_to_string(path).unwrap();
        match check(&name, &text) {
            Ok(objects) => {
                let kinds: Vec<String> = objects
                    .iter()
                    .map(|o| format!("{}/{}", o.kind(), o.name().unwrap_or("?")))
                    .collect();
                println!("{name}: {}", kinds.join(", "));
                documents += objects.len();
            }
            Err(e) => panic!("{e}"),
        }
    }
    println!(
        "{} manifests, {documents} documents checked",
        manifests.len()
    );
}

#[test]
fn the_build_job_builds_with_the_registry_cache_and_pushes() {
    let objects = check("build-job.yaml", &read("deploy/kubernetes/build-job.yaml")).unwrap();
    let jobs = jobs(&objects);
    assert_eq!(jobs.len(), 1);
    let spec = jobs[0].spec.as_ref().unwrap();
    assert!(spec.backoff_limit.is_some() && spec.ttl_seconds_after_finished.is_some());
    let pod = spec.template.spec.as_ref().unwrap();
    let build = &pod.containers[0];
    let args = build.args.clone().unwrap();
    assert_eq!(args[0], "build");
    for want in ["--push", "/workspace"] {
        assert!(args.iter().any(|a| a == want), "{want} in {args:?}");
    }
    assert!(args
        .iter()
        .any(|a| a.starts_with("--cache-from=type=registry,ref=")));
    assert!(args
        .iter()
        .any(|a| a.starts_with("--cache-to=type=registry,ref=") && a.ends_with(",mode=max")));
    let sc = build.security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(true));
    let pod_sc = pod.security_context.as_ref().unwrap();
    assert_eq!(pod_sc.run_as_user, Some(1000));
    assert_eq!(pod_sc.seccomp_profile.as_ref().unwrap().type_, "Unconfined");
    assert_eq!(
        pod_sc.app_armor_profile.as_ref().unwrap().type_,
        "Unconfined"
    );
    // the credentials: a dockerconfigjson Secret's key mounted as config.json
    let secret = pod
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.secret.as_ref())
        .unwrap();
    assert_eq!(secret.items.as_ref().unwrap()[0].key, ".dockerconfigjson");
    assert_eq!(secret.items.as_ref().unwrap()[0].path, "config.json");
    // the init container fetches the context into the same volume
    let init = &pod.init_containers.as_ref().unwrap()[0];
    assert_eq!(init.command.as_ref().unwrap()[0], "git");
}

/// The Indexed Job runs one pod per target of the bake file beside it.
#[test]
fn the_bake_job_is_indexed_with_one_pod_per_bake_target() {
    let objects = check(
        "bake-indexed-job.yaml",
        &read("deploy/kubernetes/bake-indexed-job.yaml"),
    )
    .unwrap();
    let jobs = jobs(&objects);
    assert_eq!(jobs.len(), 1);
    let spec = jobs[0].spec.as_ref().unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    let args = spec.template.spec.as_ref().unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert_eq!(args[0], "bake");
    assert!(
        args.iter().any(|a| a == "--index=$(JOB_COMPLETION_INDEX)"),
        "{args:?}"
    );
    assert!(args.iter().any(|a| a == "--push"), "{args:?}");

    let bake = hcl::parse(&read("deploy/kubernetes/docker-bake.hcl"))
        .expect("docker-bake.hcl parses as HCL");
    let default = bake
        .blocks()
        .find(|b| {
            b.identifier() == "group" && b.labels().first().map(|l| l.as_str()) == Some("default")
        })
        .expect("a default group");
    let targets = default
        .body()
        .attributes()
        .find(|a| a.key() == "targets")
        .expect("targets = [...]");
    let hcl::Expression::Array(targets) = targets.expr() else {
        panic!("targets is not a list");
    };
    let defined: Vec<&str> = bake
        .blocks()
        .filter(|b| b.identifier() == "target")
        .filter_map(|b| b.labels().first().map(|l| l.as_str()))
        .collect();
    for t in targets {
        let hcl::Expression::String(name) = t else {
            panic!("target name {t:?}")
        };
        assert!(
            defined.contains(&name.as_str()),
            "target {name} is not defined in {defined:?}"
        );
    }
    assert_eq!(
        spec.completions,
        Some(targets.len() as i32),
        "completions = number of targets"
    );
    assert_eq!(spec.parallelism, Some(targets.len() as i32));
}

#[test]
fn the_secret_template_is_a_dockerconfigjson_secret() {
    let objects = check(
        "secret-example.yaml",
        &read("deploy/kubernetes/secret-example.yaml"),
    )
    .unwrap();
    let Object::Secret(secret) = &objects[0] else {
        panic!("not a Secret")
    };
    assert_eq!(
        secret.type_.as_deref(),
        Some("kubernetes.io/dockerconfigjson")
    );
    let json = &secret.string_data.as_ref().unwrap()[".dockerconfigjson"];
    let v: serde_json::Value = serde_json::from_str(json).expect("the config.json is JSON");
    assert!(v["auths"].is_object());
}

/// The checks can fail: the real manifests, one thing changed at a time.
#[test]
fn a_misspelled_or_wrong_field_is_rejected() {
    let build = read("deploy/kubernetes/build-job.yaml");
    let bake = read("deploy/kubernetes/bake-indexed-job.yaml");
    // (what, manifest, text to replace, its replacement, the error wanted)
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        (
            "securityContex",
            &build,
            "          securityContext:\n",
            "          securityContex:\n",
            "spec.template.spec.initContainers[0].securityContex",
        ),
        (
            "completionMod",
            &bake,
            "completionMode: Indexed",
            "completionMod: Indexed",
            "spec.completionMod",
        ),
        (
            "misspelled in a list",
            &build,
            "mountPath: /workspace\n",
            "mountPth: /workspace\n",
            "volumeMounts[0].mountPth",
        ),
        (
            "a wrong type",
            &bake,
            "completions: 3",
            "completions: three",
            "spec.completions",
        ),
        (
            "privileged",
            &build,
            "procMount: Unmasked",
            "procMount: Unmasked\n            privileged: true",
            "privileged: true",
        ),
        (
            "root",
            &build,
            "runAsUser: 1000",
            "runAsUser: 0",
            "runAsUser is Some(0)",
        ),
        (
            "runAsNonRoot",
            &build,
            "runAsNonRoot: true",
            "runAsNonRoot: false",
            "runAsNonRoot is not true",
        ),
        (
            "another image",
            &build,
            "image: registry.example.com/strata:latest\n          # ENTRYPOINT",
            "image: docker:dind\n          # ENTRYPOINT",
            "image Some(\"docker:dind\") is not the strata image",
        ),
        (
            "completions != parallelism",
            &bake,
            "parallelism: 3",
            "parallelism: 2",
            "must equal parallelism",
        ),
        (
            "not Indexed",
            &bake,
            "completionMode: Indexed",
            "completionMode: NonIndexed",
            "not Indexed",
        ),
        (
            "Unmasked without a user namespace",
            &build,
            "      hostUsers: false",
            "      hostUsers: true",
            "procMount: Unmasked needs the pod's hostUsers: false",
        ),
        (
            "a mount of no volume",
            &build,
            "- name: store\n          emptyDir",
            "- name: stor\n          emptyDir",
            "volumeMount store names no volume",
        ),
        (
            "an unknown kind",
            &build,
            "kind: Job",
            "kind: CronJob",
            "unsupported apiVersion",
        ),
        (
            "YAML",
            &build,
            "spec:\n  backoffLimit",
            "spec:\n backoffLimit: [\n",
            "YAML",
        ),
    ];
    for &(what, manifest, from, to, want) in cases {
        assert!(
            manifest.contains(from),
            "{what}: {from:?} is not in the manifest"
        );
        let text = manifest.replacen(from, to, 1);
        match check(what, &text) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => assert!(e.contains(want), "{what}: want {want:?} in\n{e}"),
        }
    }
}

#[test]
fn the_ci_examples_are_yaml() {
    let ci = files("deploy/ci", &["yml", "yaml"]);
    assert_eq!(ci.len(), 2, "{ci:?}");
    for path in &ci {
        let text = fs::read_to_string(path).unwrap();
        let docs =
            parse_yaml_documents(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(docs.len(), 1, "{}", path.display());
        let top = docs[0]
            .as_object()
            .unwrap_or_else(|| panic!("{}: not a mapping", path.display()));
        // both build with the registry cache and push, and bake one target per job
        for want in [
            "STRATA_IMAGE",
            "build --progress=plain",
            "type=registry,ref=",
            "mode=max",
            "--push",
            "bake -f docker-bake.hcl --index",
        ] {
            assert!(text.contains(want), "{}: no {want:?}", path.display());
        }
        if path.ends_with("github-actions.yml") {
            assert!(
                top.contains_key("jobs") && top.contains_key("on"),
                "{top:?}"
            );
        } else {
            assert!(top.contains_key("stages"), "{top:?}");
            assert!(
                top["build-image"]["script"].is_array()
                    && top["bake"]["parallel"]["matrix"].is_array()
            );
        }
    }
}
