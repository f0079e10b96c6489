//! From a key path back to the YAML node: file, line and column for errors.

use crate::*;

pub(crate) fn walk<'a>(root: &'a Node, path: &[schema::PathToken]) -> Option<&'a Node> {
    let mut n = root;
    for t in path {
        n = match (t, &n.value) {
            (schema::PathToken::Key(k), Val::Seq(items)) => items
                .iter()
                .find(|i| matches!(&i.value, Val::Str(s) if s == k))?,
            (schema::PathToken::Key(k), _) => n.get(k)?,
            (schema::PathToken::Index(i), Val::Seq(s)) => s.get(*i)?,
            _ => return None,
        };
    }
    Some(n)
}

/// The position of the node at `path`, or of its nearest ancestor present.
pub(crate) fn node_pos(root: &Node, path: &[schema::PathToken]) -> (u64, u64) {
    for len in (0..=path.len()).rev() {
        if let Some(n) = walk(root, &path[..len]) {
            // A key's position is more useful than its (mapping) value's.
            if let (Some(schema::PathToken::Key(k)), Some(parent)) = (
                path[..len].last(),
                len.checked_sub(1).and_then(|l| walk(root, &path[..l])),
            ) {
                if matches!(n.value, Val::Map(_) | Val::Seq(_)) {
                    if let Some(key) = parent.key(k) {
                        return (key.line, key.col);
                    }
                }
            }
            return (n.line, n.col);
        }
    }
    (0, 0)
}

/// The position of the key at the end of `path`.
pub(crate) fn key_pos(root: &Node, path: &[schema::PathToken]) -> (u64, u64) {
    if let (Some(schema::PathToken::Key(k)), Some(parent)) = (
        path.last(),
        walk(root, &path[..path.len().saturating_sub(1)]),
    ) {
        if let Some(key) = parent.key(k) {
            return (key.line, key.col);
        }
    }
    node_pos(root, path)
}

/// "did you mean": the allowed key nearest to `bad` among the properties the schema allows at
/// that place.
pub(crate) fn suggest(_root: &Node, parent: &[schema::PathToken], bad: &str) -> Option<String> {
    let names = schema::allowed_keys(parent);
    names
        .into_iter()
        .map(|n| (strsim::damerau_levenshtein(bad, &n), n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 3))
        .min()
        .map(|(_, n)| n)
}

/// Finds where a key path of the merged document was written (the last file that has it).
pub(crate) struct Locator<'a> {
    pub(crate) files: &'a [Loaded],
}

impl Locator<'_> {
    pub(crate) fn error(&self, kind: ErrorKind, path: &[&str], msg: String) -> Error {
        let tokens: Vec<schema::PathToken> = path
            .iter()
            .map(|s| schema::PathToken::Key(s.to_string()))
            .collect();
        self.error_at(kind, &tokens, msg)
    }

    /// As [`Locator::error`], with list indexes in the path (`services.web.volumes[1]`).
    pub(crate) fn error_at(
        &self,
        kind: ErrorKind,
        tokens: &[schema::PathToken],
        msg: String,
    ) -> Error {
        let shown = schema::display_path(tokens);
        for f in self.files.iter().rev() {
            if walk(&f.root, tokens).is_some() {
                let (l, c) = key_pos(&f.root, tokens);
                return Error::new(kind, msg).at(Some(&f.path), l, c).path(shown);
            }
        }
        let file = self.files.first().map(|f| f.path.as_path());
        Error::new(kind, msg).at(file, 0, 0).path(shown)
    }
}

/// `services.NAME.KEY[i]` as path tokens.
pub(crate) fn item_path(service: &str, key: &str, i: usize) -> Vec<schema::PathToken> {
    use schema::PathToken::{Index, Key};
    vec![
        Key("services".into()),
        Key(service.into()),
        Key(key.into()),
        Index(i),
    ]
}
