//! Validation against the Compose Specification's JSON schema (`schema/compose-spec.json`,
//! from github.com/compose-spec/compose-spec, Apache-2.0), with boon. A schema error's
//! instance path is mapped back to the YAML node (file, line, column) by the caller.

use boon::{Compiler, ErrorKind as SK, InstanceToken, Schemas, ValidationError};
use std::sync::OnceLock;

const SCHEMA: &str = include_str!("../schema/compose-spec.json");

/// One schema violation: the instance path as tokens, and compose-like wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub path: Vec<PathToken>,
    pub message: String,
    /// The offending key, when the error is about a key (an additional property).
    pub key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathToken {
    Key(String),
    Index(usize),
}

/// `services.web.ports[0]`.
pub(crate) fn display_path(path: &[PathToken]) -> String {
    let mut s = String::new();
    for t in path {
        match t {
            PathToken::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            PathToken::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn compiled() -> &'static (Schemas, boon::SchemaIndex) {
    static S: OnceLock<(Schemas, boon::SchemaIndex)> = OnceLock::new();
    S.get_or_init(|| {
        let json: serde_json::Value =
            serde_json::from_str(SCHEMA).expect("the bundled schema is JSON");
        let mut schemas = Schemas::new();
        let mut compiler = Compiler::new();
        compiler
            .add_resource("compose_spec.json", json)
            .expect("the bundled schema loads");
        let idx = compiler
            .compile("compose_spec.json", &mut schemas)
            .expect("the bundled schema compiles");
        (schemas, idx)
    })
}

/// Validates one (interpolated) document; the first, most specific violation.
pub(crate) fn validate(doc: &serde_json::Value) -> Result<(), Violation> {
    let (schemas, idx) = compiled();
    let Err(err) = schemas.validate(doc, *idx) else {
        return Ok(());
    };
    let mut leaves = Vec::new();
    collect(&err, &mut leaves);
    // The deepest instance path is the most specific; among equals, a key error first.
    let best = leaves
        .iter()
        .max_by_key(|e| {
            (
                e.instance_location.tokens.len(),
                matches!(e.kind, SK::AdditionalProperties { .. }),
            )
        })
        .copied()
        .unwrap_or(&err);
    Err(violation(best, &leaves))
}

fn collect<'a, 's, 'v>(e: &'a ValidationError<'s, 'v>, out: &mut Vec<&'a ValidationError<'s, 'v>>) {
    if e.causes.is_empty() {
        out.push(e);
    } else {
        for c in &e.causes {
            collect(c, out);
        }
    }
}

fn tokens(e: &ValidationError) -> Vec<PathToken> {
    e.instance_location
        .tokens
        .iter()
        .map(|t| match t {
            InstanceToken::Prop(p) => PathToken::Key(p.to_string()),
            InstanceToken::Item(i) => PathToken::Index(*i),
        })
        .collect()
}

fn violation(e: &ValidationError, all: &[&ValidationError]) -> Violation {
    let path = tokens(e);
    match &e.kind {
        SK::AdditionalProperties { got } => {
            let key = got.first().map(|k| k.to_string()).unwrap_or_default();
            Violation {
                path,
                message: "additional property not allowed".into(),
                key: Some(key),
            }
        }
        SK::Type { want, .. } => {
            // Under oneOf/anyOf every branch fails at the same place: list all wanted types.
            let mut wants: Vec<String> = Vec::new();
            for other in all
                .iter()
                .filter(|o| o.instance_location.to_string() == e.instance_location.to_string())
            {
                if let SK::Type { want, .. } = &other.kind {
                    for w in want.iter() {
                        let w = w.to_string();
                        if !wants.contains(&w) {
                            wants.push(w);
                        }
                    }
                }
            }
            if wants.is_empty() {
                wants = want.iter().map(|w| w.to_string()).collect();
            }
            let words: Vec<&str> = wants
                .iter()
                .map(|w| match w.as_str() {
                    "object" => "a mapping",
                    "array" => "a list",
                    "integer" => "an integer",
                    "number" => "a number",
                    "boolean" => "a boolean",
                    "null" => "null",
                    _ => "a string",
                })
                .collect();
            Violation {
                path,
                message: format!("must be {}", words.join(" or ")),
                key: None,
            }
        }
        kind => Violation {
            path,
            message: kind.to_string(),
            key: None,
        },
    }
}

/// The property names the schema allows for the object at `path` (for "did you mean").
pub(crate) fn allowed_keys(path: &[PathToken]) -> Vec<String> {
    let schema: serde_json::Value =
        serde_json::from_str(SCHEMA).expect("the bundled schema is JSON");
    let defs = &schema["definitions"];
    let resolve = |v: &serde_json::Value| -> serde_json::Value {
        let mut v = v.clone();
        for _ in 0..4 {
            if let Some(r) = v.get("$ref").and_then(|r| r.as_str()) {
                let name = r.trim_start_matches("#/definitions/");
                v = defs[name].clone();
            }
        }
        v
    };
    // The schemas a value may match here: the node itself and its oneOf/anyOf/allOf branches.
    let branches = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        let v = resolve(v);
        let mut out = vec![v.clone()];
        for alt in ["oneOf", "anyOf", "allOf"] {
            for b in v.get(alt).and_then(|a| a.as_array()).into_iter().flatten() {
                out.push(resolve(b));
            }
        }
        out
    };
    let mut cur = schema.clone();
    for t in path {
        let next = branches(&cur).into_iter().find_map(|b| match t {
            PathToken::Key(k) => b
                .get("properties")
                .and_then(|p| p.get(k.as_str()))
                .cloned()
                .or_else(|| {
                    b.get("patternProperties")
                        .and_then(|p| p.as_object())
                        .and_then(|pp| pp.values().next().cloned())
                }),
            PathToken::Index(_) => b.get("items").cloned(),
        });
        match next {
            Some(n) => cur = n,
            None => return Vec::new(),
        }
    }
    let mut names: Vec<String> = Vec::new();
    for b in branches(&cur) {
        if let Some(p) = b.get("properties").and_then(|p| p.as_object()) {
            names.extend(p.keys().cloned());
        }
    }
    names
}
