//! ADD of a URL: fetch over http(s), trusting the system's CA bundle (which holds any
//! TLS-intercepting proxy's CA on these machines), check `--checksum`, and keep the file
//! with mode 0600 and the server's Last-Modified time, as BuildKit does.

use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::solver::BuildError;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .tls_config(registry::system_tls())
        .timeout_global(Some(std::time::Duration::from_secs(600)))
        .timeout_connect(Some(std::time::Duration::from_secs(15)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// The file name BuildKit gives a download: the URL path's last component.
fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let after_host = path.splitn(4, '/').nth(3).unwrap_or("");
    match after_host.rsplit('/').next() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => "index.html".to_string(),
    }
}

/// Download `url` into `dir`; returns the file's name there.
pub fn download(url: &str, dir: &Path, checksum: Option<&str>) -> Result<String, BuildError> {
    let fail = |reason: String| BuildError::Fetch {
        url: url.to_string(),
        reason,
    };
    let resp = agent().get(url).call().map_err(|e| fail(e.to_string()))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(fail(format!("HTTP {status}")));
    }
    let modified = resp
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .and_then(httpdate_to_unix);
    let name = file_name(url);
    let path = dir.join(&name);
    let mut f = std::fs::File::create(&path)
        .map_err(|e| BuildError::io(format!("create {}", path.display()), e))?;
    let mut body = resp.into_body();
    let mut r = body.as_reader();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        f.write_all(&buf[..n])
            .map_err(|e| BuildError::io(format!("write {}", path.display()), e))?;
    }
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    if let Some(want) = checksum {
        if want != digest {
            return Err(fail(format!(
                "checksum mismatch: expected {want}, got {digest}"
            )));
        }
    }
    drop(f);
    let mtime = modified.unwrap_or(0);
    crate::fsutil::set_meta(&path, 0o600, 0, 0, mtime)?;
    Ok(name)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` → seconds since the epoch.
fn httpdate_to_unix(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 {
        return None;
    }
    let day: i64 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as i64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<i64> = parts[4].split(':').filter_map(|x| x.parse().ok()).collect();
    if hms.len() != 3 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates() {
        assert_eq!(
            file_name("http://127.0.0.1:8080/a/b/file.tar.gz?x=1"),
            "file.tar.gz"
        );
        assert_eq!(file_name("https://example.com/"), "index.html");
        assert_eq!(file_name("https://example.com"), "index.html");
        assert_eq!(
            httpdate_to_unix("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
    }
}
