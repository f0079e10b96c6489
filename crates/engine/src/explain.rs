//! Why a step missed the cache: each step slot (context, Dockerfile, stage, step number)
//! remembers what its last build saw; on a miss the differences are named — the
//! instruction, a build arg, a source file, or only the parent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use store::{Digest, Writer};

/// What a step saw.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Seen {
    pub parent: String,
    pub instruction: String,
    pub args: BTreeMap<String, String>,
    /// For COPY/ADD: each selected file's (size, mode, mtime) signature.
    pub files: BTreeMap<String, String>,
}

/// The meta kind of a slot's record (`meta/explain/<slot>`).
const META_EXPLAIN: &str = "explain";

/// Compare with the last build of this slot, remember `now`, and say what changed.
pub fn explain(store: &Writer<'_>, slot: &Digest, now: &Seen) -> String {
    let before: Option<Seen> = store
        .meta(META_EXPLAIN, slot)
        .and_then(|b| serde_json::from_str(&b).ok());
    if before.as_ref() != Some(now) {
        if let Ok(text) = serde_json::to_string(now) {
            let _ = store.set_meta(META_EXPLAIN, slot, &text);
        }
    }
    let Some(before) = before else {
        return "not built before".into();
    };
    let mut why = Vec::new();
    if before.instruction != now.instruction {
        why.push(format!(
            "the instruction changed (was: {})",
            before.instruction
        ));
    }
    for (k, v) in &now.args {
        match before.args.get(k) {
            Some(old) if old != v => why.push(format!("build arg {k} changed ({old} → {v})")),
            None => why.push(format!("build arg {k} is new")),
            _ => {}
        }
    }
    for k in before.args.keys().filter(|k| !now.args.contains_key(*k)) {
        why.push(format!("build arg {k} is gone"));
    }
    let mut files = Vec::new();
    for (f, sig) in &now.files {
        match before.files.get(f) {
            Some(old) if old != sig => files.push(format!("{f} changed")),
            None => files.push(format!("{f} is new")),
            _ => {}
        }
    }
    for f in before.files.keys().filter(|f| !now.files.contains_key(*f)) {
        files.push(format!("{f} is gone"));
    }
    if !files.is_empty() {
        let n = files.len();
        let shown: Vec<String> = files.into_iter().take(3).collect();
        why.push(format!(
            "source files: {}{}",
            shown.join(", "),
            if n > 3 {
                format!(" (+{} more)", n - 3)
            } else {
                String::new()
            }
        ));
    }
    if why.is_empty() {
        if before.parent != now.parent {
            "the parent step changed".into()
        } else {
            "the cache record is gone (pruned) or --no-cache".into()
        }
    } else {
        why.join("; ")
    }
}
