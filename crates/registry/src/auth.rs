//! Credentials: `WWW-Authenticate` challenges and docker's `config.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::{Error, Result};

/// docker's key for Docker Hub in `config.json`.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse `Basic realm="x"` or `Bearer realm="https://auth",service="reg",scope="..."`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = match header.split_once(char::is_whitespace) {
        Some((s, r)) => (s, r),
        None => (header, ""),
    };
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params
                .get("realm")
                .filter(|r| r.starts_with("https://") || r.starts_with("http://"))?
                .clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

/// `k="v", k2=v2` (quoted strings may hold commas and escaped quotes).
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == ',' || b[i].is_whitespace()) {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i] != '=' && b[i] != ',' {
            i += 1;
        }
        let key = b[start..i]
            .iter()
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if i >= b.len() || b[i] != '=' {
            continue;
        }
        i += 1;
        let mut val = String::new();
        if i < b.len() && b[i] == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' && i + 1 < b.len() {
                    i += 1;
                }
                val.push(b[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < b.len() && b[i] != ',' {
                val.push(b[i]);
                i += 1;
            }
            val = val.trim().to_string();
        }
        if !key.is_empty() {
            out.insert(key, val);
        }
    }
    out
}

/// A user name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <hidden>)", self.username)
    }
}

impl Credentials {
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            B64.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("config.json"),
        _ => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".docker/config.json")
        }
    }
}

/// The key docker files a registry's credentials under.
pub fn auth_key(registry: &str) -> String {
    if is_docker_hub(registry) {
        DOCKER_HUB_AUTH_KEY.to_string()
    } else {
        registry.to_string()
    }
}

pub(crate) fn is_docker_hub(registry: &str) -> bool {
    matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// `https://host:port/v1/` → `host:port`.
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn read_config() -> Result<serde_json::Value> {
    let p = docker_config_path();
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| Error::Config(format!("{}: invalid JSON: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(Error::Config(format!("read {}: {e}", p.display()))),
    }
}

/// The credentials `config.json` holds for `registry`, if any.
pub fn lookup(registry: &str) -> Result<Option<Credentials>> {
    let cfg = read_config()?;
    let Some(auths) = cfg.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let want_hub = is_docker_hub(registry);
    for (key, v) in auths {
        let host = key_host(key);
        let matches = host == registry || (want_hub && is_docker_hub(host));
        if !matches {
            continue;
        }
        let Some(auth) = v.get("auth").and_then(|a| a.as_str()) else {
            continue;
        };
        if auth.is_empty() {
            continue;
        }
        let raw = B64
            .decode(auth.trim())
            .map_err(|_| Error::Config(format!("invalid auth for {key} in config.json")))?;
        let text = String::from_utf8(raw)
            .map_err(|_| Error::Config(format!("invalid auth for {key} in config.json")))?;
        let Some((u, p)) = text.split_once(':') else {
            return Err(Error::Config(format!(
                "invalid auth for {key} in config.json"
            )));
        };
        return Ok(Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        }));
    }
    Ok(None)
}

fn write_config(cfg: &serde_json::Value) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let p = docker_config_path();
    let dir = p.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Config(format!("create {}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".config.json.tmp-{}", std::process::id()));
    let bytes = serde_json::to_vec_pretty(cfg).unwrap_or_default();
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        std::io::Write::write_all(&mut f, &bytes)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &p)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Config(format!("write {}: {e}", p.display())));
    }
    Ok(())
}

/// Store credentials for `registry` as docker does (`auths.<key>.auth`), keeping the rest
/// of the file.
pub fn store(registry: &str, creds: &Credentials) -> Result<()> {
    let mut cfg = read_config()?;
    if !cfg.is_object() {
        cfg = serde_json::json!({});
    }
    let obj = cfg.as_object_mut().expect("object");
    let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    let auths = auths.as_object_mut().expect("object");
    // Drop other spellings of the same registry, so the new entry is the one found.
    let key = auth_key(registry);
    auths.retain(|k, _| key_host(k) != key_host(&key));
    auths.insert(
        key,
        serde_json::json!({
            "auth": B64.encode(format!("{}:{}", creds.username, creds.password))
        }),
    );
    write_config(&cfg)
}

/// Remove the credentials of `registry`; false when there were none.
pub fn remove(registry: &str) -> Result<bool> {
    let mut cfg = read_config()?;
    let key = auth_key(registry);
    let Some(auths) = cfg.get_mut("auths").and_then(|a| a.as_object_mut()) else {
        return Ok(false);
    };
    let before = auths.len();
    let hub = is_docker_hub(registry);
    auths.retain(|k, _| {
        let h = key_host(k);
        !(h == key_host(&key) || (hub && is_docker_hub(h)))
    });
    if auths.len() == before {
        return Ok(false);
    }
    write_config(&cfg)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Bearer realm=\"\""), None);
        assert_eq!(parse_challenge("Bearer realm=file:///etc/passwd"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(""), None);
        // Hostile input never panics.
        for s in [
            "Bearer realm=\"",
            "Bearer realm=\"a\\",
            "Bearer ,,,==\"",
            "Basic\u{0}",
        ] {
            let _ = parse_challenge(s);
        }
    }

    #[test]
    fn keys() {
        assert_eq!(auth_key("docker.io"), DOCKER_HUB_AUTH_KEY);
        assert_eq!(auth_key("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(key_host("https://index.docker.io/v1/"), "index.docker.io");
        assert_eq!(key_host("localhost:5000"), "localhost:5000");
    }

    #[test]
    fn config_round_trip() {
        let d = tempfile::tempdir().unwrap();
        // The one test in this binary that sets DOCKER_CONFIG.
        std::env::set_var("DOCKER_CONFIG", d.path());
        std::fs::write(
            d.path().join("config.json"),
            r#"{"auths":{"other:1":{"auth":"eDp5"}},"psFormat":"table"}"#,
        )
        .unwrap();
        let c = Credentials {
            username: "u".into(),
            password: "p:w".into(),
        };
        store("127.0.0.1:5000", &c).unwrap();
        store("docker.io", &c).unwrap();
        assert_eq!(lookup("127.0.0.1:5000").unwrap(), Some(c.clone()));
        assert_eq!(lookup("docker.io").unwrap(), Some(c.clone()));
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.path().join("config.json")).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "table");
        assert_eq!(v["auths"]["127.0.0.1:5000"]["auth"], "dTpwOnc=");
        assert!(v["auths"][DOCKER_HUB_AUTH_KEY]["auth"].is_string());
        assert_eq!(
            lookup("other:1").unwrap().map(|c| c.username),
            Some("x".into())
        );
        assert!(remove("127.0.0.1:5000").unwrap());
        assert!(!remove("127.0.0.1:5000").unwrap());
        assert_eq!(lookup("127.0.0.1:5000").unwrap(), None);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path().join("config.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
