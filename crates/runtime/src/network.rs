//! User-defined networks (`strata network create|ls|inspect|rm|prune`, `run --network NAME`,
//! and compose's project networks): containers on one network reach each other by name.
//!
//! ```text
//! <root>/networks/.lock              flock: held to create, remove, prune, attach, detach
//! <root>/networks/<id>/network.json  name, id, subnet, labels, endpoints (the attached runs)
//! <root>/networks/<id>/netns         a bind mount of the network's own network namespace
//! ```
//!
//! A network is a **network namespace of its own** (kept alive by the bind mount of its
//! `/proc/…/ns/net` onto `netns`, as `ip netns add` does) holding a Linux bridge `br0`
//! with the gateway address (`10.89.N.1/24`, one /24 per network, the lowest free `N`). It
//! is never in the host's namespace: the host gains no route into the containers and the
//! containers none to the host's services through a bridge address (nothing listens in the
//! network's namespace, and it forwards nothing: `ip_forward` is off in a new namespace).
//!
//! A container joined to it keeps its own namespace, with slirp4netns' `tap0` as its
//! default route out, and gets a veth pair: `eth<i>` (i-th network of the container) in the
//! container's namespace with the lowest free address of the subnet, the peer `v<id[..12]>`
//! in the network's namespace on `br0`. The executor's [`exec::NetworkHook`] does this
//! between the namespace's creation and the command's start, so a service can connect at
//! once. Links are set up with iproute2's `ip` (`ip -batch -`, run by a thread that has
//! `setns`'d into the namespace in question), found in `PATH` or `/usr/sbin`, `/sbin`.
//!
//! Names resolve through `/etc/hosts` (no DNS server): a joined container's hosts file is a
//! runtime-owned file (`hosts` in its directory) bound onto `/etc/hosts`; every attach and
//! detach rewrites the hosts files of all the running members of the networks concerned
//! **in place** (same inode, as it is bind-mounted), each listing every member by name,
//! aliases and hostname.
//!
//! An endpoint belongs to the container's helper process (host pid and start time): an
//! endpoint whose process is gone (a SIGKILLed supervisor) is dropped by the next locked
//! operation on the networks, its veth with it.
//!
//! For compose: [`Networks::ensure`] (create-or-get by name, with the project's labels),
//! [`Networks::remove`] (refused while a container, running or not, names the network),
//! and a service container joins with [`Spec::network`](crate::Spec::network) set to the
//! network's name, [`Spec::network_aliases`](crate::Spec::network_aliases) to the service
//! name (and [`Spec::extra_networks`](crate::Spec::extra_networks) for more networks),
//! through [`create`](crate::create) and [`Container::start`](crate::Container::start).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The private range the networks' subnets come from: `10.89.N.0/24` (podman's choice,
/// clear of slirp4netns' 10.0.2.0/24 and docker's 172.17-31.x and 192.168.x defaults).
const PREFIX: [u8; 2] = [10, 89];

/// Names `run --network` gives other meanings (and docker's predefined networks).
pub const RESERVED: &[&str] = &["default", "private", "none", "host", "bridge"];

/// One container's membership of a network, as the container's config keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttach {
    /// The network's name when the container was created.
    pub name: String,
    /// The network's id (a network re-created under the same name is another network).
    pub id: String,
    /// `--network-alias` names (compose: the service name).
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// A running container on a network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    /// The container's name (empty for a foreground run without `--name`).
    pub name: String,
    pub aliases: Vec<String>,
    pub hostname: String,
    pub ip: Ipv4Addr,
    /// The interface in the container (`eth0`, ...).
    pub ifname: String,
    /// The veth's peer in the network's namespace.
    pub veth: String,
    /// The container's hosts file (bound onto its `/etc/hosts`).
    pub hosts_file: PathBuf,
    /// The first lines of that hosts file (localhost, `--add-host`).
    pub hosts_base: String,
    /// The executor's helper (lives exactly as long as the container): pid, start time.
    pub pid: u32,
    pub pid_start: u64,
}

/// `network.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    pub id: String,
    /// RFC 3339.
    pub created: String,
    /// `N` of `10.89.N.0/24`.
    pub index: u8,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Running members by container id.
    #[serde(default)]
    pub endpoints: BTreeMap<String, Endpoint>,
}

impl Record {
    pub fn subnet(&self) -> String {
        format!("{}.{}.{}.0/24", PREFIX[0], PREFIX[1], self.index)
    }

    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(PREFIX[0], PREFIX[1], self.index, 1)
    }

    /// docker's `network inspect` shape.
    pub fn inspect(&self) -> serde_json::Value {
        use serde_json::json;
        let containers: serde_json::Map<String, serde_json::Value> = self
            .endpoints
            .iter()
            .map(|(id, e)| {
                (
                    id.clone(),
                    json!({
                        "Name": e.name,
                        "EndpointID": "",
                        "MacAddress": "",
                        "IPv4Address": format!("{}/24", e.ip),
                        "IPv6Address": "",
                    }),
                )
            })
            .collect();
        json!({
            "Name": self.name,
            "Id": self.id,
            "Created": self.created,
            "Scope": "local",
            "Driver": "bridge",
            "EnableIPv6": false,
            "IPAM": {
                "Driver": "default",
                "Options": {},
                "Config": [{"Subnet": self.subnet(), "Gateway": self.gateway().to_string()}],
            },
            "Internal": false,
            "Attachable": false,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": containers,
            "Options": {},
            "Labels": self.labels,
        })
    }
}

/// A network of the store.
#[derive(Debug, Clone)]
pub struct Network {
    pub dir: PathBuf,
    pub record: Record,
}

impl Network {
    /// The bind-mounted namespace file.
    pub fn netns(&self) -> PathBuf {
        self.dir.join("netns")
    }
}

/// The store's networks.
pub struct Networks {
    dir: PathBuf,
    store_root: PathBuf,
}

/// The networks' flock, released on drop.
pub use crate::dirlock::Lock;

/// The `ip` program.
fn ip_program() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .filter(|d| d.is_absolute())
        .map(|d| d.join("ip"))
        .find(|f| f.is_file())
        .unwrap_or_else(|| PathBuf::from("ip"))
}

/// Run `ip -batch -` with `commands` in the network namespace of the file `ns` (a bind
/// mount or `/proc/PID/ns/net`), from a thread that joins it (its children are born there).
fn ip_in(ns: &Path, commands: String) -> Result<()> {
    let f = File::open(ns).with_context(|| format!("open {}", ns.display()))?;
    std::thread::Builder::new()
        .name("strata-ip".into())
        .spawn(move || -> Result<()> {
            rustix::thread::move_into_link_name_space(
                f.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .context("join the network namespace")?;
            ip_here(&commands)
        })
        .context("start a thread")?
        .join()
        .map_err(|_| anyhow!("the network thread panicked"))?
}

/// `ip -batch -` in this thread's network namespace.
fn ip_here(commands: &str) -> Result<()> {
    let mut child = Command::new(ip_program())
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("run ip (iproute2), which user-defined networks need")?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(commands.as_bytes()).context("write to ip")?;
    }
    let out = child.wait_with_output().context("wait for ip")?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        bail!("ip: {}", text.trim());
    }
    Ok(())
}

/// A network name as docker allows it.
fn check_name(n: &str) -> Result<()> {
    let mut chars = n.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok {
        bail!("invalid network name \"{n}\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    }
    if RESERVED.contains(&n) {
        bail!("network with name {n} already exists (a predefined network)");
    }
    Ok(())
}

/// The lowest `N` of `10.89.N.0/24` no network has.
pub(crate) fn free_subnet(used: &[u8]) -> Option<u8> {
    (0..=255u8).find(|n| !used.contains(n))
}

/// The lowest free host address of a /24 (`.2` to `.254`; `.1` is the gateway).
pub(crate) fn free_host(used: &[u8]) -> Option<u8> {
    (2..=254u8).find(|n| !used.contains(n))
}

/// The hosts file of `me` (a container id) for the endpoints it shares a network with:
/// its base lines, its own address with its hostname, name and aliases, then every other
/// member by name, aliases and hostname, each network in order.
pub(crate) fn render_hosts(me: &str, base: &str, networks: &[&Record]) -> String {
    let mut s = base.to_string();
    let names = |e: &Endpoint, own: bool| {
        let mut n: Vec<&str> = Vec::new();
        let first = if own { &e.hostname } else { &e.name };
        for x in std::iter::once(first)
            .chain([&e.name, &e.hostname])
            .chain(e.aliases.iter())
        {
            if !x.is_empty() && !n.contains(&x.as_str()) {
                n.push(x);
            }
        }
        n.join(" ")
    };
    for r in networks {
        if let Some(e) = r.endpoints.get(me) {
            s.push_str(&format!("{}\t{}\n", e.ip, names(e, true)));
        }
    }
    for r in networks {
        for (id, e) in &r.endpoints {
            if id != me {
                s.push_str(&format!("{}\t{}\n", e.ip, names(e, false)));
            }
        }
    }
    s
}

/// Replace `path`'s content in place (same inode: it is bind-mounted into a container).
fn rewrite_in_place(path: &Path, text: &str) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.set_len(text.len() as u64))
        .with_context(|| format!("write {}", path.display()))
}

/// The first lines of a networked container's hosts file: localhost and `--add-host`.
pub(crate) fn hosts_base(extra: &[(String, String)]) -> String {
    let mut s = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_string();
    for (host, ip) in extra {
        s.push_str(&format!("{ip}\t{host}\n"));
    }
    s
}

/// What a container brings to its networks when it starts.
#[derive(Debug, Clone)]
pub struct Joining {
    /// The container's id (the endpoints' key).
    pub id: String,
    pub name: String,
    pub hostname: String,
    pub networks: Vec<NetworkAttach>,
    pub hosts_file: PathBuf,
    pub hosts_base: String,
}

impl Networks {
    /// The networks of the store at `store_root` (the directory made on first use).
    pub fn new(store_root: &Path) -> Result<Networks> {
        Ok(Networks {
            dir: crate::dirlock::private_dir(store_root, "networks")?,
            store_root: store_root.to_path_buf(),
        })
    }

    pub fn open(store: &store::Store) -> Result<Networks> {
        Networks::new(store.root())
    }

    pub fn lock(&self) -> Result<Lock> {
        crate::dirlock::lock_dir(&self.dir)
    }

    /// Every network, oldest first; endpoints of dead processes are left out.
    pub fn list(&self) -> Result<Vec<Network>> {
        let mut out = Vec::new();
        for e in
            std::fs::read_dir(&self.dir).with_context(|| format!("read {}", self.dir.display()))?
        {
            let e = e?;
            let name = e.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let dir = e.path();
            let Ok(bytes) = std::fs::read(dir.join("network.json")) else {
                continue; // being created or removed
            };
            let mut record: Record = serde_json::from_slice(&bytes)
                .with_context(|| format!("parse {}", dir.join("network.json").display()))?;
            record
                .endpoints
                .retain(|_, ep| crate::container::alive(ep.pid, ep.pid_start));
            out.push(Network { dir, record });
        }
        out.sort_by(|a, b| {
            (&a.record.created, &a.record.name).cmp(&(&b.record.created, &b.record.name))
        });
        Ok(out)
    }

    /// A network by name, full id or unique id prefix (docker's order).
    pub fn get(&self, what: &str) -> Result<Network> {
        let all = self.list()?;
        if let Some(n) = all
            .iter()
            .find(|n| n.record.name == what || n.record.id == what)
        {
            return Ok(n.clone());
        }
        let matches: Vec<&Network> = all
            .iter()
            .filter(|n| !what.is_empty() && n.record.id.starts_with(what))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => bail!("network {what} not found"),
            _ => bail!(
                "network {what} is ambiguous ({} matches found based on ID prefix)",
                matches.len()
            ),
        }
    }

    fn save(n: &Network) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(&n.record).context("encode the network")?;
        store::atomic_write(&n.dir.join("network.json"), &bytes).context("write the network")
    }

    /// `network create NAME`: a new network (docker's error when the name is taken).
    pub fn create(&self, name: &str, labels: BTreeMap<String, String>) -> Result<Network> {
        check_name(name)?;
        let _l = self.lock()?;
        let all = self.list()?;
        if all.iter().any(|n| n.record.name == name) {
            bail!("network with name {name} already exists");
        }
        self.create_locked(name, labels, &all)
    }

    /// Compose's create-or-get: the network `name`, created with `labels` when missing
    /// (an existing one is returned as it is); `true` when it was created.
    pub fn ensure(&self, name: &str, labels: BTreeMap<String, String>) -> Result<(Network, bool)> {
        check_name(name)?;
        let _l = self.lock()?;
        let all = self.list()?;
        if let Some(n) = all.iter().find(|n| n.record.name == name) {
            return Ok((n.clone(), false));
        }
        Ok((self.create_locked(name, labels, &all)?, true))
    }

    /// Remove what a killed `create` or `rm` left (a directory without `network.json`, or
    /// one renamed aside for removal), its namespace unmounted: with the lock held, nothing
    /// else is making or removing one.
    fn sweep_orphans_locked(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let dir = e.path();
            let orphan = if name.starts_with(".removing-") {
                true
            } else {
                !name.starts_with('.') && dir.is_dir() && !dir.join("network.json").exists()
            };
            if orphan {
                remove_dir(&dir);
            }
        }
    }

    fn create_locked(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        all: &[Network],
    ) -> Result<Network> {
        self.sweep_orphans_locked();
        let used: Vec<u8> = all.iter().map(|n| n.record.index).collect();
        let index = free_subnet(&used).context("no free subnet left in 10.89.0.0/16")?;
        let id = crate::container::random_id();
        let dir = self.dir.join(&id);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("create {}", dir.display()))?;
        let n = Network {
            dir: dir.clone(),
            record: Record {
                name: name.to_string(),
                id,
                created: store::now_rfc3339(),
                index,
                labels,
                endpoints: BTreeMap::new(),
            },
        };
        let made = make_netns(&n.netns(), n.record.gateway()).and_then(|()| Self::save(&n));
        if let Err(e) = made {
            remove_dir(&dir);
            return Err(e);
        }
        Ok(n)
    }

    /// Container ids that use `n`: running members, and containers on disk (running or
    /// not) whose config names it.
    pub fn users(&self, n: &Network) -> Result<Vec<String>> {
        let mut ids: Vec<String> = n.record.endpoints.keys().cloned().collect();
        for c in crate::Containers::new(&self.store_root)?.list()? {
            if c.config.networks.iter().any(|a| a.id == n.record.id) && !ids.contains(&c.config.id)
            {
                ids.push(c.config.id.clone());
            }
        }
        Ok(ids)
    }

    /// `network rm`: refused while a container (even a stopped one) is attached.
    pub fn remove(&self, what: &str) -> Result<()> {
        let _l = self.lock()?;
        let n = self.get(what)?;
        if !self.users(&n)?.is_empty() {
            bail!(
                "error while removing network: network {} id {} has active endpoints",
                n.record.name,
                n.record.id
            );
        }
        self.remove_locked(&n)
    }

    fn remove_locked(&self, n: &Network) -> Result<()> {
        // Renamed first, so a half-removed network is never listed.
        let gone = self.dir.join(format!(".removing-{}", n.record.id));
        std::fs::rename(&n.dir, &gone)
            .with_context(|| format!("remove network {}", n.record.name))?;
        let ns = gone.join("netns");
        match rustix::mount::unmount(&ns, rustix::mount::UnmountFlags::DETACH) {
            Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e).with_context(|| format!("unmount {}", ns.display())),
        }
        std::fs::remove_dir_all(&gone).with_context(|| format!("remove {}", gone.display()))
    }

    /// `network prune`: every network no container uses, whose labels match every
    /// `label=` filter (`KEY` or `KEY=VALUE`); their names.
    pub fn prune(&self, labels: &[String]) -> Result<Vec<String>> {
        let _l = self.lock()?;
        self.sweep_orphans_locked();
        let mut removed = Vec::new();
        for n in self.list()? {
            if !labels
                .iter()
                .all(|l| crate::volumes::label_matches(&n.record.labels, l))
            {
                continue;
            }
            if self.users(&n)?.is_empty() {
                self.remove_locked(&n)?;
                removed.push(n.record.name.clone());
            }
        }
        Ok(removed)
    }

    /// Drop the endpoints of dead processes (and their veths), under the lock: the networks
    /// as they are now, and the ids of those that lost a member.
    fn sweep_locked(&self) -> Result<(Vec<Network>, Vec<String>)> {
        let mut out = Vec::new();
        let mut touched = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let dir = e?.path();
            if dir
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            let Ok(bytes) = std::fs::read(dir.join("network.json")) else {
                continue;
            };
            let mut n = Network {
                record: serde_json::from_slice(&bytes)
                    .with_context(|| format!("parse {}", dir.join("network.json").display()))?,
                dir,
            };
            let dead: Vec<String> = n
                .record
                .endpoints
                .iter()
                .filter(|(_, ep)| !crate::container::alive(ep.pid, ep.pid_start))
                .map(|(id, _)| id.clone())
                .collect();
            if !dead.is_empty() {
                for id in &dead {
                    if let Some(ep) = n.record.endpoints.remove(id) {
                        // Gone with the container's namespace already, as a rule (one `ip`
                        // each: a batch stops at its first error).
                        let _ = ip_in(&n.netns(), format!("link del {}\n", ep.veth));
                    }
                }
                Self::save(&n)?;
                touched.push(n.record.id.clone());
            }
            out.push(n);
        }
        Ok((out, touched))
    }

    /// Rewrite the hosts file of every running member of the networks `ids` (in place).
    fn refresh(all: &[Network], ids: &[&str]) {
        let mut members: BTreeMap<&str, &Endpoint> = BTreeMap::new();
        for n in all.iter().filter(|n| ids.contains(&n.record.id.as_str())) {
            for (id, e) in &n.record.endpoints {
                members.insert(id, e);
            }
        }
        for (id, e) in members {
            let nets: Vec<&Record> = all
                .iter()
                .map(|n| &n.record)
                .filter(|r| r.endpoints.contains_key(id))
                .collect();
            // A member whose file is gone has just ended; the next sweep drops it.
            let _ = rewrite_in_place(&e.hosts_file, &render_hosts(id, &e.hosts_base, &nets));
        }
    }

    /// Attach the container whose executor helper is `pid` (its namespace is
    /// `/proc/PID/ns/net`) to its networks: a veth and an address on each, then every
    /// member's hosts file rewritten. On failure nothing of it stays attached.
    pub fn attach(&self, j: &Joining, pid: u32) -> Result<()> {
        let _l = self.lock()?;
        let result = self.attach_locked(j, pid);
        if result.is_err() {
            let _ = self.detach_locked(&j.id);
        }
        result
    }

    fn attach_locked(&self, j: &Joining, pid: u32) -> Result<()> {
        let pid_start = crate::container::proc_start(pid)
            .with_context(|| format!("the container's process {pid} is gone"))?;
        let (mut all, mut touched) = self.sweep_locked()?;
        let veth = format!("v{}", j.id.get(..12).unwrap_or(&j.id));
        let container_ns = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let mut container_cmds = String::new();
        for (i, a) in j.networks.iter().enumerate() {
            let Some(n) = all.iter_mut().find(|n| n.record.id == a.id) else {
                bail!("network {} not found", a.name);
            };
            let used: Vec<u8> = n
                .record
                .endpoints
                .iter()
                .filter(|(id, _)| **id != j.id)
                .map(|(_, e)| e.ip.octets()[3])
                .collect();
            let host = free_host(&used)
                .with_context(|| format!("no free address left on network {}", a.name))?;
            let ip = Ipv4Addr::new(PREFIX[0], PREFIX[1], n.record.index, host);
            let ifname = format!("eth{i}");
            let add = format!(
                "link add {veth} type veth peer name {ifname} netns {pid}\n\
                 link set {veth} master br0 up\n"
            );
            let added = ip_in(&n.netns(), add.clone()).or_else(|e| {
                // An earlier run's veth may not be gone yet (a namespace's devices are
                // destroyed asynchronously): deleted, then added again.
                if !format!("{e:#}").contains("File exists") {
                    return Err(e);
                }
                ip_in(&n.netns(), format!("link del {veth}\n{add}"))
            });
            added.with_context(|| format!("connect to network {}", a.name))?;
            container_cmds.push_str(&format!(
                "addr add {ip}/24 dev {ifname}\nlink set {ifname} up\n"
            ));
            n.record.endpoints.insert(
                j.id.clone(),
                Endpoint {
                    name: j.name.clone(),
                    aliases: a.aliases.clone(),
                    hostname: j.hostname.clone(),
                    ip,
                    ifname,
                    veth: veth.clone(),
                    hosts_file: j.hosts_file.clone(),
                    hosts_base: j.hosts_base.clone(),
                    pid,
                    pid_start,
                },
            );
            Self::save(n)?;
        }
        if !container_cmds.is_empty() {
            ip_in(&container_ns, container_cmds).context("configure the network interfaces")?;
        }
        touched.extend(j.networks.iter().map(|a| a.id.clone()));
        let ids: Vec<&str> = touched.iter().map(String::as_str).collect();
        Self::refresh(&all, &ids);
        Ok(())
    }

    /// The container `id` has ended: its endpoints are released (addresses freed, veths
    /// deleted) and the other members' hosts files rewritten. Harmless when not attached.
    pub fn detach(&self, id: &str) -> Result<()> {
        let _l = self.lock()?;
        self.detach_locked(id)
    }

    fn detach_locked(&self, id: &str) -> Result<()> {
        let (mut all, mut touched) = self.sweep_locked()?;
        for n in all.iter_mut() {
            if let Some(ep) = n.record.endpoints.remove(id) {
                let _ = ip_in(&n.netns(), format!("link del {}\n", ep.veth));
                Self::save(n)?;
                touched.push(n.record.id.clone());
            }
        }
        let ids: Vec<&str> = touched.iter().map(String::as_str).collect();
        Self::refresh(&all, &ids);
        Ok(())
    }

    /// The live endpoint of container `id` on each network it is on: (network name, network
    /// id, endpoint), for `inspect`.
    pub fn endpoints_of(&self, id: &str) -> Vec<(Record, Endpoint)> {
        self.list()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| {
                let e = n.record.endpoints.get(id).cloned()?;
                Some((n.record, e))
            })
            .collect()
    }
}

/// Remove a network directory that failed to be made (its namespace unmounted first).
fn remove_dir(dir: &Path) {
    let _ = rustix::mount::unmount(dir.join("netns"), rustix::mount::UnmountFlags::DETACH);
    let _ = std::fs::remove_dir_all(dir);
}

/// A new network namespace with `lo` up and the bridge `br0` holding `gateway`/24, kept
/// alive by a bind mount of it onto the file `path`.
fn make_netns(path: &Path, gateway: Ipv4Addr) -> Result<()> {
    File::create(path).with_context(|| format!("create {}", path.display()))?;
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("strata-netns".into())
        .spawn(move || -> Result<()> {
            // SAFETY: CLONE_NEWNET moves only this (throw-away) thread into a new network
            // namespace; no memory, descriptor table or other thread is affected.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
                .context("create a network namespace")?;
            ip_here(&format!(
                "link set lo up\n\
                 link add br0 type bridge\n\
                 addr add {gateway}/24 dev br0\n\
                 link set br0 up\n"
            ))?;
            rustix::mount::mount_bind("/proc/thread-self/ns/net", &path)
                .with_context(|| format!("bind the network namespace onto {}", path.display()))
        })
        .context("start a thread")?
        .join()
        .map_err(|_| anyhow!("the namespace thread panicked"))?
}

/// What the container `c`, whose directory is `dir`, brings to its networks.
pub(crate) fn joining(c: &crate::Config, dir: &Path) -> Joining {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    Joining {
        id: c.id.clone(),
        name: c.name.clone(),
        hostname: c.hostname.clone(),
        networks: c.networks.clone(),
        hosts_file: dir.join("hosts"),
        hosts_base: hosts_base(&c.extra_hosts),
    }
}

/// Release the container `id`'s endpoints (after its run); errors only logged by callers.
pub(crate) fn release(store_root: &Path, c: &crate::Config) -> Result<()> {
    if c.networks.is_empty() {
        return Ok(());
    }
    Networks::new(store_root)?.detach(&c.id)
}

/// The executor's hook that attaches the container to its networks once its namespace
/// exists (see [`exec::NetworkHook`]); `None` without user-defined networks.
pub(crate) fn hook(store_root: &Path, j: Joining) -> Option<exec::NetworkHook> {
    if j.networks.is_empty() {
        return None;
    }
    let root = store_root.to_path_buf();
    Some(exec::NetworkHook(std::sync::Arc::new(move |pid| {
        Networks::new(&root)
            .and_then(|n| n.attach(&j, pid))
            .map_err(|e| format!("{e:#}"))
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocators_take_the_lowest_free() {
        assert_eq!(free_subnet(&[]), Some(0));
        assert_eq!(free_subnet(&[0, 1, 3]), Some(2));
        assert_eq!(free_subnet(&(0..=255).collect::<Vec<_>>()), None);
        assert_eq!(free_host(&[]), Some(2));
        assert_eq!(free_host(&[2, 3, 5]), Some(4));
        assert_eq!(free_host(&(2..=254).collect::<Vec<_>>()), None);
        let r = Record {
            name: "n".into(),
            id: "x".into(),
            created: String::new(),
            index: 7,
            labels: BTreeMap::new(),
            endpoints: BTreeMap::new(),
        };
        assert_eq!(r.subnet(), "10.89.7.0/24");
        assert_eq!(r.gateway().to_string(), "10.89.7.1");
    }

    fn ep(name: &str, host: u8, aliases: &[&str], hostname: &str) -> Endpoint {
        Endpoint {
            name: name.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            hostname: hostname.into(),
            ip: Ipv4Addr::new(10, 89, 0, host),
            ifname: "eth0".into(),
            veth: "v".into(),
            hosts_file: PathBuf::new(),
            hosts_base: String::new(),
            pid: 1,
            pid_start: 1,
        }
    }

    #[test]
    fn hosts_list_self_then_every_member() {
        let mut r = Record {
            name: "n".into(),
            id: "x".into(),
            created: String::new(),
            index: 0,
            labels: BTreeMap::new(),
            endpoints: BTreeMap::new(),
        };
        r.endpoints
            .insert("a".into(), ep("web", 2, &["www"], "aaaa"));
        r.endpoints
            .insert("b".into(), ep("db", 3, &["db", "pg"], "bbbb"));
        let base = hosts_base(&[("extra".into(), "1.2.3.4".into())]);
        assert_eq!(
            base,
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n1.2.3.4\textra\n"
        );
        assert_eq!(
            render_hosts("a", &base, &[&r]),
            format!("{base}10.89.0.2\taaaa web www\n10.89.0.3\tdb bbbb pg\n")
        );
        assert_eq!(
            render_hosts("b", "", &[&r]),
            "10.89.0.3\tbbbb db pg\n10.89.0.2\tweb aaaa www\n"
        );
        // A foreground run without a name: its hostname and aliases only.
        r.endpoints.insert("c".into(), ep("", 4, &[], "cccc"));
        assert!(render_hosts("a", "", &[&r]).ends_with("10.89.0.4\tcccc\n"));
    }

    /// Compose's calls: create-or-get by name with labels (twice: one network), the bridge
    /// in its own namespace (not the host's), then removal leaves no mount and no file.
    #[test]
    fn ensure_then_remove() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root (network namespaces, mounts)");
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let nets = Networks::new(root.path()).unwrap();
        let labels: BTreeMap<String, String> =
            [("com.docker.compose.project".to_string(), "p".to_string())].into();
        let (a, created) = nets.ensure("p_default", labels.clone()).unwrap();
        assert!(created);
        let (b, created) = nets.ensure("p_default", BTreeMap::new()).unwrap();
        assert!(!created);
        assert_eq!(a.record.id, b.record.id);
        assert_eq!(b.record.labels, labels);
        assert_eq!(b.record.subnet(), "10.89.0.0/24");
        let mountinfo = || std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let ns = a.netns();
        assert!(mountinfo().contains(ns.to_str().unwrap()));
        // The bridge and its address are in the network's namespace only.
        let host = Command::new(ip_program())
            .args(["-o", "addr"])
            .output()
            .unwrap();
        let host = String::from_utf8_lossy(&host.stdout);
        assert!(!host.contains(&a.record.gateway().to_string()), "{host}");
        ip_in(
            &ns,
            format!("addr show dev br0 to {}/32\n", a.record.gateway()),
        )
        .unwrap();
        assert!(nets.create("p_default", BTreeMap::new()).is_err());
        nets.remove("p_default").unwrap();
        assert!(!mountinfo().contains(root.path().to_str().unwrap()));
        assert!(nets.list().unwrap().is_empty());
        assert!(nets.remove("p_default").is_err());
    }

    #[test]
    fn names_follow_docker() {
        assert!(check_name("proj_default").is_ok());
        assert!(check_name("a.b-c").is_ok());
        assert!(check_name("-x").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("host").is_err());
        assert!(check_name("bridge").is_err());
    }
}
