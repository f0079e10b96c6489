//! The test tables of moby/patternmatcher, re-encoded as Rust data.
//!
//! Source: github.com/moby/patternmatcher, `patternmatcher_test.go` (TestMatches with its
//! `tests` and `multiPatternTests` tables run through MatchesExact,
//! MatchesOrParentMatches, MatchesUsingParentResult, MatchesUsingParentResults and
//! MatchesUsingParentResultsNoContext; the `matchTests` table taken from Go's filepath
//! tests, run through `Matches`; `compileTests`; the single-purpose tests) and
//! `ignorefile/ignorefile_test.go` (TestReadAll). moby/patternmatcher is licensed under
//! the Apache License 2.0; these derived tables are distributed under the same license.
//! Windows-only cases are left out (we are `/`-separated).
//!
//! Plus a deterministic random test: no pattern or path makes the matcher panic.

use context::{
    compile_go_pattern, read_ignore_file, MatchInfo, MatchType, Matcher, PatternErrorKind,
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pass {
    Fail,
    Exact,
    Inexact,
}
use Pass::*;

const TESTS: &[(&str, &str, Pass)] = &[
    ("**", "file", Exact),
    ("**", "file/", Exact),
    ("**/", "file", Exact), // weird one
    ("**/", "file/", Exact),
    ("**", "/", Exact),
    ("**/", "/", Exact),
    ("**", "dir/file", Exact),
    ("**/", "dir/file", Exact),
    ("**", "dir/file/", Exact),
    ("**/", "dir/file/", Exact),
    ("**/**", "dir/file", Exact),
    ("**/**", "dir/file/", Exact),
    ("dir/**", "dir/file", Exact),
    ("dir/**", "dir/file/", Exact),
    ("dir/**", "dir/dir2/file", Exact),
    ("dir/**", "dir/dir2/file/", Exact),
    ("**/dir", "dir", Exact),
    ("**/dir", "dir/file", Inexact),
    ("**/dir2/*", "dir/dir2/file", Exact),
    ("**/dir2/*", "dir/dir2/file/", Inexact),
    ("**/dir2/**", "dir/dir2/dir3/file", Exact),
    ("**/dir2/**", "dir/dir2/dir3/file/", Exact),
    ("**file", "file", Exact),
    ("**file", "dir/file", Exact),
    ("**/file", "dir/file", Exact),
    ("**file", "dir/dir/file", Exact),
    ("**/file", "dir/dir/file", Exact),
    ("**/file*", "dir/dir/file", Exact),
    ("**/file*", "dir/dir/file.txt", Exact),
    ("**/file*txt", "dir/dir/file.txt", Exact),
    ("**/file*.txt", "dir/dir/file.txt", Exact),
    ("**/file*.txt*", "dir/dir/file.txt", Exact),
    ("**/**/*.txt", "dir/dir/file.txt", Exact),
    ("**/**/*.txt2", "dir/dir/file.txt", Fail),
    ("**/*.txt", "file.txt", Exact),
    ("**/**/*.txt", "file.txt", Exact),
    ("a**/*.txt", "a/file.txt", Exact),
    ("a**/*.txt", "a/dir/file.txt", Exact),
    ("a**/*.txt", "a/dir/dir/file.txt", Exact),
    ("a/*.txt", "a/dir/file.txt", Fail),
    ("a/*.txt", "a/file.txt", Exact),
    ("a/*.txt**", "a/file.txt", Exact),
    ("a[b-d]e", "ae", Fail),
    ("a[b-d]e", "ace", Exact),
    ("a[b-d]e", "aae", Fail),
    ("a[^b-d]e", "aze", Exact),
    (".*", ".foo", Exact),
    (".*", "foo", Fail),
    ("abc.def", "abcdef", Fail),
    ("abc.def", "abc.def", Exact),
    ("abc.def", "abcZdef", Fail),
    ("abc?def", "abcZdef", Exact),
    ("abc?def", "abcdef", Fail),
    ("**/foo/bar", "foo/bar", Exact),
    ("**/foo/bar", "dir/foo/bar", Exact),
    ("**/foo/bar", "dir/dir2/foo/bar", Exact),
    ("abc/**", "abc", Fail),
    ("abc/**", "abc/def", Exact),
    ("abc/**", "abc/def/ghi", Exact),
    ("**/.foo", ".foo", Exact),
    ("**/.foo", "bar.foo", Fail),
    ("a(b)c/def", "a(b)c/def", Exact),
    ("a(b)c/def", "a(b)c/xyz", Fail),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", Exact),
    (
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Exact,
    ),
    (
        "dist/*.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Exact,
    ),
    // The non-Windows additions.
    ("a\\\\", "a\\", Exact),
    ("a\\*b", "a*b", Exact),
];

const MULTI: &[(&[&str], &str, Pass)] = &[
    (&["**", "!util/docker/web"], "util/docker/web/foo", Fail),
    (
        &["**", "!util/docker/web", "util/docker/web/foo"],
        "util/docker/web/foo",
        Exact,
    ),
    (
        &[
            "**",
            "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        ],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Fail,
    ),
    (
        &["**", "!dist/*.whl"],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Fail,
    ),
];

fn pm(patterns: &[&str]) -> Matcher {
    Matcher::new(patterns).unwrap_or_else(|e| panic!("{patterns:?}: {e}"))
}

/// Go's `filepath.Dir(text)` split on `/`, for the parent-walking subtests.
fn parent_dirs(text: &str) -> Option<Vec<&str>> {
    let parent = match text.rfind('/') {
        Some(i) => {
            let p = text[..i].trim_end_matches('/');
            if p.is_empty() {
                "/"
            } else {
                p
            }
        }
        None => ".",
    };
    if parent == "." {
        None
    } else {
        Some(parent.split('/').collect())
    }
}

#[test]
fn matches_exact() {
    for &(p, text, pass) in TESTS {
        assert_eq!(
            pm(&[p]).matches_exact(text),
            pass == Exact,
            "pattern={p:?} text={text:?}"
        );
    }
}

#[test]
fn matches_or_parent_matches() {
    for &(p, text, pass) in TESTS {
        assert_eq!(
            pm(&[p]).matches(text),
            pass != Fail,
            "pattern={p:?} text={text:?}"
        );
    }
    for &(ps, text, pass) in MULTI {
        assert_eq!(
            pm(ps).matches(text),
            pass != Fail,
            "patterns={ps:?} text={text:?}"
        );
    }
}

#[test]
fn matches_using_parent_result() {
    for &(p, text, pass) in TESTS {
        let m = pm(&[p]);
        let mut parent_matched = false;
        if let Some(dirs) = parent_dirs(text) {
            for i in 0..dirs.len() {
                parent_matched =
                    m.matches_using_parent_result(&dirs[..=i].join("/"), parent_matched);
            }
        }
        assert_eq!(
            m.matches_using_parent_result(text, parent_matched),
            pass != Fail,
            "pattern={p:?} text={text:?}"
        );
    }
}

fn check_parent_results(m: &Matcher, text: &str, pass: bool, desc: &str) {
    let mut info = MatchInfo::default();
    if let Some(dirs) = parent_dirs(text) {
        for i in 0..dirs.len() {
            info = m
                .matches_using_parent_results(&dirs[..=i].join("/"), &info)
                .1;
        }
    }
    assert_eq!(
        m.matches_using_parent_results(text, &info).0,
        pass,
        "{desc}"
    );
}

#[test]
fn matches_using_parent_results() {
    for &(p, text, pass) in TESTS {
        check_parent_results(
            &pm(&[p]),
            text,
            pass != Fail,
            &format!("pattern={p:?} text={text:?}"),
        );
    }
    for &(ps, text, pass) in MULTI {
        check_parent_results(
            &pm(ps),
            text,
            pass != Fail,
            &format!("patterns={ps:?} text={text:?}"),
        );
    }
}

#[test]
fn matches_using_parent_results_no_context() {
    for &(p, text, pass) in TESTS {
        let got = pm(&[p])
            .matches_using_parent_results(text, &MatchInfo::default())
            .0;
        assert_eq!(got, pass != Fail, "pattern={p:?} text={text:?}");
    }
    for &(ps, text, pass) in MULTI {
        let got = pm(ps)
            .matches_using_parent_results(text, &MatchInfo::default())
            .0;
        assert_eq!(got, pass != Fail, "patterns={ps:?} text={text:?}");
    }
}

/// patternmatcher's package-level `Matches`: clean the path, "." never matches, then the
/// deprecated single-parent method.
fn go_matches(file: &str, patterns: &[&str]) -> Result<bool, ()> {
    let m = Matcher::new(patterns).map_err(|_| ())?;
    let file = String::from_utf8(context::clean(file.as_bytes())).unwrap();
    if file == "." {
        return Ok(false);
    }
    Ok(m.matches_single_parent(&file))
}

#[test]
fn simple_package_level_cases() {
    // TestWildcardMatches, TestPatternMatches, TestExclusionPattern*, TestPatternMatchesFolder*.
    assert_eq!(go_matches("fileutils.go", &["*"]), Ok(true));
    assert_eq!(go_matches("fileutils.go", &["*.go"]), Ok(true));
    assert_eq!(
        go_matches("fileutils.go", &["!fileutils.go", "*.go"]),
        Ok(true)
    );
    assert_eq!(
        go_matches("docs/README.md", &["docs", "!docs/README.md"]),
        Ok(false)
    );
    assert_eq!(
        go_matches("docs/README.md", &["docs/", "!docs/README.md"]),
        Ok(false)
    );
    assert_eq!(
        go_matches("docs/README.md", &["docs/*", "!docs/README.md"]),
        Ok(false)
    );
    assert_eq!(
        go_matches("fileutils.go", &["*.go", "!fileutils.go"]),
        Ok(false)
    );
    assert_eq!(go_matches(".", &["*.go"]), Ok(false));
    // TestSingleExclamationError, TestMatchesWithNoPatterns, TestMatchesWithMalformedPatterns.
    assert!(go_matches("fileutils.go", &["!"]).is_err());
    assert_eq!(go_matches("/any/path/there", &[]), Ok(false));
    assert!(go_matches("/any/path/there", &["["]).is_err());
}

/// Go's filepath Match tests, as patternmatcher runs them through `Matches`.
const MATCH_TESTS: &[(&str, &str, bool, bool)] = &[
    // (pattern, s, match, bad pattern)
    ("abc", "abc", true, false),
    ("*", "abc", true, false),
    ("*c", "abc", true, false),
    ("a*", "a", true, false),
    ("a*", "abc", true, false),
    ("a*", "ab/c", true, false),
    ("a*/b", "abc/b", true, false),
    ("a*/b", "a/c/b", false, false),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", true, false),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true, false),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false, false),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false, false),
    ("a*b?c*x", "abxbbxdbxebxczzx", true, false),
    ("a*b?c*x", "abxbbxdbxebxczzy", false, false),
    ("ab[c]", "abc", true, false),
    ("ab[b-d]", "abc", true, false),
    ("ab[e-g]", "abc", false, false),
    ("ab[^c]", "abc", false, false),
    ("ab[^b-d]", "abc", false, false),
    ("ab[^e-g]", "abc", true, false),
    ("a\\*b", "a*b", true, false),
    ("a\\*b", "ab", false, false),
    ("a?b", "a☺b", true, false),
    ("a[^a]b", "a☺b", true, false),
    ("a???b", "a☺b", false, false),
    ("a[^a][^a][^a]b", "a☺b", false, false),
    ("[a-ζ]*", "α", true, false),
    ("*[a-ζ]", "A", false, false),
    ("a?b", "a/b", false, false),
    ("a*b", "a/b", false, false),
    ("[\\]a]", "]", true, false),
    ("[\\-]", "-", true, false),
    ("[x\\-]", "x", true, false),
    ("[x\\-]", "-", true, false),
    ("[x\\-]", "z", false, false),
    ("[\\-x]", "x", true, false),
    ("[\\-x]", "-", true, false),
    ("[\\-x]", "a", false, false),
    ("[]a]", "]", false, true),
    ("[-]", "-", false, true),
    ("[x-]", "x", false, true),
    ("[x-]", "-", false, true),
    ("[x-]", "z", false, true),
    ("[-x]", "x", false, true),
    ("[-x]", "-", false, true),
    ("[-x]", "a", false, true),
    ("\\", "a", false, true),
    ("[a-b-c]", "a", false, true),
    ("[", "a", false, true),
    ("[^", "a", false, true),
    ("[^bc", "a", false, true),
    ("a[", "a", false, true), // was nil but IMO its wrong
    ("a[", "ab", false, true),
    ("*x", "xxx", true, false),
];

#[test]
fn filepath_match_table() {
    for &(pattern, s, want, bad) in MATCH_TESTS {
        let got = go_matches(s, &[pattern]);
        if bad {
            assert!(
                got.is_err(),
                "Match({pattern:?}, {s:?}) should be a bad pattern, got {got:?}"
            );
        } else {
            assert_eq!(got, Ok(want), "Match({pattern:?}, {s:?})");
        }
    }
}

/// compileTests: the match type and, for regexps, the exact Go regular expression.
const COMPILE_TESTS: &[(&str, MatchType, &str)] = &[
    ("*", MatchType::Regexp, "^[^/]*$"),
    ("file*", MatchType::Regexp, "^file[^/]*$"),
    ("*file", MatchType::Regexp, "^[^/]*file$"),
    ("a*/b", MatchType::Regexp, "^a[^/]*/b$"),
    ("**", MatchType::Suffix, ""),
    ("**/**", MatchType::Regexp, "^(.*/)?.*$"),
    ("dir/**", MatchType::Prefix, ""),
    ("**/dir", MatchType::Suffix, ""),
    ("**/dir2/*", MatchType::Regexp, "^(.*/)?dir2/[^/]*$"),
    ("**/dir2/**", MatchType::Regexp, "^(.*/)?dir2/.*$"),
    ("**file", MatchType::Suffix, ""),
    ("**/file*txt", MatchType::Regexp, "^(.*/)?file[^/]*txt$"),
    (
        "**/**/*.txt",
        MatchType::Regexp,
        "^(.*/)?(.*/)?[^/]*\\.txt$",
    ),
    ("a[b-d]e", MatchType::Regexp, "^a[b-d]e$"),
    (".*", MatchType::Regexp, "^\\.[^/]*$"),
    ("abc.def", MatchType::Exact, ""),
    ("abc?def", MatchType::Regexp, "^abc[^/]def$"),
    ("**/foo/bar", MatchType::Suffix, ""),
    ("a(b)c/def", MatchType::Exact, ""),
    ("a.|)$(}+{bc", MatchType::Exact, ""),
    (
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        MatchType::Exact,
        "",
    ),
];

#[test]
fn compile_table() {
    for &(p, ty, re) in COMPILE_TESTS {
        let cleaned = String::from_utf8(context::clean(p.as_bytes())).unwrap();
        let (got_ty, got_re) = compile_go_pattern(&cleaned);
        assert_eq!(got_ty, ty, "pattern {p:?}");
        if ty == MatchType::Regexp {
            assert_eq!(got_re.as_deref(), Some(re), "pattern {p:?}");
        }
        // And the matcher built from it agrees on its type.
        assert_eq!(pm(&[p]).patterns()[0].match_type(), ty, "pattern {p:?}");
    }
}

#[test]
fn clean_patterns() {
    // TestCleanPatterns, ...StripEmptyPatterns, ...ExceptionFlag, ...LeadingSpaceTrimmed,
    // ...TrailingSpaceTrimmed, ...ErrorSingleException.
    assert_eq!(pm(&["docs", "config"]).patterns().len(), 2);
    assert_eq!(pm(&["docs", "config", ""]).patterns().len(), 2);
    assert!(pm(&["docs", "!docs/README.md"]).exclusions());
    assert!(pm(&["docs", "  !docs/README.md"]).exclusions());
    assert!(pm(&["docs", "!docs/README.md  "]).exclusions());
    let e = Matcher::new(&["!"]).unwrap_err();
    assert_eq!(e.kind, PatternErrorKind::IllegalExclusion);
}

#[test]
fn malformed_regexp_is_an_error() {
    // TestMatchesOrParentMatchesMalformedPatternDoesNotPanicOnRepeatedCall: Go accepts
    // "[Local-Only]/" in New and fails every match with ErrBadPattern; we refuse it in
    // New (documented deviation) — and never panic.
    let e = Matcher::new(&["[Local-Only]/"]).unwrap_err();
    assert!(matches!(e.kind, PatternErrorKind::BadRegexp(..)), "{e:?}");
}

#[test]
fn go_regexp_quirks_are_kept() {
    // patternmatcher hands `[`, `]` and the text between to Go's regexp after turning
    // `*` into `[^/]*`, so `[*]` is the class `[[^/]` repeated, then a literal `]`.
    let m = pm(&["[*]"]);
    assert!(m.matches("]") && m.matches("[^]") && !m.matches("*"));
    // In a regexp pattern a `^` outside a class is an anchor: "a^b*" never matches; with
    // no wildcard the pattern is exact and "a^b" matches itself.
    assert!(!pm(&["a^b*"]).matches("a^bc") && pm(&["a^b"]).matches("a^b"));
    // Regex-crate class syntax means nothing special: `[a&&b]` is a, & and b.
    assert!(pm(&["x[a&&b]"]).matches("x&"));
    // Escapes follow Go: `\d` is an ASCII digit class there too.
    assert!(pm(&["v\\d"]).matches("v7") && !pm(&["v\\d"]).matches("v٣"));
    // Exact patterns are compared as text, not as regexps.
    assert!(pm(&["a.b"]).matches("a.b") && !pm(&["a.b"]).matches("axb"));
}

#[test]
fn ignore_file_read_all() {
    // ignorefile_test.go TestReadAll (and BuildKit's dockerignore_test.go).
    assert!(read_ignore_file(b"").unwrap().is_empty());
    let content =
        "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
    let want = [
        "test1",
        "test2",
        "a/file/here",
        "lastfile",
        "!inverted/abs/path",
        "!",
        "!",
    ];
    assert_eq!(read_ignore_file(content.as_bytes()).unwrap(), want);
    let with_newline = format!("{content}\n");
    assert_eq!(read_ignore_file(with_newline.as_bytes()).unwrap(), want);
}

#[test]
fn ignore_file_details() {
    // BOM on the first line only, CRLF, '#' only at column 0, trailing whitespace trimmed.
    let got =
        read_ignore_file(b"\xEF\xBB\xBF# c\r\n  # not a comment\r\nfoo   \n\t./bar/../baz/\n")
            .unwrap();
    assert_eq!(got, ["# not a comment", "foo", "baz"]);
    let m = Matcher::from_ignore_file(b"*.log\n!keep.log\n").unwrap();
    assert!(m.matches("a.log") && !m.matches("keep.log"));
    let long = vec![b'a'; 70_000];
    assert!(matches!(
        read_ignore_file(&long).unwrap_err().kind,
        PatternErrorKind::LineTooLong
    ));
}

/// xorshift64*, deterministic.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<'a>(&mut self, s: &'a [&'a str]) -> &'a str {
        s[(self.next() % s.len() as u64) as usize]
    }
}

#[test]
fn random_patterns_never_panic() {
    const ATOMS: &[&str] = &[
        "*",
        "**",
        "?",
        "[",
        "]",
        "^",
        "!",
        "\\",
        "/",
        "-",
        "a",
        "b",
        "z",
        ".",
        "..",
        "(",
        ")",
        "|",
        "{",
        "}",
        "$",
        "+",
        "&&",
        "--",
        "~~",
        "[:alpha:]",
        "[:",
        ":]",
        "\\d",
        "\\b",
        "\\Q",
        "\\E",
        "\\p",
        "L",
        "\\x4",
        "1",
        "0",
        "7",
        "é",
        "☺",
        "\u{FEFF}",
        " ",
        "#",
        "<",
        "\\<",
        "\u{FFFD}",
    ];
    const PATH_ATOMS: &[&str] = &[
        "a", "b", "z", "/", ".", "..", "é", "*", "[", "]", "-", "\\", "<",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut accepted = 0;
    for _ in 0..6_000 {
        let n = 1 + rng.next() % 8;
        let pattern: String = (0..n).map(|_| rng.pick(ATOMS)).collect();
        let k = rng.next() % 6;
        let path: String = (0..k).map(|_| rng.pick(PATH_ATOMS)).collect();
        if let Ok(m) = Matcher::new(&[pattern.as_str(), "!b*"]) {
            accepted += 1;
            let _ = m.matches(&path);
            let _ = m.matches_exact(&path);
            let _ = m.matches_using_parent_results(&path, &MatchInfo::default());
            let _ = m.can_skip_excluded_dir(&path);
        }
        let _ = context::go_match(pattern.as_bytes(), path.as_bytes());
        let _ = read_ignore_file(pattern.as_bytes());
    }
    // Raw bytes, invalid UTF-8 included.
    for _ in 0..3_000 {
        let n = rng.next() % 12;
        let bytes: Vec<u8> = (0..n).map(|_| (rng.next() & 0xFF) as u8).collect();
        if let Ok(m) = Matcher::from_ignore_file(&bytes) {
            let _ = m.matches_bytes(&bytes);
        }
        let _ = context::go_match(&bytes, &bytes);
    }
    assert!(
        accepted > 300,
        "only {accepted} random patterns were accepted"
    );
}
