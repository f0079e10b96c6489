//! `RUN --mount=...` specifications.

use dockerfile::Node;

use super::{Mount, MountKind};
use crate::diag::{Diagnostic, ErrorKind, Locator};

/// Parse `--mount` values (BuildKit's CSV `key=value` form).
pub(super) fn parse_mount(spec: &str, node: &Node, loc: &Locator) -> Result<Mount, Diagnostic> {
    let err = |msg: String| {
        loc.at(
            ErrorKind::InvalidFlag,
            node.span,
            Some(spec),
            msg,
            Some("e.g. --mount=type=cache,target=/root/.cache".into()),
        )
    };
    let mut m = Mount {
        kind: MountKind::Bind,
        spec: spec.to_string(),
        ..Mount::default()
    };
    let mut readonly: Option<bool> = None;
    let fields: Vec<&str> = spec.split(',').collect();
    for field in fields.iter().filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_lowercase(), Some(v.trim())),
            None => (field.trim().to_lowercase(), None),
        };
        let need = |v: Option<&str>| {
            v.map(str::to_string)
                .ok_or_else(|| err(format!("invalid mount field {field:?}: missing a value")))
        };
        let num = |v: Option<&str>, octal: bool| -> Result<u32, Diagnostic> {
            let v =
                v.ok_or_else(|| err(format!("invalid mount field {field:?}: missing a value")))?;
            let r = if octal {
                u32::from_str_radix(v, 8)
            } else {
                v.parse()
            };
            r.map_err(|_| err(format!("invalid value for {key}: {v}")))
        };
        let boolean = |v: Option<&str>| -> Result<bool, Diagnostic> {
            match v.map(str::to_lowercase).as_deref() {
                None | Some("true") | Some("1") => Ok(true),
                Some("false") | Some("0") => Ok(false),
                Some(o) => Err(err(format!("invalid value for {key}: {o}"))),
            }
        };
        match key.as_str() {
            "type" => {
                let t = need(value)?.to_lowercase();
                m.kind = MountKind::parse(&t)
                    .ok_or_else(|| err(format!("unsupported mount type {t:?}")))?;
            }
            "target" | "dst" | "destination" => m.target = Some(need(value)?),
            "source" | "src" => m.source = Some(need(value)?),
            "from" => m.from = Some(need(value)?),
            "readonly" | "ro" => readonly = Some(boolean(value)?),
            "readwrite" | "rw" => readonly = Some(!boolean(value)?),
            "id" => m.id = Some(need(value)?),
            "sharing" => {
                let s = need(value)?.to_lowercase();
                if !["shared", "private", "locked"].contains(&s.as_str()) {
                    return Err(err(format!("unsupported sharing value {s:?}")));
                }
                m.sharing = Some(s);
            }
            "mode" => m.mode = Some(num(value, true)?),
            "uid" => m.uid = Some(num(value, false)?),
            "gid" => m.gid = Some(num(value, false)?),
            "required" => m.required = boolean(value)?,
            "size" => m.size = Some(need(value)?),
            "env" => m.env = Some(need(value)?),
            _ => return Err(err(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    m.readonly = readonly.unwrap_or(m.kind == MountKind::Bind);
    match m.kind {
        MountKind::Secret => {
            if m.id.is_none() && m.target.is_none() && m.env.is_none() {
                return Err(err("secret mount needs an id or a target".into()));
            }
            if m.id.is_none() {
                if let Some(t) = &m.target {
                    m.id = t.rsplit('/').next().map(str::to_string);
                }
            }
            if m.target.is_none() && m.env.is_none() {
                m.target = m.id.as_ref().map(|id| format!("/run/secrets/{id}"));
            }
        }
        MountKind::Ssh => {
            if m.id.is_none() {
                m.id = Some("default".into());
            }
        }
        _ => {
            if m.target.is_none() {
                return Err(err("mount target is required".into()));
            }
        }
    }
    Ok(m)
}
