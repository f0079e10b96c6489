//! Offline checks of the Kubernetes manifests in `deploy/kubernetes/`.
//!
//! `kubectl apply --dry-run=client` still needs an API server, so the manifests are checked
//! here against the API's own types (the `k8s-openapi` crate, one Kubernetes version):
//!
//! * every YAML document is dispatched on `apiVersion`/`kind` and deserialised into its typed
//!   struct, so a wrong type, a missing required field or an unknown kind is an error;
//! * unknown fields are rejected: `k8s-openapi`'s types skip fields they do not know, so the
//!   typed value is serialised back and every key of the original document must still be
//!   there (`spec.template.spec.containers[0].securityContex` is reported by its path);
//! * a few semantic rules the API server or this project would enforce: volume mounts name
//!   declared volumes, `procMount: Unmasked` only with `hostUsers: false`, containers run as
//!   a non-root user and never privileged, the images are the strata image, an Indexed Job
//!   has `completions == parallelism`, and a Job running `strata bake --index` is Indexed.
//!
//! This crate is a test helper (`publish = false`): the heavy `k8s-openapi` dependency stays
//! out of the strata binary.

use std::fmt;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolumeClaim, PodSpec, Secret, ServiceAccount,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// A manifest document, typed.
#[derive(Debug)]
pub enum Object {
    Job(Box<Job>),
    ConfigMap(Box<ConfigMap>),
    Secret(Box<Secret>),
    ServiceAccount(Box<ServiceAccount>),
    PersistentVolumeClaim(Box<PersistentVolumeClaim>),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Job(_) => "Job",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
            Object::ServiceAccount(_) => "ServiceAccount",
            Object::PersistentVolumeClaim(_) => "PersistentVolumeClaim",
        }
    }

    pub fn name(&self) -> Option<&str> {
        let meta = match self {
            Object::Job(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::ServiceAccount(o) => &o.metadata,
            Object::PersistentVolumeClaim(o) => &o.metadata,
        };
        meta.name.as_deref()
    }
}

/// A problem with one document: `file`, its 0-based document number, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub document: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (document {}): {}",
            self.file, self.document, self.message
        )
    }
}

/// The YAML documents of a file (`---`-separated; empty documents are skipped), as JSON values.
pub fn parse_yaml_documents(text: &str) -> Result<Vec<Value>, String> {
    serde_saphyr::from_multiple::<Value>(text).map_err(|e| e.to_string())
}

/// The key paths of `original` missing from `round_trip` (JSON-path-like:
/// `spec.template.spec.containers[0].securityContex`). Arrays are compared element by element;
/// scalars are not compared (the typed round-trip does not change them).
pub fn unknown_fields(original: &Value, round_trip: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(original, Some(round_trip), "", &mut out);
    out
}

fn walk(original: &Value, round_trip: Option<&Value>, path: &str, out: &mut Vec<String>) {
    match original {
        Value::Object(map) => {
            let other = round_trip.and_then(Value::as_object);
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match other.and_then(|o| o.get(k)) {
                    Some(rt) => walk(v, Some(rt), &p, out),
                    None => out.push(p),
                }
            }
        }
        Value::Array(items) => {
            let other = round_trip.and_then(Value::as_array);
            for (i, v) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                match other.and_then(|o| o.get(i)) {
                    Some(rt) => walk(v, Some(rt), &p, out),
                    None => out.push(p),
                }
            }
        }
        _ => {}
    }
}

/// Deserialise `value` into `T` and reject every field `T` does not know.
pub fn typed<T: DeserializeOwned + Serialize>(value: &Value) -> Result<T, String> {
    let t: T = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        }
    })?;
    let back = serde_json::to_value(&t).map_err(|e| format!("serialising back: {e}"))?;
    let unknown = unknown_fields(value, &back);
    if unknown.is_empty() {
        Ok(t)
    } else {
        Err(format!("unknown field(s): {}", unknown.join(", ")))
    }
}

/// One document: dispatched on `apiVersion` and `kind`, typed, unknown fields rejected.
pub fn check_object(value: &Value) -> Result<Object, String> {
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    Ok(match (api_version, kind) {
        ("batch/v1", "Job") => Object::Job(Box::new(typed(value)?)),
        ("v1", "ConfigMap") => Object::ConfigMap(Box::new(typed(value)?)),
        ("v1", "Secret") => Object::Secret(Box::new(typed(value)?)),
        ("v1", "ServiceAccount") => Object::ServiceAccount(Box::new(typed(value)?)),
        ("v1", "PersistentVolumeClaim") => Object::PersistentVolumeClaim(Box::new(typed(value)?)),
        _ => {
            return Err(format!(
            "unsupported apiVersion {api_version:?} kind {kind:?} (this check knows batch/v1 Job, \
                 v1 ConfigMap, Secret, ServiceAccount, PersistentVolumeClaim)"
        ))
        }
    })
}

/// The repository of an image reference without its tag or digest, last path component:
/// `registry.example.com:5000/team/strata:1.0` is `strata`.
pub fn image_repository_name(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    last.split(':').next().unwrap_or(last)
}

/// The semantic rules, for one typed object; `image_name` is the strata image's repository
/// name (`strata`).
pub fn semantic_problems(object: &Object, image_name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Object::Job(job) = object else {
        return out;
    };
    let Some(spec) = &job.spec else {
        out.push("Job has no spec".into());
        return out;
    };
    let Some(pod) = &spec.template.spec else {
        out.push("Job's pod template has no spec".into());
        return out;
    };
    pod_problems(pod, image_name, &mut out);

    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    if indexed && (spec.completions.is_none() || spec.completions != spec.parallelism) {
        out.push(format!(
            "Indexed Job: completions ({:?}) must equal parallelism ({:?}), one pod per target",
            spec.completions, spec.parallelism
        ));
    }
    let uses_index = all_containers(pod).any(|c| {
        c.args
            .iter()
            .flatten()
            .any(|a| a == "--index" || a.starts_with("--index="))
    });
    if uses_index && !indexed {
        out.push("a container runs `--index` but the Job's completionMode is not Indexed".into());
    }
    out
}

fn all_containers(pod: &PodSpec) -> impl Iterator<Item = &Container> {
    pod.init_containers
        .iter()
        .flatten()
        .chain(pod.containers.iter())
}

fn pod_problems(pod: &PodSpec, image_name: &str, out: &mut Vec<String>) {
    let pod_sc = pod.security_context.as_ref();
    let volumes: Vec<&str> = pod
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    for c in all_containers(pod) {
        let name = &c.name;
        let sc = c.security_context.as_ref();
        match c.image.as_deref() {
            Some(image) if image_repository_name(image) == image_name => {}
            other => out.push(format!(
                "container {name}: image {other:?} is not the {image_name} image"
            )),
        }
        if sc.and_then(|s| s.privileged) == Some(true) {
            out.push(format!("container {name}: privileged: true"));
        }
        let non_root = sc
            .and_then(|s| s.run_as_non_root)
            .or_else(|| pod_sc.and_then(|s| s.run_as_non_root));
        if non_root != Some(true) {
            out.push(format!("container {name}: runAsNonRoot is not true"));
        }
        let user = sc
            .and_then(|s| s.run_as_user)
            .or_else(|| pod_sc.and_then(|s| s.run_as_user));
        match user {
            Some(u) if u != 0 => {}
            other => out.push(format!(
                "container {name}: runAsUser is {other:?}, not a non-root uid"
            )),
        }
        if sc.and_then(|s| s.proc_mount.as_deref()) == Some("Unmasked")
            && pod.host_users != Some(false)
        {
            out.push(format!(
                "container {name}: procMount: Unmasked needs the pod's hostUsers: false (Kubernetes >= 1.30 refuses it otherwise)"
            ));
        }
        for m in c.volume_mounts.iter().flatten() {
            if !volumes.contains(&m.name.as_str()) {
                out.push(format!(
                    "container {name}: volumeMount {} names no volume of the pod",
                    m.name
                ));
            }
        }
    }
}

/// A whole manifest file: every document parsed, typed, unknown fields rejected, and the
/// semantic rules applied. Returns the typed objects, or every problem found.
pub fn check_manifest(
    file: &str,
    text: &str,
    image_name: &str,
) -> Result<Vec<Object>, Vec<Problem>> {
    let problem = |document, message| Problem {
        file: file.to_string(),
        document,
        message,
    };
    let docs = parse_yaml_documents(text).map_err(|e| vec![problem(0, format!("YAML: {e}"))])?;
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        match check_object(doc) {
            Ok(object) => {
                for p in semantic_problems(&object, image_name) {
                    problems.push(problem(i, p));
                }
                objects.push(object);
            }
            Err(e) => problems.push(problem(i, e)),
        }
    }
    if docs.is_empty() {
        problems.push(problem(0, "no YAML document".into()));
    }
    if problems.is_empty() {
        Ok(objects)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_reports_paths_in_maps_and_arrays() {
        let original = json!({"a": {"b": 1, "c": [ {"d": 1, "e": 2} ]}, "f": null});
        let round_trip = json!({"a": {"b": 1, "c": [ {"d": 1} ]}});
        assert_eq!(
            unknown_fields(&original, &round_trip),
            vec!["a.c[0].e", "f"]
        );
        assert!(unknown_fields(&round_trip, &round_trip).is_empty());
    }

    #[test]
    fn image_names() {
        assert_eq!(image_repository_name("strata"), "strata");
        assert_eq!(
            image_repository_name("registry.example.com:5000/team/strata:1.0"),
            "strata"
        );
        assert_eq!(image_repository_name("reg/strata@sha256:abcd"), "strata");
        assert_eq!(image_repository_name("busybox:1.36"), "busybox");
    }

    #[test]
    fn a_job_with_a_misspelled_field_is_rejected_by_path() {
        let job = json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "c", "image": "strata", "securityContex": {"runAsUser": 1000}}
            ]}}}
        });
        let err = check_object(&job).unwrap_err();
        assert!(
            err.contains("spec.template.spec.containers[0].securityContex"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_type_and_an_unknown_kind_are_errors() {
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "spec": {"completions": "three",
            "template": {"spec": {"containers": []}}}});
        let err = check_object(&job).unwrap_err();
        assert!(err.contains("spec.completions"), "{err}");
        let err = check_object(&json!({"apiVersion": "v1", "kind": "Pod"})).unwrap_err();
        assert!(err.contains("unsupported"), "{err}");
        let err = check_object(&json!({"apiVersion": "apps/v1", "kind": "Job"})).unwrap_err();
        assert!(err.contains("unsupported"), "{err}");
    }
}
