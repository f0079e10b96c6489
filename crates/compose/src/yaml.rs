//! YAML text to a tree that keeps every node's position ([`Node`]), parsed by serde-saphyr
//! (anchors, aliases and `<<` merge keys resolved by it), and that tree to JSON.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Spanned, Tagged};
use std::fmt;

/// A YAML node with the 1-based line and column where it is used.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Val,
    pub line: u64,
    pub col: u64,
    /// A local tag (`!reset`, `!override`), when the node has one.
    pub tag: Option<String>,
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub name: String,
    pub line: u64,
    pub col: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

impl Node {
    /// The child at `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Val::Map(m) => m.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The key node of `key` in a mapping.
    pub fn key(&self, key: &str) -> Option<&Key> {
        match &self.value {
            Val::Map(m) => m.iter().find(|(k, _)| k.name == key).map(|(k, _)| k),
            _ => None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Val::Null => J::Null,
            Val::Bool(b) => J::Bool(*b),
            Val::Int(i) => J::from(*i),
            Val::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Val::Str(s) => J::String(s.clone()),
            Val::Seq(s) => J::Array(s.iter().map(Node::to_json).collect()),
            Val::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Parses one YAML document. An empty document is an empty mapping.
pub(crate) fn parse(text: &str) -> Result<Node, (u64, u64, String)> {
    if text.trim().is_empty() {
        return Ok(Node {
            value: Val::Map(Vec::new()),
            line: 1,
            col: 1,
            tag: None,
        });
    }
    let spanned: Spanned<Tagged<Val>> = serde_saphyr::from_str(text).map_err(|e| {
        let loc = e.location();
        let (line, col) = loc.map_or((0, 0), |l| (l.line(), l.column()));
        let msg = e.without_snippet().to_string();
        (line, col, msg)
    })?;
    Ok(node(spanned))
}

fn node(s: Spanned<Tagged<Val>>) -> Node {
    Node {
        value: s.value.0,
        line: s.referenced.line(),
        col: s.referenced.column(),
        tag: s.value.1,
    }
}

impl<'de> Deserialize<'de> for Val {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }
    fn visit_none<E>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Val, D::Error> {
        Val::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Val, E> {
        Ok(Val::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Val, E> {
        Ok(Val::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Val, E> {
        i64::try_from(v).map(Val::Int).or(Ok(Val::Float(v as f64)))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Val, E> {
        Ok(i64::try_from(v).map_or(Val::Float(v as f64), Val::Int))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Val, E> {
        Ok(i64::try_from(v).map_or(Val::Float(v as f64), Val::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Val, E> {
        Ok(Val::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Val, E> {
        Ok(Val::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Val, E> {
        Ok(Val::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Val, E> {
        Ok(Val::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Spanned<Tagged<Val>>>()? {
            out.push(node(v));
        }
        Ok(Val::Seq(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        let mut out: Vec<(Key, Node)> = Vec::new();
        while let Some(k) = map.next_key::<Spanned<KeyText>>()? {
            let v = map.next_value::<Spanned<Tagged<Val>>>()?;
            let key = Key {
                name: k.value.0,
                line: k.referenced.line(),
                col: k.referenced.column(),
            };
            if let Some(slot) = out.iter_mut().find(|(o, _)| o.name == key.name) {
                *slot = (key, node(v));
            } else {
                out.push((key, node(v)));
            }
        }
        Ok(Val::Map(out))
    }
}

/// A mapping key: any scalar, as text.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Val::deserialize(d)? {
            Val::Null => Ok(KeyText("null".into())),
            Val::Bool(b) => Ok(KeyText(b.to_string())),
            Val::Int(i) => Ok(KeyText(i.to_string())),
            Val::Float(f) => Ok(KeyText(f.to_string())),
            Val::Str(s) => Ok(KeyText(s)),
            _ => Err(de::Error::custom("a mapping key must be a scalar")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_anchors_and_merge_keys() {
        let text = "x-base: &b\n  image: busybox\nservices:\n  web:\n    <<: *b\n    ports:\n      - \"80:80\"\n";
        let n = parse(text).unwrap();
        let web = n.get("services").unwrap().get("web").unwrap();
        assert_eq!(web.get("image").unwrap().value, Val::Str("busybox".into()));
        let ports = web.get("ports").unwrap();
        let Val::Seq(items) = &ports.value else {
            panic!()
        };
        assert_eq!((items[0].line, items[0].col), (7, 9));
        let k = web.key("ports").unwrap();
        assert_eq!((k.line, k.col), (6, 5));
        let n = parse("a: !reset []\nb: !override\n  x: 1\nc: !!str 5\n").unwrap();
        assert_eq!(n.get("a").unwrap().tag.as_deref(), Some("!reset"));
        assert_eq!(n.get("b").unwrap().tag.as_deref(), Some("!override"));
        assert_eq!(n.get("b").unwrap().get("x").unwrap().value, Val::Int(1));
        assert_eq!(n.get("c").unwrap().value, Val::Str("5".into()));
    }
}
