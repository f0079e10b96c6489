//! The model as `config` prints it: JSON and YAML in docker compose v2's key order.

use crate::*;

impl Project {
    /// Service names in start order: every service after the services it depends on; among
    /// services free to start, by name (stable). `load` refused cycles.
    pub fn start_order(&self) -> Vec<&str> {
        let mut done: BTreeSet<&str> = BTreeSet::new();
        let mut order = Vec::new();
        while order.len() < self.services.len() {
            let next = self
                .services
                .iter()
                .filter(|(n, _)| !done.contains(n.as_str()))
                .find(|(_, s)| {
                    s.depends_on
                        .keys()
                        .all(|d| done.contains(d.as_str()) || !self.services.contains_key(d))
                });
            let Some((n, _)) = next else { break };
            done.insert(n);
            order.push(n.as_str());
        }
        order
    }

    /// The model as JSON (`config --format json`), keys in docker compose v2's order: a
    /// service's keys in compose-go's field order (unknown keys after, by name), and the
    /// keys of maps (environment, labels, build args, networks, ...) sorted, as Go prints maps.
    pub fn to_json_value(&self) -> Value {
        let mut v = serde_json::to_value(self).expect("the model serialises");
        if let Some(services) = v.get_mut("services").and_then(Value::as_object_mut) {
            for svc in services.values_mut() {
                let Some(m) = svc.as_object_mut() else {
                    continue;
                };
                for key in [
                    "environment",
                    "labels",
                    "annotations",
                    "depends_on",
                    "networks",
                ] {
                    sort_value(m.get_mut(key));
                }
                if let Some(b) = m.get_mut("build").and_then(Value::as_object_mut) {
                    sort_value(b.get_mut("args"));
                    sort_value(b.get_mut("labels"));
                    order_keys(b, BUILD_ORDER);
                }
                order_keys(m, SERVICE_ORDER);
            }
        }
        for key in ["networks", "volumes", "secrets", "configs"] {
            if let Some(res) = v.get_mut(key).and_then(Value::as_object_mut) {
                for r in res.values_mut().filter_map(Value::as_object_mut) {
                    sort_value(r.get_mut("labels"));
                    sort_value(r.get_mut("driver_opts"));
                }
                sort_map(res);
            }
        }
        v
    }

    /// The model as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the model serialises") + "\n"
    }

    /// The model as YAML (`config`): `name` first, services by name, long syntax.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(&self.to_json_value()).expect("the model serialises")
    }

    /// Images of the services (`config --images`): `image`, else `PROJECT-SERVICE`.
    pub fn images(&self) -> Vec<String> {
        self.services
            .iter()
            .map(|(n, s)| s.image_name(&self.name, n))
            .collect()
    }
}

/// compose-go's `ServiceConfig` field order (the order `docker compose config` prints).
pub(crate) const SERVICE_ORDER: &[&str] = &[
    "profiles",
    "annotations",
    "attach",
    "build",
    "develop",
    "blkio_config",
    "cap_add",
    "cap_drop",
    "cgroup_parent",
    "cgroup",
    "command",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpus",
    "cpuset",
    "credential_spec",
    "depends_on",
    "deploy",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "dockerfile",
    "domainname",
    "entrypoint",
    "environment",
    "env_file",
    "expose",
    "extends",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "hostname",
    "healthcheck",
    "image",
    "init",
    "ipc",
    "isolation",
    "labels",
    "label_file",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "network_mode",
    "networks",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "privileged",
    "pull_policy",
    "read_only",
    "restart",
    "runtime",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "use_api_socket",
    "user",
    "uts",
    "userns_mode",
    "volumes",
    "volumes_from",
    "working_dir",
];

/// compose-go's `BuildConfig` field order.
pub(crate) const BUILD_ORDER: &[&str] = &[
    "context",
    "dockerfile",
    "dockerfile_inline",
    "entitlements",
    "args",
    "ssh",
    "labels",
    "cache_from",
    "cache_to",
    "no_cache",
    "additional_contexts",
    "network",
    "provenance",
    "sbom",
    "pull",
    "target",
    "shm_size",
    "extra_hosts",
    "isolation",
    "privileged",
    "secrets",
    "tags",
    "ulimits",
    "platforms",
];

/// Reorders `m`: keys of `order` first in that order, the others after by name.
pub(crate) fn order_keys(m: &mut serde_json::Map<String, Value>, order: &[&str]) {
    let mut entries: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
    entries.sort_by_key(|(k, _)| {
        (
            order.iter().position(|o| o == k).unwrap_or(order.len()),
            k.clone(),
        )
    });
    m.extend(entries);
}

pub(crate) fn sort_map(m: &mut serde_json::Map<String, Value>) {
    order_keys(m, &[]);
}

pub(crate) fn sort_value(v: Option<&mut Value>) {
    if let Some(Value::Object(m)) = v {
        sort_map(m);
    }
}
