//! The part of Go's `text/template` that docker's `--format` templates use, evaluated on
//! JSON (what `inspect` prints): text and `{{ }}` actions (with `{{-`/`-}}` trimming),
//! pipelines (`a | b`), fields (`.Config.Env`, `$.Id`), string, number and boolean
//! literals, parentheses, and the functions `json`, `index`, `len`, `join`, `split`,
//! `upper`, `lower`, `title`. No `if`/`range`/variables: a template that uses them is
//! refused with a parse error, never run half-understood.
//!
//! Values print as Go's `fmt` prints them: a list as `[a b]`, an object as `map[k:v]` (keys
//! sorted), a missing field as `<no value>`. JSON loses Go's types, so two things are
//! approximations, named where they are made: a null prints as the empty map or slice Go's
//! nil field would (for the fields docker declares as maps or slices, by name), and an
//! object that docker holds as a struct prints as a map (`map[Status:running ...]` where Go
//! prints `{running ...}`).

use serde_json::Value;

/// Nesting limit of parentheses: a hostile template is an error, never a deep recursion.
const MAX_DEPTH: usize = 64;

/// A parsed template.
#[derive(Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
}

#[derive(Debug)]
struct Pipeline(Vec<Cmd>);

#[derive(Debug)]
struct Cmd(Vec<Arg>);

#[derive(Debug)]
enum Arg {
    /// `.A.B` (from the current value) or `$.A.B` (from the root; the same here).
    Field(Vec<String>),
    Lit(Value),
    Func(Func),
    /// `(pipeline).A.B`
    Sub(Box<Pipeline>, Vec<String>),
}

#[derive(Debug, Clone, Copy)]
enum Func {
    Json,
    Index,
    Len,
    Join,
    Split,
    Upper,
    Lower,
    Title,
}

impl Func {
    fn named(name: &str) -> Option<Func> {
        Some(match name {
            "json" => Func::Json,
            "index" => Func::Index,
            "len" => Func::Len,
            "join" => Func::Join,
            "split" => Func::Split,
            "upper" => Func::Upper,
            "lower" => Func::Lower,
            "title" => Func::Title,
            _ => return None,
        })
    }
}

/// An error of the template itself, worded as docker words it.
fn parse_error(msg: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("template parsing error: template: :1: {msg}")
}

fn exec_error(msg: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("template: :1: executing \"\": {msg}")
}

impl Template {
    pub fn parse(text: &str) -> anyhow::Result<Template> {
        let mut nodes = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let mut before = &rest[..start];
            let mut inner = &rest[start + 2..];
            // `{{- ` trims the space before the action.
            if let Some(t) = inner.strip_prefix("- ") {
                before = before.trim_end();
                inner = t;
            } else if inner.starts_with("-\t") || inner.starts_with("-\n") {
                before = before.trim_end();
                inner = &inner[1..];
            }
            if !before.is_empty() {
                nodes.push(Node::Text(before.to_string()));
            }
            let end = find_close(inner).ok_or_else(|| parse_error("unclosed action"))?;
            let mut action = &inner[..end];
            let mut after = &inner[end + 2..];
            // ` -}}` trims the space after it.
            if action.ends_with(" -") || action.ends_with("\t-") || action.ends_with("\n-") {
                action = &action[..action.len() - 1];
                after = after.trim_start();
            }
            let toks = lex(action)?;
            let mut p = Parser {
                toks: &toks,
                pos: 0,
            };
            let pipe = p.pipeline(0)?;
            if p.pos != toks.len() {
                return Err(parse_error(format!(
                    "unexpected {} in command",
                    toks[p.pos].describe()
                )));
            }
            nodes.push(Node::Action(pipe));
            rest = after;
        }
        if !rest.is_empty() {
            nodes.push(Node::Text(rest.to_string()));
        }
        Ok(Template { nodes })
    }

    /// The template applied to `root`.
    pub fn execute(&self, root: &Value) -> anyhow::Result<String> {
        let mut out = String::new();
        for n in &self.nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = eval_pipeline(p, root)?;
                    out.push_str(&v.print());
                }
            }
        }
        Ok(out)
    }
}

/// The end of an action (`}}` outside a string literal), relative to `s`.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[derive(Debug, PartialEq)]
enum Tok {
    Pipe,
    Open,
    Close,
    /// `.A.B` after `(`…`)`, or a field chain: the names (empty for `.`).
    Field(Vec<String>),
    Lit(Value),
    Ident(String),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Pipe => "\"|\"".into(),
            Tok::Open => "\"(\"".into(),
            Tok::Close => "\")\"".into(),
            Tok::Field(f) => format!("<.{}>", f.join(".")),
            Tok::Lit(v) => v.to_string(),
            Tok::Ident(i) => format!("<{i}>"),
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn lex(s: &str) -> anyhow::Result<Vec<Tok>> {
    let chars: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                toks.push(Tok::Open);
                i += 1;
            }
            ')' => {
                toks.push(Tok::Close);
                i += 1;
            }
            '.' | '$' => {
                if c == '$' {
                    i += 1;
                    if chars.get(i) != Some(&'.') {
                        if chars.get(i).copied().is_some_and(is_ident) {
                            return Err(parse_error("variables are not supported"));
                        }
                        // `$` alone: the root.
                        toks.push(Tok::Field(Vec::new()));
                        continue;
                    }
                }
                let mut names = Vec::new();
                while chars.get(i) == Some(&'.') {
                    i += 1;
                    let start = i;
                    while chars.get(i).copied().is_some_and(is_ident) {
                        i += 1;
                    }
                    if start == i {
                        // A lone `.` is the dot; `.A.` is an error.
                        if names.is_empty() && chars.get(i) != Some(&'.') {
                            break;
                        }
                        return Err(parse_error("bad character in field name"));
                    }
                    names.push(chars[start..i].iter().collect());
                }
                toks.push(Tok::Field(names));
            }
            '"' => {
                let mut v = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(parse_error("unterminated quoted string")),
                        Some('"') => break,
                        Some('\\') => {
                            i += 1;
                            v.push(match chars.get(i) {
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some('\\') => '\\',
                                Some('"') => '"',
                                _ => return Err(parse_error("bad escape in quoted string")),
                            });
                        }
                        Some(&c) => v.push(c),
                    }
                    i += 1;
                }
                i += 1;
                toks.push(Tok::Lit(Value::String(v)));
            }
            '`' => {
                let start = i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or_else(|| parse_error("unterminated raw quoted string"))?;
                toks.push(Tok::Lit(Value::String(
                    chars[start..start + end].iter().collect(),
                )));
                i = start + end + 1;
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n: i64 = text
                    .parse()
                    .map_err(|_| parse_error(format!("bad number syntax: {text:?}")))?;
                toks.push(Tok::Lit(Value::from(n)));
            }
            c if is_ident(c) => {
                let start = i;
                while chars.get(i).copied().is_some_and(is_ident) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                toks.push(match word.as_str() {
                    "true" => Tok::Lit(Value::Bool(true)),
                    "false" => Tok::Lit(Value::Bool(false)),
                    "nil" => return Err(parse_error("nil is not a command")),
                    _ => Tok::Ident(word),
                });
            }
            c => return Err(parse_error(format!("unexpected {c:?} in command"))),
        }
    }
    Ok(toks)
}

struct Parser<'a> {
    toks: &'a [Tok],
    pos: usize,
}

impl Parser<'_> {
    fn pipeline(&mut self, depth: usize) -> anyhow::Result<Pipeline> {
        if depth > MAX_DEPTH {
            return Err(parse_error("template nested too deeply"));
        }
        let mut cmds = Vec::new();
        loop {
            let mut args = Vec::new();
            while let Some(t) = self.toks.get(self.pos) {
                match t {
                    Tok::Pipe | Tok::Close => break,
                    Tok::Open => {
                        self.pos += 1;
                        let sub = self.pipeline(depth + 1)?;
                        if self.toks.get(self.pos) != Some(&Tok::Close) {
                            return Err(parse_error("unclosed left paren"));
                        }
                        self.pos += 1;
                        // `(x).A` right after the paren.
                        let fields = match self.toks.get(self.pos) {
                            Some(Tok::Field(f)) if !f.is_empty() => {
                                self.pos += 1;
                                f.clone()
                            }
                            _ => Vec::new(),
                        };
                        args.push(Arg::Sub(Box::new(sub), fields));
                    }
                    Tok::Field(f) => {
                        self.pos += 1;
                        args.push(Arg::Field(f.clone()));
                    }
                    Tok::Lit(v) => {
                        self.pos += 1;
                        args.push(Arg::Lit(v.clone()));
                    }
                    Tok::Ident(name) => {
                        self.pos += 1;
                        if !args.is_empty() {
                            // A function is only ever the first word of a command.
                            return Err(parse_error(format!("unexpected <{name}> in operand")));
                        }
                        match Func::named(name) {
                            Some(f) => args.push(Arg::Func(f)),
                            None => {
                                return Err(parse_error(format!("function {name:?} not defined")))
                            }
                        }
                    }
                }
            }
            if args.is_empty() {
                return Err(parse_error("missing value for command"));
            }
            if args.len() > 1 && !matches!(args[0], Arg::Func(_)) {
                return Err(parse_error(format!(
                    "can't give argument to non-function {:?}",
                    args[0]
                )));
            }
            cmds.push(Cmd(args));
            if self.toks.get(self.pos) == Some(&Tok::Pipe) {
                self.pos += 1;
                continue;
            }
            return Ok(Pipeline(cmds));
        }
    }
}

/// A value met while evaluating: `None` is Go's invalid value (a missing field, printed
/// `<no value>`); `field` is the name it was reached by (for the nil-map/slice guess).
struct Val {
    v: Option<Value>,
    field: Option<String>,
}

impl Val {
    fn of(v: Value) -> Val {
        Val {
            v: Some(v),
            field: None,
        }
    }

    fn print(&self) -> String {
        match &self.v {
            None => "<no value>".into(),
            Some(Value::Null) => nil_as(self.field.as_deref()).unwrap_or("<no value>").into(),
            Some(v) => go_fmt(v, self.field.as_deref()),
        }
    }
}

/// How Go prints a nil field docker declares as a map or slice (JSON says only `null`).
/// Approximate: by the field's name.
fn nil_as(field: Option<&str>) -> Option<&'static str> {
    match field? {
        "Labels" | "ExposedPorts" | "Volumes" | "Data" | "PortBindings" | "Ports" | "Networks"
        | "Options" => Some("map[]"),
        "Env" | "Cmd" | "Entrypoint" | "OnBuild" | "Shell" | "Args" | "RepoTags"
        | "RepoDigests" | "Layers" | "Mounts" => Some("[]"),
        _ => None,
    }
}

/// Go's `%v` of a decoded JSON value: `[a b]`, `map[k:v]` (keys sorted), strings bare.
fn go_fmt(v: &Value, field: Option<&str>) -> String {
    match v {
        Value::Null => nil_as(field).unwrap_or("<nil>").into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(|x| go_fmt(x, None)).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_fmt(&o[k.as_str()], Some(k))))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

fn field_of(mut cur: Val, names: &[String]) -> anyhow::Result<Val> {
    for n in names {
        cur = match &cur.v {
            // A field of a missing or nil value: Go's `<no value>`.
            None | Some(Value::Null) => Val {
                v: None,
                field: Some(n.clone()),
            },
            Some(Value::Object(o)) => Val {
                v: o.get(n).cloned(),
                field: Some(n.clone()),
            },
            Some(other) => {
                return Err(exec_error(format!(
                    "can't evaluate field {n} in type {}",
                    go_type(other)
                )))
            }
        };
    }
    Ok(cur)
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "interface {}",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn eval_pipeline(p: &Pipeline, dot: &Value) -> anyhow::Result<Val> {
    let mut prev: Option<Val> = None;
    for cmd in &p.0 {
        prev = Some(eval_cmd(cmd, dot, prev)?);
    }
    Ok(prev.unwrap_or(Val {
        v: None,
        field: None,
    }))
}

fn eval_arg(a: &Arg, dot: &Value) -> anyhow::Result<Val> {
    match a {
        Arg::Field(names) => field_of(Val::of(dot.clone()), names),
        Arg::Lit(v) => Ok(Val::of(v.clone())),
        Arg::Sub(p, names) => field_of(eval_pipeline(p, dot)?, names),
        Arg::Func(_) => Err(exec_error("a function is no value")),
    }
}

fn eval_cmd(cmd: &Cmd, dot: &Value, piped: Option<Val>) -> anyhow::Result<Val> {
    let (func, rest) = match cmd.0.split_first() {
        Some((Arg::Func(f), rest)) => (*f, rest),
        Some((a, [])) => {
            if piped.is_some() {
                return Err(exec_error("can't give argument to non-function"));
            }
            return eval_arg(a, dot);
        }
        _ => return Err(exec_error("can't give argument to non-function")),
    };
    let mut args = Vec::with_capacity(rest.len() + 1);
    for a in rest {
        args.push(eval_arg(a, dot)?);
    }
    args.extend(piped);
    call(func, args)
}

fn want_args(name: &str, args: &[Val], n: usize) -> anyhow::Result<()> {
    if args.len() != n {
        return Err(exec_error(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        )));
    }
    Ok(())
}

fn string_arg(name: &str, v: &Val) -> anyhow::Result<String> {
    match &v.v {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(exec_error(format!(
            "{name}: wrong type for value; expected string"
        ))),
    }
}

fn call(f: Func, mut args: Vec<Val>) -> anyhow::Result<Val> {
    match f {
        Func::Json => {
            want_args("json", &args, 1)?;
            // docker's `json`: encoding/json without HTML escaping (as serde_json).
            let text = match &args[0].v {
                None => "null".to_string(),
                Some(v) => serde_json::to_string(v)?,
            };
            Ok(Val::of(Value::String(text)))
        }
        Func::Index => {
            if args.is_empty() {
                return Err(exec_error(
                    "wrong number of args for index: want at least 1 got 0",
                ));
            }
            let mut cur = args.remove(0);
            for k in args {
                cur = index_one(cur, &k)?;
            }
            Ok(cur)
        }
        Func::Len => {
            want_args("len", &args, 1)?;
            let n = match &args[0].v {
                Some(Value::Array(a)) => a.len(),
                Some(Value::Object(o)) => o.len(),
                Some(Value::String(s)) => s.len(),
                Some(Value::Null) => 0,
                _ => return Err(exec_error("error calling len: len of type without length")),
            };
            Ok(Val::of(Value::from(n)))
        }
        Func::Join => {
            want_args("join", &args, 2)?;
            let sep = string_arg("join", &args[1])?;
            let items: Vec<String> = match &args[0].v {
                Some(Value::Array(a)) => a.iter().map(|x| go_fmt(x, None)).collect(),
                Some(Value::Null) => Vec::new(),
                _ => return Err(exec_error("join: wrong type for value; expected []string")),
            };
            Ok(Val::of(Value::String(items.join(&sep))))
        }
        Func::Split => {
            want_args("split", &args, 2)?;
            let s = string_arg("split", &args[0])?;
            let sep = string_arg("split", &args[1])?;
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                s.split(sep.as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect()
            };
            Ok(Val::of(Value::Array(parts)))
        }
        Func::Upper | Func::Lower | Func::Title => {
            want_args("upper", &args, 1)?;
            let s = string_arg("upper", &args[0])?;
            Ok(Val::of(Value::String(match f {
                Func::Upper => s.to_uppercase(),
                Func::Lower => s.to_lowercase(),
                _ => title(&s),
            })))
        }
    }
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
}

fn index_one(cur: Val, key: &Val) -> anyhow::Result<Val> {
    match (&cur.v, &key.v) {
        (Some(Value::Object(o)), Some(Value::String(k))) => Ok(match o.get(k) {
            Some(v) => Val::of(v.clone()),
            // A missing key gives the zero value of the map's element type: "" for a map
            // of strings (labels), as docker's typed map; else nil. Approximate: a map
            // whose values are all strings is taken for a map[string]string.
            None if o.values().all(Value::is_string) => Val::of(Value::String(String::new())),
            None => Val {
                v: None,
                field: None,
            },
        }),
        // A nil map indexes to the zero value; labels are docker's usual nil map.
        (Some(Value::Null), Some(Value::String(_))) => Ok(Val::of(Value::String(String::new()))),
        (Some(Value::Array(a)), Some(Value::Number(n))) => {
            let i = n.as_i64().unwrap_or(-1);
            usize::try_from(i)
                .ok()
                .and_then(|i| a.get(i))
                .map(|v| Val::of(v.clone()))
                .ok_or_else(|| exec_error(format!("error calling index: index out of range: {i}")))
        }
        (None, _) => Err(exec_error("error calling index: index of untyped nil")),
        (Some(v), _) => Err(exec_error(format!(
            "error calling index: cannot index {} with {}",
            go_type(v),
            key.v.as_ref().map(go_type).unwrap_or("nil")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().execute(v).unwrap()
    }

    #[test]
    fn docker_inspect_templates() {
        let v = json!({
            "Id": "sha256:abc",
            "Config": {"Labels": {"b": "2", "a": "x y"}, "Env": ["A=1", "B=2"], "Cmd": null},
            "State": {"Status": "running", "Pid": 7},
        });
        assert_eq!(run("{{.Id}}", &v), "sha256:abc");
        assert_eq!(run("{{.Config.Labels}}", &v), "map[a:x y b:2]");
        assert_eq!(run("{{.Config.Env}}", &v), "[A=1 B=2]");
        assert_eq!(run("{{.Config.Cmd}}", &v), "[]");
        assert_eq!(run("{{json .Config.Env}}", &v), r#"["A=1","B=2"]"#);
        assert_eq!(run(r#"{{index .Config.Labels "a"}}"#, &v), "x y");
        assert_eq!(run(r#"{{index .Config.Labels "zz"}}"#, &v), "");
        assert_eq!(run("{{index .Config.Env 1}}", &v), "B=2");
        assert_eq!(run("{{.State.Status}} {{.State.Pid}}", &v), "running 7");
        assert_eq!(
            run("{{.Nope}} {{.Nope.Deeper}}", &v),
            "<no value> <no value>"
        );
        assert_eq!(run("{{- .Id -}} \n", &v), "sha256:abc");
        assert_eq!(run("{{.Config.Env | len}}", &v), "2");
        assert_eq!(run(r#"{{join .Config.Env ","}}"#, &v), "A=1,B=2");
        assert_eq!(run("{{(index .Config.Env 0) | upper}}", &v), "A=1");
        assert_eq!(run("{{$.Id}}", &v), "sha256:abc");
        assert_eq!(run(r#"{{ "}}" }}"#, &v), "}}");
    }

    #[test]
    fn bad_templates_are_errors_not_panics() {
        for t in [
            "{{.Id",
            "{{}}",
            "{{nosuch .Id}}",
            "{{.Id .Id}}",
            "{{ ( .Id }}",
            "{{ .Id ) }}",
            "{{\"x}}",
            "{{.A.}}",
            "{{$x}}",
            "{{ | }}",
            "{{ 99999999999999999999 }}",
            "{{ index }}",
        ] {
            let r = Template::parse(t).and_then(|t| t.execute(&json!({})));
            assert!(r.is_err(), "{t} should fail");
        }
        let deep = format!("{{{{{}.Id{}}}}}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(Template::parse(&deep).is_err());
        let ok_deep = format!("{{{{{}.Id{}}}}}", "(".repeat(10), ")".repeat(10));
        assert_eq!(run(&ok_deep, &json!({"Id": 1})), "1");
        // Unbalanced braces outside an action are text, as in Go.
        assert_eq!(run("}} {{.Id}} }", &json!({"Id": 1})), "}} 1 }");
        // Execution errors: a field of a string, an index out of range.
        assert!(Template::parse("{{.Id.X}}")
            .unwrap()
            .execute(&json!({"Id": "s"}))
            .is_err());
        assert!(Template::parse("{{index .L 5}}")
            .unwrap()
            .execute(&json!({"L": []}))
            .is_err());
    }
}
