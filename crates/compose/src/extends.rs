//! `extends`: a service built on another of the same file or of another file.

use crate::*;

/// Resolves every service's `extends` in one canonical document (`abs` is its file).
pub(crate) fn apply_extends(
    doc: &mut Value,
    root: &Node,
    abs: &Path,
    shown: &Path,
    dir: &Path,
    env: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<(), Error> {
    let Some(services) = doc.get("services").and_then(Value::as_object).cloned() else {
        return Ok(());
    };
    let file = FileRef {
        abs,
        shown,
        dir,
        root,
    };
    let mut out = services.clone();
    for (name, svc) in &services {
        if svc.get("extends").is_some() {
            let mut stack = Vec::new();
            let v = extend_service(&services, name, &file, env, warnings, &mut stack)?;
            out.insert(name.clone(), v);
        }
    }
    doc["services"] = Value::Object(out);
    Ok(())
}

pub(crate) struct FileRef<'a> {
    abs: &'a Path,
    shown: &'a Path,
    dir: &'a Path,
    root: &'a Node,
}

/// The service `name` of `services` (in `file`) with its `extends` chain merged under it.
pub(crate) fn extend_service(
    services: &serde_json::Map<String, Value>,
    name: &str,
    file: &FileRef,
    env: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
    stack: &mut Vec<(PathBuf, String)>,
) -> Result<Value, Error> {
    let mut svc = services[name].clone();
    let Some(ext) = svc.as_object_mut().and_then(|m| m.remove("extends")) else {
        return Ok(svc);
    };
    let here = ["services", name, "extends"].map(|k| schema::PathToken::Key(k.to_string()));
    let located = |kind: ErrorKind, msg: String| {
        let (l, c) = key_pos(file.root, &here);
        Error::new(kind, msg)
            .at(Some(file.shown), l, c)
            .path(format!("services.{name}.extends"))
    };
    let key = (file.abs.to_path_buf(), name.to_string());
    if stack.contains(&key) {
        let chain: Vec<&str> = stack.iter().map(|(_, n)| n.as_str()).collect();
        return Err(located(
            ErrorKind::Invalid,
            format!(
                "circular reference with extends: {} -> {name}",
                chain.join(" -> ")
            ),
        ));
    }
    stack.push(key);
    let (base_name, base_file) = match &ext {
        Value::String(s) => (s.clone(), None),
        m => (
            canon::scalar_string(m.get("service").unwrap_or(&Value::Null)),
            m.get("file").and_then(Value::as_str).map(str::to_string),
        ),
    };
    let mut base = match base_file {
        None => {
            if !services.contains_key(&base_name) {
                return Err(located(
                    ErrorKind::UndefinedService,
                    format!("cannot extend service {name:?}: service {base_name:?} not found"),
                ));
            }
            extend_service(services, &base_name, file, env, warnings, stack)?
        }
        Some(f) => {
            let abs = absolute(file.dir, Path::new(&f));
            let shown = file.shown.parent().unwrap_or(Path::new("")).join(&f);
            if !abs.is_file() {
                return Err(located(
                    ErrorKind::NotFound,
                    format!("cannot extend service {name:?}: file {f} not found"),
                ));
            }
            let (root2, doc2, _) = read_doc(&abs, &shown, env, warnings)?;
            let services2 = doc2
                .get("services")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            if !services2.contains_key(&base_name) {
                return Err(located(
                    ErrorKind::UndefinedService,
                    format!(
                        "cannot extend service {name:?}: service {base_name:?} not found in {f}"
                    ),
                ));
            }
            let dir2 = abs.parent().unwrap_or(Path::new("/")).to_path_buf();
            let file2 = FileRef {
                abs: &abs,
                shown: &shown,
                dir: &dir2,
                root: &root2,
            };
            let mut b = extend_service(&services2, &base_name, &file2, env, warnings, stack)?;
            rebase_paths(&mut b, &dir2);
            b
        }
    };
    stack.pop();
    let mut wrapped = json!({ "services": { "s": std::mem::take(&mut base) } });
    merge::merge_docs(&mut wrapped, json!({ "services": { "s": svc } }));
    Ok(wrapped["services"]["s"].take())
}

/// Relative host paths of a service from another file made absolute against its directory.
pub(crate) fn rebase_paths(svc: &mut Value, dir: &Path) {
    let fix = |v: &mut Value| {
        if let Value::String(p) = v {
            if !p.starts_with('/') && !p.starts_with('~') && !is_remote_context(p) {
                *p = absolute(dir, Path::new(p.as_str()))
                    .to_string_lossy()
                    .into_owned();
            }
        }
    };
    if let Some(c) = svc.get_mut("build").and_then(|b| b.get_mut("context")) {
        fix(c);
    }
    for v in svc
        .get_mut("volumes")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if v.get("type").and_then(Value::as_str) == Some("bind") {
            if let Some(src) = v.get_mut("source") {
                fix(src);
            }
        }
    }
    for f in svc
        .get_mut("env_file")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(p) = f.get_mut("path") {
            fix(p);
        }
    }
}
