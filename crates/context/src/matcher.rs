//! `.dockerignore` and `--exclude` patterns: a translation of moby/patternmatcher
//! (Apache-2.0) and of the ignore-file reader BuildKit uses (`dockerignore.ReadAll`, now
//! `patternmatcher/ignorefile`).

use std::fmt;

use crate::gopath::{self, go_lossy, go_match};
use crate::goregex::{self, MatchType};

/// Why a pattern list was refused. Displays as BuildKit reports it, e.g.
/// `invalid excludepatterns: [!]: illegal exclusion pattern: "!"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// The whole list as given (after ignore-file processing), as Go prints a `[]string`.
    pub patterns: Vec<String>,
    /// What is wrong.
    pub kind: PatternErrorKind,
}

/// The cause of a [`PatternError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternErrorKind {
    /// A pattern that is only `!`.
    IllegalExclusion,
    /// `filepath.Match` refuses the pattern (`filepath.ErrBadPattern`).
    BadPattern(String),
    /// The regular expression built from the pattern does not compile (Go reports this
    /// as `filepath.ErrBadPattern` too, when the pattern is first used).
    BadRegexp(String, String),
    /// An ignore file line longer than Go's `bufio.Scanner` accepts.
    LineTooLong,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid excludepatterns: [{}]: ",
            self.patterns.join(" ")
        )?;
        match &self.kind {
            PatternErrorKind::IllegalExclusion => write!(f, "illegal exclusion pattern: \"!\""),
            PatternErrorKind::BadPattern(p) => write!(f, "syntax error in pattern ({p:?})"),
            PatternErrorKind::BadRegexp(p, why) => {
                write!(f, "syntax error in pattern ({p:?}: {why})")
            }
            PatternErrorKind::LineTooLong => write!(f, "bufio.Scanner: token too long"),
        }
    }
}

impl std::error::Error for PatternError {}

/// One pattern, cleaned, with its compiled form.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    bytes: Vec<u8>,
    exclusion: bool,
    dirs: usize,
    kind: MatchType,
    regex: Option<regex::Regex>,
}

impl Pattern {
    /// The cleaned pattern without its `!` (patternmatcher's `String()`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the pattern started with `!` (re-includes what it matches).
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    /// How the pattern is matched.
    pub fn match_type(&self) -> MatchType {
        self.kind
    }

    fn is_match(&self, path: &str) -> bool {
        let p = path.as_bytes();
        match self.kind {
            MatchType::Exact => p == self.bytes.as_slice(),
            MatchType::Prefix => {
                let n = self.bytes.len().saturating_sub(2);
                p.starts_with(&self.bytes[..n])
            }
            MatchType::Suffix => {
                let suffix = self.bytes.get(2..).unwrap_or(&[]);
                if p.ends_with(suffix) {
                    return true;
                }
                // "**/foo" matches "foo".
                suffix.first() == Some(&b'/') && p == &suffix[1..]
            }
            MatchType::Regexp => self.regex.as_ref().is_some_and(|r| r.is_match(path)),
        }
    }

    /// The text without a trailing `/**` or `/*` (fsutil's `patternWithoutTrailingGlob`).
    pub fn without_trailing_glob(&self) -> &str {
        let t = self.text.strip_suffix("/**").unwrap_or(&self.text);
        t.strip_suffix("/*").unwrap_or(t)
    }
}

/// Per-pattern results for a directory, handed to its children
/// (patternmatcher's `MatchInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// A compiled list of patterns: last match wins, `!` re-includes, a pattern matching a
/// directory matches everything under it.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
    only_prefix_exclusions: bool,
}

impl Matcher {
    /// patternmatcher's `New`: trims each pattern, skips empty ones, cleans them like
    /// `filepath.Clean`, takes a leading `!` as an exclusion and checks the syntax with
    /// `filepath.Match`. Unlike patternmatcher, regular expressions are compiled here, so a
    /// pattern Go would only reject on first use is rejected now.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Matcher, PatternError> {
        let all: Vec<String> = patterns.iter().map(|p| p.as_ref().to_string()).collect();
        let err = |kind| PatternError {
            patterns: all.clone(),
            kind,
        };
        let mut out = Matcher {
            only_prefix_exclusions: true,
            ..Default::default()
        };
        for raw in &all {
            let p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let mut p = gopath::clean_str(p);
            let mut exclusion = false;
            if p.starts_with('!') {
                if p.len() == 1 {
                    return Err(err(PatternErrorKind::IllegalExclusion));
                }
                exclusion = true;
                p.remove(0);
                out.exclusions = true;
            }
            if go_match(p.as_bytes(), b".").is_err() {
                return Err(err(PatternErrorKind::BadPattern(p)));
            }
            let (kind, go_re) = goregex::compile(&p);
            let regex = match go_re {
                Some(go) => {
                    let compiled = goregex::translate(&go)
                        .and_then(|rs| regex::Regex::new(&rs).map_err(|e| e.to_string()));
                    match compiled {
                        Ok(r) => Some(r),
                        Err(why) => return Err(err(PatternErrorKind::BadRegexp(p, why))),
                    }
                }
                None => None,
            };
            let pat = Pattern {
                dirs: p.split('/').count(),
                bytes: p.clone().into_bytes(),
                text: p,
                exclusion,
                kind,
                regex,
            };
            if pat.exclusion
                && pat
                    .without_trailing_glob()
                    .contains(['*', '[', ']', '?', '^', '\\'])
            {
                out.only_prefix_exclusions = false;
            }
            out.patterns.push(pat);
        }
        Ok(out)
    }

    /// Reads an ignore file (see [`read_ignore_file`]) and compiles its patterns.
    pub fn from_ignore_file(text: &[u8]) -> Result<Matcher, PatternError> {
        Matcher::new(&read_ignore_file(text)?)
    }

    /// No patterns at all: nothing is ever matched.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The compiled patterns, in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether any pattern is an exclusion (`!…`).
    pub fn exclusions(&self) -> bool {
        self.exclusions
    }

    /// patternmatcher's `MatchesOrParentMatches`: whether `path` (slash separated, relative
    /// to the root, not cleaned) or one of its parent directories is matched and not
    /// re-included by a later `!` pattern.
    pub fn matches(&self, path: &str) -> bool {
        let parent = gopath::dir(path.as_bytes());
        let parent = go_lossy(&parent);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for pat in &self.patterns {
            if pat.exclusion != matched {
                continue;
            }
            let mut m = pat.is_match(path);
            if !m && parent != "." {
                m = (1..=parent_dirs.len()).any(|i| pat.is_match(&parent_dirs[..i].join("/")));
            }
            if m {
                matched = !pat.exclusion;
            }
        }
        matched
    }

    /// [`Matcher::matches`] on a path that may not be UTF-8 (invalid bytes are read as
    /// U+FFFD, as Go's regexp reads them).
    pub fn matches_bytes(&self, path: &[u8]) -> bool {
        self.matches(&go_lossy(path))
    }

    /// patternmatcher's `MatchesExact`: no parent directory matching.
    pub fn matches_exact(&self, path: &str) -> bool {
        let mut matched = false;
        for pat in &self.patterns {
            if pat.exclusion != matched {
                continue;
            }
            if pat.is_match(path) {
                matched = !pat.exclusion;
            }
        }
        matched
    }

    /// patternmatcher's deprecated `Matches`, kept for its test table: only the parent
    /// directory at the pattern's own depth is tried.
    pub fn matches_single_parent(&self, path: &str) -> bool {
        let parent = gopath::dir(path.as_bytes());
        let parent = go_lossy(&parent);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for pat in &self.patterns {
            if pat.exclusion != matched {
                continue;
            }
            let mut m = pat.is_match(path);
            if !m && parent != "." && pat.dirs <= parent_dirs.len() {
                m = pat.is_match(&parent_dirs[..pat.dirs].join("/"));
            }
            if m {
                matched = !pat.exclusion;
            }
        }
        matched
    }

    /// patternmatcher's deprecated `MatchesUsingParentResult`.
    pub fn matches_using_parent_result(&self, path: &str, parent_matched: bool) -> bool {
        let mut matched = parent_matched;
        for pat in &self.patterns {
            if pat.exclusion != matched {
                continue;
            }
            if pat.is_match(path) {
                matched = !pat.exclusion;
            }
        }
        matched
    }

    /// patternmatcher's `MatchesUsingParentResults`, for walkers: `parent` is what this
    /// returned for the parent directory ([`MatchInfo::default`] at the top, which makes it
    /// check every parent directory like [`Matcher::matches`]). A `parent` of the wrong
    /// length is treated as the default.
    pub fn matches_using_parent_results(
        &self,
        path: &str,
        parent: &MatchInfo,
    ) -> (bool, MatchInfo) {
        let parent_matched: &[bool] = if parent.parent_matched.len() == self.patterns.len() {
            &parent.parent_matched
        } else {
            &[]
        };
        let mut matched = false;
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        for (i, pat) in self.patterns.iter().enumerate() {
            let mut m = parent_matched.get(i).copied().unwrap_or(false);
            if !m {
                if pat.exclusion != matched {
                    continue;
                }
                m = pat.is_match(path);
                if !m && parent_matched.is_empty() {
                    let parent = gopath::dir(path.as_bytes());
                    let parent = go_lossy(&parent);
                    if parent != "." {
                        let dirs: Vec<&str> = parent.split('/').collect();
                        m = (1..=dirs.len()).any(|k| pat.is_match(&dirs[..k].join("/")));
                    }
                }
            }
            info.parent_matched[i] = m;
            if m {
                matched = !pat.exclusion;
            }
        }
        (matched, info)
    }

    /// The context walker's question (fsutil's `filterFS.Walk`): `dir` is matched; may its
    /// whole subtree be skipped? Only when no exclusion pattern could re-include anything
    /// beneath it: there are no `!` patterns, or every `!` pattern is literal (apart from a
    /// trailing `/*` or `/**`) and does not start with `dir/`.
    pub fn can_skip_excluded_dir(&self, dir: &str) -> bool {
        if !self.only_prefix_exclusions {
            return false;
        }
        if !self.exclusions {
            return true;
        }
        let dir_slash = format!("{dir}/");
        !self
            .patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| format!("{}/", p.without_trailing_glob()).starts_with(&dir_slash))
    }

    /// COPY `--exclude`'s rule for a matched directory (fsutil's `copier.exclude`): the
    /// directory is still copied when some `!` pattern, taken literally, lies beneath it.
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        if !self.exclusions {
            return false;
        }
        let dir_slash = format!("{dir}/");
        self.patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| format!("{}/", p.text).starts_with(&dir_slash))
    }
}

/// Go's `bufio.MaxScanTokenSize`.
const MAX_LINE: usize = 64 * 1024;

/// BuildKit's ignore-file reader (`ignorefile.ReadAll`): lines split on `\n` (a trailing
/// `\r` dropped), a UTF-8 BOM dropped from the first line, lines starting with `#`
/// skipped (before trimming), whitespace trimmed, empty lines skipped, and each pattern
/// cleaned with a leading `/` removed, keeping a leading `!` (itself trimmed after).
pub fn read_ignore_file(text: &[u8]) -> Result<Vec<String>, PatternError> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut first = true;
    while !rest.is_empty() {
        let (mut line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        if line.len() >= MAX_LINE {
            return Err(PatternError {
                patterns: out,
                kind: PatternErrorKind::LineTooLong,
            });
        }
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        if first {
            first = false;
            if let Some(l) = line.strip_prefix(b"\xEF\xBB\xBF") {
                line = l;
            }
        }
        if line.first() == Some(&b'#') {
            continue;
        }
        let s = go_lossy(line);
        let mut pattern = s.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut p = String::new();
        if !pattern.is_empty() {
            p = gopath::clean_str(pattern);
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
        }
        if invert {
            p.insert(0, '!');
        }
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_matches_buildkit() {
        let e = Matcher::from_ignore_file(b"!\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid excludepatterns: [!]: illegal exclusion pattern: \"!\""
        );
    }

    #[test]
    fn skip_rules() {
        let m = Matcher::new(&["build", "!build/keep"]).unwrap();
        assert!(!m.can_skip_excluded_dir("build"));
        assert!(m.can_skip_excluded_dir("other"));
        let m = Matcher::new(&["build", "!*/keep"]).unwrap();
        assert!(!m.can_skip_excluded_dir("other"));
        let m = Matcher::new(&["build"]).unwrap();
        assert!(m.can_skip_excluded_dir("build"));
        assert!(!m.may_reinclude_under("build"));
    }
}
