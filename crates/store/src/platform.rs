//! Platforms (`os/arch[/variant]`) as containerd normalises them, the host's, and how an
//! image index's descriptor or an image config is matched against one.

use serde_json::Value;

use crate::image::ImageConfig;

/// A platform: what `--platform` names and what an index's descriptor carries.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// The host's platform.
impl Default for Platform {
    fn default() -> Self {
        Platform::host()
    }
}

/// A platform that is not `OS/ARCH[/VARIANT]`; carries the text as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {0:?}: expected OS/ARCH[/VARIANT]")]
pub struct PlatformError(pub String);

impl Platform {
    /// The platform this binary runs on (Go's names: amd64, arm64, ...).
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(String::from),
        }
    }

    /// containerd's `platforms.Normalize`: `x86_64` is `amd64`, `aarch64` is `arm64`
    /// (whose `v8` is dropped), `armhf` is `arm/v7`, a bare `arm` is `arm/v7`, a numeric
    /// variant gets its `v`.
    pub fn normalized(mut self) -> Platform {
        self.os = self.os.to_ascii_lowercase();
        if self.os == "macos" {
            self.os = "darwin".into();
        }
        let arch = self.architecture.to_ascii_lowercase();
        let variant = self.variant.take().map(|v| v.to_ascii_lowercase());
        let (a, v) = match arch.as_str() {
            "i386" => ("386".to_string(), None),
            "x86_64" | "x86-64" | "amd64" => (
                "amd64".to_string(),
                variant.filter(|v| v != "v1" && !v.is_empty()),
            ),
            "aarch64" | "arm64" => (
                "arm64".to_string(),
                variant.filter(|v| v != "8" && v != "v8" && !v.is_empty()),
            ),
            "armhf" => ("arm".to_string(), Some("v7".to_string())),
            "armel" => ("arm".to_string(), Some("v6".to_string())),
            "arm" => {
                let v = match variant.as_deref() {
                    None | Some("") | Some("7") => "v7".to_string(),
                    Some(v) if v.len() == 1 && v.as_bytes()[0].is_ascii_digit() => format!("v{v}"),
                    Some(v) => v.to_string(),
                };
                ("arm".to_string(), Some(v))
            }
            _ => (arch, variant.filter(|v| !v.is_empty())),
        };
        self.architecture = a;
        self.variant = v;
        self
    }

    /// Parse docker's spellings: `linux/amd64`, `linux/arm64/v8`, `arm64` (Linux),
    /// `linux/x86_64`; the result is normalised.
    pub fn parse(s: &str) -> Result<Platform, PlatformError> {
        let t = s.trim();
        let parts: Vec<&str> = t.split('/').collect();
        let p = match parts.as_slice() {
            // containerd: a lone known OS is that OS on the host's architecture.
            [os] if ["linux", "windows", "darwin", "freebsd"]
                .contains(&os.to_ascii_lowercase().as_str()) =>
            {
                let host = Platform::host();
                Platform {
                    os: os.to_string(),
                    ..host
                }
            }
            [arch] if !arch.is_empty() => Platform {
                os: "linux".into(),
                architecture: arch.to_string(),
                variant: None,
            },
            [os, arch] if !os.is_empty() && !arch.is_empty() => Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            },
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            },
            _ => return Err(PlatformError(s.to_string())),
        };
        if [&p.os, &p.architecture]
            .iter()
            .chain(p.variant.as_ref().iter())
            .any(|x| {
                !x.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            })
        {
            return Err(PlatformError(s.to_string()));
        }
        Ok(p.normalized())
    }

    /// The platform an image config says (an empty os or architecture is the host's, as
    /// docker treats an image that does not say).
    pub fn of_config(c: &ImageConfig) -> Platform {
        let host = Platform::host();
        Platform {
            os: if c.os.is_empty() {
                host.os
            } else {
                c.os.clone()
            },
            architecture: if c.architecture.is_empty() {
                host.architecture
            } else {
                c.architecture.clone()
            },
            variant: c.variant.clone(),
        }
        .normalized()
    }

    /// The platform of an index descriptor's `platform` object, if it has one.
    pub fn of_value(v: &Value) -> Option<Platform> {
        let get = |k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
        Some(
            Platform {
                os: get("os")?,
                architecture: get("architecture")?,
                variant: get("variant").filter(|v| !v.is_empty()),
            }
            .normalized(),
        )
    }

    /// The descriptor's `platform` object (OCI image index).
    pub fn to_value(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("architecture".into(), self.architecture.clone().into());
        m.insert("os".into(), self.os.clone().into());
        if let Some(v) = &self.variant {
            m.insert("variant".into(), v.clone().into());
        }
        Value::Object(m)
    }

    /// Whether an image of platform `have` serves a request for `self`: os and
    /// architecture equal; a variant asked for must be the one there (none asked: any).
    pub fn matches(&self, have: &Platform) -> bool {
        self.os == have.os
            && self.architecture == have.architecture
            && match (&self.variant, &have.variant) {
                (None, _) => true,
                (Some(a), Some(b)) => a == b,
                (Some(_), None) => false,
            }
    }

    /// Whether this is the host's platform (so its programs run without emulation).
    pub fn is_host(&self) -> bool {
        Platform::host().matches(self) || self.matches(&Platform::host())
    }
}

impl std::str::FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, PlatformError> {
        Platform::parse(s)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_spellings_normalise() {
        let p = |s: &str| Platform::parse(s).unwrap().to_string();
        assert_eq!(p("linux/amd64"), "linux/amd64");
        assert_eq!(p("linux/x86_64"), "linux/amd64");
        assert_eq!(p("LINUX/AARCH64"), "linux/arm64");
        assert_eq!(p("linux/arm64/v8"), "linux/arm64");
        assert_eq!(p("arm64"), "linux/arm64");
        assert_eq!(p("linux"), Platform::host().to_string());
        assert_eq!(p("linux/arm"), "linux/arm/v7");
        assert_eq!(p("linux/arm/6"), "linux/arm/v6");
        assert_eq!(p("linux/armhf"), "linux/arm/v7");
        assert_eq!(p("linux/i386"), "linux/386");
        for bad in [
            "",
            "linux/",
            "/amd64",
            "linux/amd64/v2/x",
            "linux/am d64",
            "a/b/",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn matching_needs_the_variant_asked_for() {
        let p = |s: &str| Platform::parse(s).unwrap();
        assert!(p("linux/arm64").matches(&p("linux/arm64/v8")));
        assert!(p("linux/amd64").matches(&p("linux/amd64")));
        assert!(!p("linux/amd64").matches(&p("linux/arm64")));
        assert!(!p("linux/arm/v6").matches(&p("linux/arm/v7")));
        let v = serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"});
        assert_eq!(Platform::of_value(&v).unwrap(), p("linux/arm64"));
        assert_eq!(p("linux/arm/v7").to_value()["variant"], "v7");
    }
}
