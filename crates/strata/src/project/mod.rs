//! A compose project run with the runtime: what `strata compose build|up|down|ps|logs|...`
//! do once the compose file is read. The `compose` crate turns the files into a model;
//! [`plan`] turns the model into a [`ProjectPlan`] (images, build flags and a runtime
//! [`runtime::Spec`] per service, in start order); [`up`], [`ops`] and [`logs`] act on
//! it. The project's containers are found again by their labels
//! (`com.docker.compose.project`, `.service`, `.container-number`, `.oneoff`), as docker
//! compose finds its own, so `strata ps --filter label=...` sees them too.

pub mod logs;
pub mod ops;
pub mod plan;
pub mod up;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use store::Store;

pub const LABEL_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
pub const LABEL_NUMBER: &str = "com.docker.compose.container-number";
pub const LABEL_ONEOFF: &str = "com.docker.compose.oneoff";
pub const LABEL_HASH: &str = "com.docker.compose.config-hash";
pub const LABEL_WORKDIR: &str = "com.docker.compose.project.working_dir";
pub const LABEL_FILES: &str = "com.docker.compose.project.config_files";
pub const LABEL_VERSION: &str = "com.docker.compose.version";
pub const LABEL_VOLUME: &str = "com.docker.compose.volume";
pub const LABEL_NETWORK: &str = "com.docker.compose.network";

/// A project ready to run: its services in start order (dependencies first).
#[derive(Debug, Clone)]
pub struct ProjectPlan {
    pub name: String,
    pub working_dir: PathBuf,
    pub config_files: Vec<PathBuf>,
    pub services: Vec<ServicePlan>,
    /// Named volumes the services use (created by `up`, removed by `down -v` unless
    /// external).
    pub volumes: Vec<VolumePlan>,
    /// Networks the services join (created by `up`, removed by `down` unless external).
    pub networks: Vec<NetworkPlan>,
    /// Files the plan's build flags name (`dockerfile_inline`), kept while it lives.
    #[allow(dead_code)]
    pub keep: Vec<std::sync::Arc<tempfile::TempDir>>,
}

#[derive(Debug, Clone)]
pub struct VolumePlan {
    /// The volume's name in the store (`PROJECT_KEY` unless `name:` or external).
    pub name: String,
    pub external: bool,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct NetworkPlan {
    /// The key in the compose file.
    pub key: String,
    /// `PROJECT_KEY` (`PROJECT_default` for the implicit one) unless `name:` or external.
    pub name: String,
    pub external: bool,
    pub labels: BTreeMap<String, String>,
}

/// `depends_on`'s conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Started,
    Healthy,
    CompletedSuccessfully,
}

#[derive(Debug, Clone)]
pub struct Dependency {
    pub service: String,
    pub condition: Condition,
    /// `required: false`: a dependency that is not running is no error.
    pub required: bool,
}

/// `pull_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    #[default]
    Missing,
    Always,
    Never,
    /// Build the image even if it exists.
    Build,
}

#[derive(Debug, Clone)]
pub struct ServicePlan {
    pub name: String,
    /// The image the containers run (the built image's tag for a service with `build`).
    pub image: String,
    /// `strata build` arguments (without the `build` word) when the service builds.
    pub build: Option<Vec<String>>,
    pub pull_policy: PullPolicy,
    /// `scale` / `deploy.replicas` (1 by default).
    pub replicas: u32,
    pub container_name: Option<String>,
    pub depends_on: Vec<Dependency>,
    /// What each container runs, as `strata run` would be asked; its `name` and the
    /// project labels are filled in per container.
    pub spec: runtime::Spec,
    /// Networks (store names) and the aliases the container has on each.
    pub networks: Vec<(String, Vec<String>)>,
}

impl ProjectPlan {
    pub fn service(&self, name: &str) -> Option<&ServicePlan> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The services named (with their dependencies first, as `up web` starts web's), or
    /// all when `names` is empty. An unknown name is an error (compose's wording).
    pub fn selected(&self, names: &[String], with_deps: bool) -> Result<Vec<&ServicePlan>> {
        if names.is_empty() {
            return Ok(self.services.iter().collect());
        }
        let mut want: Vec<String> = Vec::new();
        for n in names {
            if self.service(n).is_none() {
                anyhow::bail!("no such service: {n}");
            }
            want.push(n.clone());
        }
        if with_deps {
            let mut i = 0;
            while i < want.len() {
                let s = self.service(&want[i]).expect("checked");
                for d in &s.depends_on {
                    if !want.contains(&d.service) && self.service(&d.service).is_some() {
                        want.push(d.service.clone());
                    }
                }
                i += 1;
            }
        }
        Ok(self
            .services
            .iter()
            .filter(|s| want.contains(&s.name))
            .collect())
    }

    /// A container's name: `container_name`, else `PROJECT-SERVICE-N` (compose v2).
    pub fn container_name(&self, s: &ServicePlan, number: u32) -> String {
        match &s.container_name {
            Some(n) => n.clone(),
            None => format!("{}-{}-{number}", self.name, s.name),
        }
    }

    /// The project's labels on every container of service `s`.
    pub fn labels(&self, s: &ServicePlan, number: u32, hash: &str) -> Vec<(String, String)> {
        let files = self
            .config_files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(",");
        vec![
            (LABEL_PROJECT.into(), self.name.clone()),
            (LABEL_SERVICE.into(), s.name.clone()),
            (LABEL_NUMBER.into(), number.to_string()),
            (LABEL_ONEOFF.into(), "False".into()),
            (LABEL_HASH.into(), hash.into()),
            (LABEL_WORKDIR.into(), self.working_dir.display().to_string()),
            (LABEL_FILES.into(), files),
            (
                LABEL_VERSION.into(),
                format!("strata-{}", env!("CARGO_PKG_VERSION")),
            ),
        ]
    }
}

/// The containers of project `project` in the store (one-off `run` containers too), by
/// service then number.
pub fn containers(store: &Store, project: &str) -> Result<Vec<runtime::Container>> {
    let mut out: Vec<runtime::Container> = runtime::list(store)?
        .into_iter()
        .filter(|c| c.config.labels.get(LABEL_PROJECT).map(String::as_str) == Some(project))
        .collect();
    out.sort_by_key(|c| {
        (
            service_of(c).to_string(),
            c.config
                .labels
                .get(LABEL_NUMBER)
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(0),
            c.config.name.clone(),
        )
    });
    Ok(out)
}

/// The service a project container belongs to.
pub fn service_of(c: &runtime::Container) -> &str {
    c.config
        .labels
        .get(LABEL_SERVICE)
        .map(String::as_str)
        .unwrap_or("")
}

/// Whether a container was made by `compose run` (not part of the service's replicas).
pub fn is_oneoff(c: &runtime::Container) -> bool {
    c.config.labels.get(LABEL_ONEOFF).map(String::as_str) == Some("True")
}

/// The configuration hash of a service's containers: what `up` compares to decide whether
/// a container is still what the file asks for (the spec, networks and the image's id).
pub fn config_hash(s: &ServicePlan, image_id: &str) -> String {
    let text = format!("{:?}\n{:?}\n{}", s.spec, s.networks, image_id);
    let d = store::Digest::of(text.as_bytes());
    d.hex().to_string()
}
