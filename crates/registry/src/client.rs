//! One registry endpoint: scheme selection (https, plain http only by opt-in), the ping,
//! authentication (anonymous, basic, bearer token with a per-scope cache) and the error
//! bodies of the distribution spec.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use ureq::http::Response;
use ureq::Body;

use crate::auth::{parse_challenge, Challenge, Credentials};
use crate::{Error, Options, Result};

pub(crate) type HttpResult = std::result::Result<Response<Body>, ureq::Error>;

/// The manifest media types we ask for, best first.
pub(crate) const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    /// scope → bearer token
    tokens: HashMap<String, String>,
}

pub(crate) struct Client {
    agent: ureq::Agent,
    /// The registry as the image reference names it (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// `https://registry-1.docker.io`, `http://127.0.0.1:5000`: no trailing slash.
    pub base: String,
    creds: Option<Credentials>,
    auth: Mutex<AuthState>,
}

/// TLS trusting the system's CA bundle (which holds any TLS-intercepting proxy's CA on
/// these machines), or the built-in web roots where there is none: for every https client
/// of strata (the registry's, and the engine's `ADD <url>`).
pub fn system_tls() -> ureq::tls::TlsConfig {
    let mut certs = Vec::new();
    for bundle in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ] {
        if let Ok(pem) = std::fs::read(bundle) {
            for item in ureq::tls::parse_pem(&pem).flatten() {
                if let ureq::tls::PemItem::Certificate(c) = item {
                    certs.push(c);
                }
            }
            break;
        }
    }
    let roots = if certs.is_empty() {
        ureq::tls::RootCerts::WebPki
    } else {
        ureq::tls::RootCerts::new_with_certs(&certs)
    };
    ureq::tls::TlsConfig::builder().root_certs(roots).build()
}

fn agent(opts: &Options) -> ureq::Agent {
    ureq::Agent::config_builder()
        .tls_config(system_tls())
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_resolve(Some(opts.connect_timeout))
        .timeout_recv_response(Some(Duration::from_secs(120)))
        .http_status_as_error(false)
        .max_redirects(8)
        .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Whether plain http may be used for `host` (`host[:port]`): listed as insecure, or on
/// the loopback (as docker treats 127.0.0.0/8).
pub(crate) fn insecure_allowed(host: &str, opts: &Options) -> bool {
    let bare = strip_port(host);
    if opts
        .insecure
        .iter()
        .any(|i| i == host || (i == bare && !i.contains(':')))
    {
        return true;
    }
    if bare == "localhost" || bare == "[::1]" || bare == "::1" {
        return true;
    }
    bare.parse::<std::net::Ipv4Addr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Percent-encode a query value.
pub(crate) fn qs(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Read at most `limit` bytes of a body; more is an error (a hostile or broken registry).
pub(crate) fn read_small(resp: Response<Body>, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    resp.into_body()
        .into_reader()
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Transfer(format!("reading {what}: {e}")))?;
    if out.len() as u64 > limit {
        return Err(Error::Invalid(format!(
            "{what} is larger than {limit} bytes"
        )));
    }
    Ok(out)
}

/// Read at most `limit` bytes of a response body (a caller that knows the size asks for
/// size + 1 and compares).
pub(crate) fn read_upto(resp: Response<Body>, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    resp.into_body()
        .into_reader()
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| Error::Transfer(format!("reading {what}: {e}")))?;
    Ok(out)
}

/// The message of a registry's error response: `{"errors":[{"code":..,"message":..}]}`,
/// rendered as docker does (`manifest unknown: manifest unknown`).
pub(crate) fn error_message(resp: Response<Body>) -> String {
    let status = resp.status().as_u16();
    let body = read_small(resp, 64 << 10, "error body").unwrap_or_default();
    let parsed: Option<String> = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            let errs = v.get("errors")?.as_array()?;
            let msgs: Vec<String> = errs
                .iter()
                .map(|e| {
                    let code = e
                        .get("code")
                        .and_then(|c| c.as_str())
                        .unwrap_or("unknown")
                        .replace('_', " ")
                        .to_lowercase();
                    let msg = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
                    if msg.is_empty() {
                        code
                    } else {
                        format!("{code}: {msg}")
                    }
                })
                .collect();
            (!msgs.is_empty()).then(|| msgs.join(", "))
        });
    match parsed {
        // The registry's words, with any control characters escaped.
        Some(m) => format!("{} (HTTP {status})", escape::text(&m)),
        None => format!("HTTP {status}"),
    }
}

impl Client {
    /// Reach `host` (`registry-1.docker.io`, `127.0.0.1:5000`) over https, or over plain
    /// http when https cannot connect and the host is allowed to be insecure. `base`
    /// overrides both with a full URL (a mirror).
    pub fn connect(
        registry: &str,
        host: &str,
        base: Option<&str>,
        creds: Option<Credentials>,
        opts: &Options,
    ) -> Result<Client> {
        let mut c = Client {
            agent: agent(opts),
            registry: registry.to_string(),
            base: String::new(),
            creds,
            auth: Mutex::new(AuthState::default()),
        };
        let candidates: Vec<String> = match base {
            Some(b) => vec![b.trim_end_matches('/').to_string()],
            None if insecure_allowed(host, opts) => {
                vec![format!("https://{host}"), format!("http://{host}")]
            }
            None => vec![format!("https://{host}")],
        };
        let mut tried = Vec::new();
        let mut last = String::new();
        // A name that does not resolve is no matter of http or https: no plain-http hint.
        let mut unresolved = false;
        for cand in &candidates {
            let url = format!("{cand}/v2/");
            tried.push(url.clone());
            // A host that accepts connections but never answers must not stall us either.
            let ping = c
                .agent
                .get(&url)
                .config()
                .timeout_global(Some(opts.connect_timeout * 2))
                .build();
            match ping.call() {
                Ok(resp) => {
                    c.base = cand.clone();
                    if resp.status().as_u16() == 401 {
                        let ch = resp
                            .headers()
                            .get("www-authenticate")
                            .and_then(|v| v.to_str().ok())
                            .and_then(parse_challenge);
                        c.auth.lock().map_err(|_| Error::poisoned())?.challenge = ch;
                    }
                    let _ = read_small(resp, 64 << 10, "ping");
                    return Ok(c);
                }
                Err(e) => {
                    last = e.to_string();
                    unresolved = matches!(e, ureq::Error::HostNotFound)
                        || last.contains("failed to lookup address");
                }
            }
        }
        let hint = if base.is_none() && !insecure_allowed(host, opts) && !unresolved {
            format!(" (for a plain-http registry, pass --insecure-registry {host} or add it to STRATA_INSECURE_REGISTRIES)")
        } else {
            String::new()
        };
        Err(Error::Unreachable {
            registry: registry.to_string(),
            tried: tried.join(", "),
            cause: format!("{last}{hint}"),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A `Location` header resolved against the endpoint.
    pub fn resolve_location(&self, loc: &str) -> String {
        if loc.starts_with("http://") || loc.starts_with("https://") {
            loc.to_string()
        } else if loc.starts_with('/') {
            format!("{}{loc}", self.base)
        } else {
            format!("{}/{loc}", self.base)
        }
    }

    /// The Authorization header for `scope`, fetching a token when the registry wants one.
    /// The state stays locked while a token is fetched, so parallel transfers share one.
    fn header_for(&self, scope: &str) -> Result<Option<String>> {
        let mut st = self.auth.lock().map_err(|_| Error::poisoned())?;
        if let Some(t) = st.tokens.get(scope) {
            return Ok(Some(format!("Bearer {t}")));
        }
        match st.challenge.clone() {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.creds.as_ref().map(|c| c.basic_header())),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let token = self.fetch_token(&realm, service.as_deref(), scope)?;
                st.tokens.insert(scope.to_string(), token.clone());
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Ask the token server (`realm`) for a token, with basic credentials when we have any.
    pub fn fetch_token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<String> {
        let mut url = realm.to_string();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        if let Some(s) = service {
            url.push_str(&format!("{sep}service={}", qs(s)));
            sep = '&';
        }
        for s in scope.split_whitespace() {
            url.push_str(&format!("{sep}scope={}", qs(s)));
            sep = '&';
        }
        let mut req = self.agent.get(&url);
        if let Some(c) = &self.creds {
            req = req.header("Authorization", c.basic_header());
        }
        let resp = req.call().map_err(|e| Error::Unreachable {
            registry: self.registry.clone(),
            tried: realm.to_string(),
            cause: format!("token server: {e}"),
        })?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(Error::Unauthorized(if self.creds.is_some() {
                "incorrect username or password".into()
            } else {
                "authentication required".into()
            }));
        }
        if !(200..300).contains(&status) {
            return Err(Error::Registry(format!(
                "token server {realm}: {}",
                error_message(resp)
            )));
        }
        let body = read_small(resp, 1 << 20, "token response")?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Error::Invalid(format!("token server {realm}: invalid JSON: {e}")))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Error::Invalid(format!("token server {realm} sent no token")))
    }

    /// `GET /v2/<repo>/blobs/<digest>`, authorised for `scope`: the response whatever its
    /// status (the caller words the error; redirects to the blob's storage are followed).
    pub fn get_blob(
        &self,
        repo: &str,
        digest: &store::Digest,
        scope: &str,
    ) -> Result<Response<Body>> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        self.send(scope, |a, auth| {
            let mut r = a.get(&url);
            if let Some(h) = auth {
                r = r.header("Authorization", h);
            }
            r.call()
        })
    }

    /// Send a request built by `make` (given the Authorization header to add), answering
    /// one 401 challenge: the request is made again with fresh credentials.
    pub fn send(
        &self,
        scope: &str,
        mut make: impl FnMut(&ureq::Agent, Option<&str>) -> HttpResult,
    ) -> Result<Response<Body>> {
        let header = self.header_for(scope)?;
        let resp = make(&self.agent, header.as_deref()).map_err(|e| self.transport(e))?;
        if resp.status().as_u16() != 401 {
            return Ok(resp);
        }
        let ch = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        let _ = read_small(resp, 64 << 10, "error body");
        {
            let mut st = self.auth.lock().map_err(|_| Error::poisoned())?;
            st.tokens.remove(scope);
            if ch.is_some() {
                st.challenge = ch.clone();
            }
        }
        if matches!(ch, Some(Challenge::Basic)) && self.creds.is_none() {
            return Err(Error::Unauthorized("authentication required".into()));
        }
        let header = self.header_for(scope)?;
        let resp = make(&self.agent, header.as_deref()).map_err(|e| self.transport(e))?;
        if resp.status().as_u16() == 401 {
            let msg = if self.creds.is_some() && matches!(ch, Some(Challenge::Basic)) {
                "incorrect username or password".to_string()
            } else {
                error_message(resp)
            };
            return Err(Error::Unauthorized(msg));
        }
        Ok(resp)
    }

    pub fn transport(&self, e: ureq::Error) -> Error {
        Error::Transfer(format!(
            "connection to {} ({}) failed: {e}",
            self.registry, self.base
        ))
    }

    /// Check credentials: what `login` does.
    pub fn verify_login(&self) -> Result<()> {
        let challenge = self
            .auth
            .lock()
            .map_err(|_| Error::poisoned())?
            .challenge
            .clone();
        match challenge {
            None => Ok(()),
            Some(Challenge::Bearer { realm, service, .. }) => {
                self.fetch_token(&realm, service.as_deref(), "").map(|_| ())
            }
            Some(Challenge::Basic) => {
                let Some(c) = &self.creds else {
                    return Err(Error::Unauthorized("authentication required".into()));
                };
                let resp = self
                    .agent
                    .get(&self.url("/v2/"))
                    .header("Authorization", c.basic_header())
                    .call()
                    .map_err(|e| self.transport(e))?;
                match resp.status().as_u16() {
                    200..=299 => Ok(()),
                    401 | 403 => Err(Error::Unauthorized("incorrect username or password".into())),
                    _ => Err(Error::Registry(error_message(resp))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_rules() {
        let mut o = Options::default();
        assert!(insecure_allowed("127.0.0.1:5000", &o));
        assert!(insecure_allowed("127.3.4.5", &o));
        assert!(insecure_allowed("localhost:80", &o));
        assert!(insecure_allowed("[::1]:5000", &o));
        assert!(!insecure_allowed("10.0.0.1:5000", &o));
        assert!(!insecure_allowed("registry.example:5000", &o));
        o.insecure = vec!["registry.example:5000".into(), "other.example".into()];
        assert!(insecure_allowed("registry.example:5000", &o));
        assert!(!insecure_allowed("registry.example:5001", &o));
        assert!(insecure_allowed("other.example:443", &o));
    }

    #[test]
    fn query_encoding() {
        assert_eq!(
            qs("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
