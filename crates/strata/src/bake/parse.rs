//! Bake files to a [`Config`]: HCL read by `hcl-edit` (which keeps every attribute's span, for
//! `file:line:col` in errors) and evaluated by `hcl-rs`'s evaluator, JSON (buildx's
//! `{"variable": …, "group": …, "target": …}`) read by serde_json with every string a
//! template, as HCL's JSON syntax has it. Variables first (defaults, the environment's value
//! over a `variable` block's default, defaults that use other variables), then the blocks.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{anyhow, bail, Result};
use hcl::edit::Span;
use hcl::eval::{Context, Evaluate};
use hcl::expr::{Expression, Object, ObjectKey, TemplateExpr};
use hcl::Value;

use super::{did_you_mean, funcs, Config, Group, Target, TARGET_KEYS};

/// A bake file's name (as given) and text.
pub struct File {
    pub name: String,
    pub text: String,
}

/// Where something was written: a file, and the line and column when the parser knows them
/// (JSON's reader does not).
#[derive(Clone, Debug)]
pub struct Loc {
    file: String,
    line: usize,
    col: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:{}", self.file, self.line, self.col)
        } else {
            f.write_str(&self.file)
        }
    }
}

struct RawAttr {
    key: String,
    expr: Expression,
    loc: Loc,
}

struct RawBlock {
    kind: String,
    labels: Vec<String>,
    attrs: Vec<RawAttr>,
    /// Blocks nested in this one (kind and place): bake has none but `variable`'s
    /// `validation`, which strata refuses.
    nested: Vec<(String, Loc)>,
    loc: Loc,
}

#[derive(Default)]
struct RawFile {
    attrs: Vec<RawAttr>,
    blocks: Vec<RawBlock>,
}

/// A file's line starts, to turn byte offsets into 1-based lines and columns (in
/// characters) without scanning the text again for each.
struct Lines<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> Lines<'t> {
    fn new(text: &'t str) -> Lines<'t> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { text, starts }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut end = offset.min(self.text.len());
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= end).max(1);
        let start = self.starts[line - 1];
        (line, self.text[start..end].chars().count() + 1)
    }
}

fn loc_of(file: &File, lines: &Lines, span: Option<std::ops::Range<usize>>) -> Loc {
    let (line, col) = span.map_or((0, 0), |s| lines.line_col(s.start));
    Loc {
        file: file.name.clone(),
        line,
        col,
    }
}

fn parse_hcl(file: &File) -> Result<RawFile> {
    use hcl::edit::structure::Structure;
    let body = hcl::edit::parser::parse_body(&file.text).map_err(|e| {
        anyhow!(
            "{}:{}:{}: {}",
            file.name,
            e.location().line(),
            e.location().column(),
            e.message()
        )
    })?;
    let lines = Lines::new(&file.text);
    let attr = |a: &hcl::edit::structure::Attribute| RawAttr {
        key: a.key.as_str().to_string(),
        expr: Expression::from(a.value.clone()),
        loc: loc_of(file, &lines, a.key.span().or_else(|| a.span())),
    };
    let mut out = RawFile::default();
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => out.attrs.push(attr(a)),
            Structure::Block(b) => {
                let mut block = RawBlock {
                    kind: b.ident.as_str().to_string(),
                    labels: b.labels.iter().map(|l| l.as_str().to_string()).collect(),
                    attrs: Vec::new(),
                    nested: Vec::new(),
                    loc: loc_of(file, &lines, b.ident.span().or_else(|| b.span())),
                };
                for inner in b.body.iter() {
                    match inner {
                        Structure::Attribute(a) => block.attrs.push(attr(a)),
                        Structure::Block(n) => block.nested.push((
                            n.ident.as_str().to_string(),
                            loc_of(file, &lines, n.ident.span().or_else(|| n.span())),
                        )),
                    }
                }
                out.blocks.push(block);
            }
        }
    }
    Ok(out)
}

/// A JSON value as an HCL expression; strings are templates (`${VAR}` interpolates).
fn json_expr(v: &serde_json::Value) -> Expression {
    match v {
        serde_json::Value::Null => Expression::Null,
        serde_json::Value::Bool(b) => Expression::Bool(*b),
        serde_json::Value::Number(n) => {
            let num = if let Some(i) = n.as_i64() {
                Some(hcl::Number::from(i))
            } else if let Some(u) = n.as_u64() {
                Some(hcl::Number::from(u))
            } else {
                n.as_f64().and_then(hcl::Number::from_f64)
            };
            num.map_or(Expression::Null, Expression::Number)
        }
        serde_json::Value::String(s) => {
            Expression::TemplateExpr(Box::new(TemplateExpr::QuotedString(s.clone())))
        }
        serde_json::Value::Array(a) => Expression::Array(a.iter().map(json_expr).collect()),
        serde_json::Value::Object(o) => {
            let mut obj = Object::new();
            for (k, v) in o {
                obj.insert(
                    ObjectKey::Expression(Expression::String(k.clone())),
                    json_expr(v),
                );
            }
            Expression::Object(obj)
        }
    }
}

fn parse_json(file: &File) -> Result<RawFile> {
    let v: serde_json::Value = serde_json::from_str(&file.text)
        .map_err(|e| anyhow!("{}:{}:{}: {e}", file.name, e.line(), e.column()))?;
    let serde_json::Value::Object(top) = v else {
        bail!(
            "{}: a bake file in JSON is an object ({{\"target\": {{...}}}})",
            file.name
        );
    };
    let here = Loc {
        file: file.name.clone(),
        line: 0,
        col: 0,
    };
    let mut out = RawFile::default();
    for (kind, value) in &top {
        match kind.as_str() {
            "variable" | "target" | "group" | "function" => {
                let serde_json::Value::Object(blocks) = value else {
                    bail!("{here}: \"{kind}\" must be an object of named {kind} blocks");
                };
                for (name, body) in blocks {
                    let serde_json::Value::Object(attrs) = body else {
                        bail!("{here}: {kind} \"{name}\" must be an object");
                    };
                    out.blocks.push(RawBlock {
                        kind: kind.clone(),
                        labels: vec![name.clone()],
                        attrs: attrs
                            .iter()
                            .map(|(k, v)| RawAttr {
                                key: k.clone(),
                                expr: json_expr(v),
                                loc: here.clone(),
                            })
                            .collect(),
                        nested: Vec::new(),
                        loc: here.clone(),
                    });
                }
            }
            // As in HCL's JSON syntax, any other key is a top-level attribute (a variable).
            _ => out.attrs.push(RawAttr {
                key: kind.clone(),
                expr: json_expr(value),
                loc: here.clone(),
            }),
        }
    }
    Ok(out)
}

fn parse_file(file: &File) -> Result<RawFile> {
    if file.name.ends_with(".json") {
        return parse_json(file);
    }
    match parse_hcl(file) {
        Ok(f) => Ok(f),
        // A JSON file under another name (`-f bake` of JSON, stdin): HCL fails on it.
        Err(e) if file.text.trim_start().starts_with('{') => parse_json(file).map_err(|_| e),
        Err(e) => Err(e),
    }
}

/// A variable waiting for its value.
struct PendingVar {
    name: String,
    expr: Expression,
    loc: Loc,
}

/// The value the environment gives a variable, typed as its default is (buildx: `true` for
/// a bool default, a number for a number default, else the string).
fn env_value(name: &str, default: &Expression, raw: &str, loc: &Loc) -> Result<Expression> {
    Ok(match default {
        Expression::Bool(_) => match raw.trim().to_lowercase().as_str() {
            "1" | "t" | "true" => Expression::Bool(true),
            "0" | "f" | "false" => Expression::Bool(false),
            _ => bail!(
                "{loc}: variable \"{name}\": ${name}={raw:?} from the environment is not a bool"
            ),
        },
        Expression::Number(_) => {
            let n = raw
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(hcl::Number::from_f64)
                .ok_or_else(|| {
                    anyhow!("{loc}: variable \"{name}\": ${name}={raw:?} from the environment is not a number")
                })?;
            Expression::Number(n)
        }
        _ => Expression::String(raw.to_string()),
    })
}

fn context_of(vars: &BTreeMap<String, Value>) -> Context<'static> {
    let mut ctx = Context::new();
    for (k, v) in vars {
        ctx.declare_var(k.as_str(), v.clone());
    }
    funcs::declare(&mut ctx);
    ctx
}

fn eval(expr: &Expression, ctx: &Context) -> Result<Value, hcl::eval::Error> {
    expr.evaluate(ctx)
}

/// Every variable's value: builtins, then `variable` blocks and top-level attributes (later
/// files override earlier ones), evaluated in as many rounds as their references need.
fn variables(
    files: &[RawFile],
    env: &BTreeMap<String, String>,
    builtins: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, Value>> {
    let mut pending: Vec<PendingVar> = Vec::new();
    let mut put = |v: PendingVar| match pending.iter_mut().find(|p| p.name == v.name) {
        Some(p) => *p = v,
        None => pending.push(v),
    };
    for f in files {
        for a in &f.attrs {
            put(PendingVar {
                name: a.key.clone(),
                expr: a.expr.clone(),
                loc: a.loc.clone(),
            });
        }
        for b in f.blocks.iter().filter(|b| b.kind == "variable") {
            let [name] = b.labels.as_slice() else {
                bail!("{}: a variable block has one label, its name: variable \"NAME\" {{ default = ... }}", b.loc);
            };
            if let Some((kind, loc)) = b.nested.first() {
                bail!("{loc}: variable \"{name}\": {kind} blocks are not supported yet");
            }
            let mut default = Expression::String(String::new());
            for a in &b.attrs {
                match a.key.as_str() {
                    "default" => default = a.expr.clone(),
                    "description" => {}
                    other => {
                        let hint = did_you_mean(other, ["default", "description"])
                            .map(|s| format!(" (did you mean {s}?)"))
                            .unwrap_or_default();
                        bail!(
                            "{}: variable \"{name}\": unknown attribute \"{other}\"{hint}",
                            a.loc
                        );
                    }
                }
            }
            let expr = match env.get(name) {
                Some(raw) => env_value(name, &default, raw, &b.loc)?,
                None => default,
            };
            put(PendingVar {
                name: name.clone(),
                expr,
                loc: b.loc.clone(),
            });
        }
    }
    let mut values = builtins.clone();
    for p in &pending {
        values.remove(&p.name);
    }
    while !pending.is_empty() {
        let ctx = context_of(&values);
        let waiting: Vec<String> = pending.iter().map(|p| p.name.clone()).collect();
        let mut next = Vec::new();
        let mut blocked = None;
        let before = pending.len();
        for p in pending {
            match eval(&p.expr, &ctx) {
                Ok(v) => {
                    values.insert(p.name.clone(), v);
                }
                Err(e) => match e.kind() {
                    hcl::eval::ErrorKind::UndefinedVar(id)
                        if waiting.iter().any(|w| w == id.as_str()) =>
                    {
                        blocked.get_or_insert_with(|| {
                            format!(
                                "{}: variable \"{}\": its value uses \"{}\", which uses it in turn",
                                p.loc,
                                p.name,
                                id.as_str()
                            )
                        });
                        next.push(p);
                    }
                    _ => bail!("{}: variable \"{}\": {}", p.loc, p.name, e.kind()),
                },
            }
        }
        if next.len() == before {
            bail!(
                "{}",
                blocked.unwrap_or_else(|| "variables refer to each other".into())
            );
        }
        pending = next;
    }
    Ok(values)
}

/// A value as the string a build flag takes (numbers and bools spelled as HCL does); `None`
/// for null.
fn string(v: &Value, what: &dyn Fn() -> String) -> Result<Option<String>> {
    Ok(match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => bail!("{}: expected a string", what()),
    })
}

fn list(v: &Value, what: &dyn Fn() -> String) -> Result<Option<Vec<String>>> {
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => {
            let mut out = Vec::new();
            for i in items {
                if let Some(s) = string(i, what)? {
                    out.push(s);
                }
            }
            Ok(Some(out))
        }
        _ => bail!("{}: expected a list of strings", what()),
    }
}

fn map(v: &Value, what: &dyn Fn() -> String) -> Result<Option<BTreeMap<String, String>>> {
    match v {
        Value::Null => Ok(None),
        Value::Object(o) => {
            let mut out = BTreeMap::new();
            for (k, v) in o {
                if let Some(s) = string(v, &|| format!("{} (key {k:?})", what()))? {
                    out.insert(k.clone(), s);
                }
            }
            Ok(Some(out))
        }
        _ => bail!("{}: expected a map of strings", what()),
    }
}

fn boolean(v: &Value, what: &dyn Fn() -> String) -> Result<Option<bool>> {
    Ok(match v {
        Value::Null => None,
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => bail!("{}: expected true or false", what()),
    })
}

/// Set attribute `key` of `t` to `v` (the names and types of buildx's `Target`).
pub(super) fn set_attr(
    t: &mut Target,
    key: &str,
    v: &Value,
    what: &dyn Fn() -> String,
) -> Result<()> {
    match key {
        "description" => t.description = string(v, what)?,
        "inherits" => t.inherits = list(v, what)?.unwrap_or_default(),
        "annotations" => t.annotations = list(v, what)?,
        "attest" => t.attest = list(v, what)?,
        "context" => t.context = string(v, what)?,
        "contexts" => t.contexts = map(v, what)?,
        "dockerfile" => t.dockerfile = string(v, what)?,
        "dockerfile-inline" => t.dockerfile_inline = string(v, what)?,
        "args" => t.args = map(v, what)?,
        "labels" => t.labels = map(v, what)?,
        "tags" => t.tags = list(v, what)?,
        "cache-from" => t.cache_from = list(v, what)?,
        "cache-to" => t.cache_to = list(v, what)?,
        "target" => t.target = string(v, what)?,
        "secret" => t.secret = list(v, what)?,
        "ssh" => t.ssh = list(v, what)?,
        "platforms" => t.platforms = list(v, what)?,
        "output" => t.output = list(v, what)?,
        "pull" => t.pull = boolean(v, what)?,
        "no-cache" => t.no_cache = boolean(v, what)?,
        "network" => t.network = string(v, what)?,
        "no-cache-filter" => t.no_cache_filter = list(v, what)?,
        "shm-size" => t.shm_size = string(v, what)?,
        "ulimits" => t.ulimits = list(v, what)?,
        "call" => t.call = string(v, what)?,
        "entitlements" => t.entitlements = list(v, what)?,
        "extra-hosts" => t.extra_hosts = map(v, what)?,
        "matrix" | "name" => bail!(
            "{}: matrix targets are not supported yet: write one target block per variant",
            what()
        ),
        other => {
            let hint = did_you_mean(other, TARGET_KEYS.iter().copied())
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            bail!("{}: unknown attribute{hint}", what())
        }
    }
    Ok(())
}

/// buildx's target names: `[a-zA-Z0-9_-]+`.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Read and evaluate bake files, in order: a later file's target of the same name is merged
/// into the earlier one attribute by attribute (`Target::merge`), a group's targets are
/// added to.
pub fn load(
    files: &[File],
    env: &BTreeMap<String, String>,
    builtins: &BTreeMap<String, Value>,
) -> Result<Config> {
    let raw = files.iter().map(parse_file).collect::<Result<Vec<_>>>()?;
    let vars = variables(&raw, env, builtins)?;
    let ctx = context_of(&vars);
    let mut config = Config::default();
    for f in &raw {
        for b in &f.blocks {
            let name = match (b.kind.as_str(), b.labels.as_slice()) {
                ("variable", _) => continue,
                ("function", _) => bail!(
                    "{}: function blocks are not supported yet (the built-in functions are)",
                    b.loc
                ),
                ("target" | "group", [name]) if valid_name(name) => name.clone(),
                ("target" | "group", [name]) => bail!(
                    "{}: {} name {name:?}: use letters, digits, '_' and '-'",
                    b.loc,
                    b.kind
                ),
                ("target" | "group", _) => bail!(
                    "{}: a {} block has one label, its name: {} \"NAME\" {{ ... }}",
                    b.loc,
                    b.kind,
                    b.kind
                ),
                (other, _) => {
                    let hint = did_you_mean(other, ["target", "group", "variable", "function"])
                        .map(|s| format!(" (did you mean {s}?)"))
                        .unwrap_or_default();
                    bail!("{}: unknown block type \"{other}\"{hint}", b.loc)
                }
            };
            if let Some((kind, loc)) = b.nested.first() {
                bail!(
                    "{loc}: {} \"{name}\": unexpected {kind} block inside it",
                    b.kind
                );
            }
            if b.kind == "group" {
                let mut g = Group {
                    name: name.clone(),
                    ..Group::default()
                };
                for a in &b.attrs {
                    let what = || format!("{}: group \"{name}\": attribute \"{}\"", a.loc, a.key);
                    let v = eval(&a.expr, &ctx).map_err(|e| anyhow!("{}: {}", what(), e.kind()))?;
                    match a.key.as_str() {
                        "targets" => g.targets = list(&v, &what)?.unwrap_or_default(),
                        "description" => g.description = string(&v, &what)?,
                        other => {
                            let hint = did_you_mean(other, ["targets", "description"])
                                .map(|s| format!(" (did you mean {s}?)"))
                                .unwrap_or_default();
                            bail!("{}: unknown attribute{hint}", what())
                        }
                    }
                }
                config.add_group(g);
            } else {
                let mut t = Target {
                    name: name.clone(),
                    ..Target::default()
                };
                for a in &b.attrs {
                    let what = || format!("{}: target \"{name}\": attribute \"{}\"", a.loc, a.key);
                    // The name first: an unknown attribute is reported as such, not as
                    // whatever its value fails on.
                    if !TARGET_KEYS.contains(&a.key.as_str()) {
                        set_attr(&mut t, &a.key, &Value::Null, &what)?;
                    }
                    let v = eval(&a.expr, &ctx).map_err(|e| anyhow!("{}: {}", what(), e.kind()))?;
                    set_attr(&mut t, &a.key, &v, &what)?;
                }
                config.add_target(t);
            }
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let line_col = |t: &str, o: usize| Lines::new(t).line_col(o);
        assert_eq!(line_col("ab\ncé d", 7), (2, 4));
        assert_eq!(line_col("ab\ncé d", 3), (2, 1));
        assert_eq!(line_col("ab\n", 3), (2, 1));
        assert_eq!(line_col("x", 0), (1, 1));
        // Past the end or inside a character: clamped, never a panic.
        assert_eq!(line_col("é", 1), (1, 1));
        assert_eq!(line_col("ab", 99), (1, 3));
    }
}
