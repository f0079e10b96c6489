//! The files: found (`-f`, `COMPOSE_FILE`, the search upward), read, interpolated,
//! schema-checked and made canonical, one at a time; `!reset`/`!override` taken out.

use crate::*;

/// One file read, interpolated, checked against the schema and made canonical; `shown` is
/// the name errors and warnings use.
pub(crate) fn read_doc(
    abs: &Path,
    path: &Path,
    env: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<(Node, Value, Vec<Vec<String>>), Error> {
    let text = std::fs::read_to_string(abs)
        .map_err(|e| Error::new(ErrorKind::Io, e.to_string()).at(Some(path), 0, 0))?;
    let mut root = yaml::parse(&text)
        .map_err(|(l, c, m)| Error::new(ErrorKind::Syntax, m).at(Some(path), l, c))?;
    if !matches!(root.value, Val::Map(_)) {
        return Err(
            Error::new(ErrorKind::Schema, "top-level object must be a mapping").at(
                Some(path),
                root.line,
                root.col,
            ),
        );
    }
    let mut unset = Vec::new();
    interpolate_node(&mut root, &mut Vec::new(), env, &mut unset).map_err(|e| e.at_file(path))?;
    for v in unset {
        let w = format!("The \"{v}\" variable is not set. Defaulting to a blank string.");
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    if root.get("version").is_some() {
        warnings.push(format!(
            "{}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion",
            path.display()
        ));
    }
    // `!reset` and `!override` (compose-spec 13-merge.md): a reset value is left out of this
    // file, and both clear what earlier files set at that path before this file merges.
    let mut replaced = Vec::new();
    take_merge_tags(&mut root, &mut Vec::new(), &mut replaced).map_err(|(l, c, p, m)| {
        Error::new(ErrorKind::Invalid, m)
            .at(Some(path), l, c)
            .path(p)
    })?;
    let mut doc = root.to_json();
    if let Err(v) = schema::validate(&doc) {
        let mut p = v.path.clone();
        let (line, col) = match &v.key {
            Some(k) => {
                p.push(schema::PathToken::Key(k.clone()));
                key_pos(&root, &p)
            }
            None => node_pos(&root, &p),
        };
        let mut msg = v.message.clone();
        if let Some(k) = &v.key {
            if let Some(s) = suggest(&root, &v.path, k) {
                msg.push_str(&format!(" — did you mean {s}?"));
            }
        }
        return Err(Error::new(ErrorKind::Schema, msg)
            .at(Some(path), line, col)
            .path(schema::display_path(&p)));
    }
    canon::canonical(&mut doc).map_err(|(p, m)| {
        let (l, c) = node_pos(&root, &p);
        Error::new(ErrorKind::Invalid, m)
            .at(Some(path), l, c)
            .path(schema::display_path(&p))
    })?;
    if let Some(o) = doc.as_object_mut() {
        o.remove("version");
    }
    Ok((root, doc, replaced))
}

/// Removes `!reset` nodes from the tree and lists the key paths of `!reset` and `!override`.
pub(crate) fn take_merge_tags(
    n: &mut Node,
    path: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> Result<(), (u64, u64, String, String)> {
    match &mut n.value {
        Val::Map(m) => {
            let mut i = 0;
            while i < m.len() {
                let (k, v) = &mut m[i];
                path.push(k.name.clone());
                let tag = v.tag.clone();
                match tag.as_deref() {
                    Some("!reset") => {
                        out.push(path.clone());
                        path.pop();
                        m.remove(i);
                        continue;
                    }
                    Some("!override") => out.push(path.clone()),
                    _ => {}
                }
                take_merge_tags(v, path, out)?;
                path.pop();
                i += 1;
            }
        }
        Val::Seq(items) => {
            for (i, it) in items.iter_mut().enumerate() {
                if matches!(it.tag.as_deref(), Some("!reset" | "!override")) {
                    return Err((
                        it.line,
                        it.col,
                        format!("{}[{i}]", path.join(".")),
                        format!(
                            "{} applies to a mapping's value, not to a list item",
                            it.tag.as_deref().unwrap_or("")
                        ),
                    ));
                }
                take_merge_tags(it, path, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Removes the value at a key path of a JSON document, if there is one.
pub(crate) fn remove_path(doc: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = doc;
    for k in parents {
        match cur.get_mut(k.as_str()) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.shift_remove(last.as_str());
    }
}

/// The files to read: `-f`, `COMPOSE_FILE`, or the search upward from `cwd`.
pub(crate) fn find_files(opts: &Options, cwd: &Path) -> Result<Vec<(PathBuf, PathBuf)>, Error> {
    if !opts.files.is_empty() {
        let files: Vec<PathBuf> = opts.files.iter().map(|f| absolute(cwd, f)).collect();
        for (f, given) in files.iter().zip(&opts.files) {
            if !f.is_file() {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("open {}: no such file or directory", given.display()),
                ));
            }
        }
        return Ok(files.into_iter().zip(opts.files.iter().cloned()).collect());
    }
    if let Some(cf) = opts
        .environment
        .get("COMPOSE_FILE")
        .filter(|v| !v.is_empty())
    {
        let o = Options {
            files: cf
                .split(
                    opts.environment
                        .get("COMPOSE_PATH_SEPARATOR")
                        .map(String::as_str)
                        .filter(|s| !s.is_empty())
                        .unwrap_or(":"),
                )
                .map(PathBuf::from)
                .collect(),
            ..Options::default()
        };
        return find_files(&o, cwd);
    }
    let start = opts
        .project_directory
        .as_deref()
        .map(|d| absolute(cwd, d))
        .unwrap_or_else(|| cwd.to_path_buf());
    let mut dir = Some(start.as_path());
    while let Some(d) = dir {
        if let Some(f) = DEFAULT_FILES
            .iter()
            .map(|n| d.join(n))
            .find(|p| p.is_file())
        {
            let stem = f.file_name().unwrap().to_string_lossy();
            let stem = stem.split('.').next().unwrap_or("compose").to_string();
            let mut out = vec![f];
            if let Some(o) = [".override.yaml", ".override.yml"]
                .iter()
                .map(|s| d.join(format!("{stem}{s}")))
                .find(|p| p.is_file())
            {
                out.push(o);
            }
            return Ok(out
                .into_iter()
                .map(|f| {
                    let shown = f
                        .strip_prefix(cwd)
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|_| f.clone());
                    (f, shown)
                })
                .collect());
        }
        dir = d.parent();
    }
    Err(Error::new(
        ErrorKind::NotFound,
        "no configuration file provided: not found",
    ))
}

pub(crate) fn absolute(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    clean(&joined)
}

/// Lexical cleaning: `.` dropped, `..` pops.
pub(crate) fn clean(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// Interpolates every string value (not keys) of the tree.
pub(crate) fn interpolate_node(
    n: &mut Node,
    path: &mut Vec<schema::PathToken>,
    env: &BTreeMap<String, String>,
    unset: &mut Vec<String>,
) -> Result<(), Error> {
    use interpolate::InterpolationError as IE;
    let (line, col) = (n.line, n.col);
    match &mut n.value {
        Val::Str(s) => {
            let lookup = |k: &str| env.get(k).cloned();
            match interpolate::interpolate(s, &lookup, unset) {
                Ok(v) => *s = v,
                Err(IE::Required { var, message }) => {
                    return Err(Error::new(
                        ErrorKind::Interpolation,
                        format!("required variable {var} is missing a value: {message}"),
                    )
                    .at(None, line, col)
                    .path(schema::display_path(path)));
                }
                Err(IE::Invalid) => {
                    return Err(Error::new(
                        ErrorKind::Interpolation,
                        format!("invalid interpolation format {s:?}; you may need to escape any $ with another $"),
                    )
                    .at(None, line, col)
                    .path(schema::display_path(path)));
                }
            }
        }
        Val::Seq(items) => {
            for (i, it) in items.iter_mut().enumerate() {
                path.push(schema::PathToken::Index(i));
                interpolate_node(it, path, env, unset)?;
                path.pop();
            }
        }
        Val::Map(m) => {
            for (k, v) in m.iter_mut() {
                path.push(schema::PathToken::Key(k.name.clone()));
                interpolate_node(v, path, env, unset)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}
