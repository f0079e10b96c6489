//! BuildKit parser conformance: `conformance/buildkit-parser` (see conformance/README.md §2).

use std::fs;
use std::path::{Path, PathBuf};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../conformance/buildkit-parser"
);

fn case_dirs(sub: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(Path::new(DATA).join(sub))
        .unwrap_or_else(|e| panic!("reading {sub}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn read(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    String::from_utf8(bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn testfiles_dump_identical() {
    let dirs = case_dirs("testfiles");
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let src = read(&dir.join("Dockerfile"));
        let expected = read(&dir.join("result"));
        match dockerfile::parse(&src) {
            Ok(df) => {
                let got = dockerfile::dump(&df) + "\n";
                if got != expected {
                    failures.push(format!("{name}:\n--- expected\n{expected}--- got\n{got}"));
                }
            }
            Err(e) => failures.push(format!("{name}: parse error {e:?}")),
        }
    }
    let ok = dirs.len() - failures.len();
    println!("parser testfiles: {ok}/{} identical", dirs.len());
    for f in &failures {
        println!("{f}");
    }
    assert_eq!(dirs.len(), 33, "expected 33 testfiles");
    assert!(failures.is_empty(), "{} testfiles differ", failures.len());
}

#[test]
fn testfiles_negative_rejected() {
    let dirs = case_dirs("testfiles-negative");
    let mut accepted = Vec::new();
    for dir in &dirs {
        let src = read(&dir.join("Dockerfile"));
        match dockerfile::parse(&src) {
            Ok(df) => accepted.push(format!("{}: {}", dir.display(), dockerfile::dump(&df))),
            Err(e) => println!(
                "  {}: line {} col {}: {}",
                dir.file_name().unwrap_or_default().to_string_lossy(),
                e.line,
                e.col,
                e.message
            ),
        }
    }
    println!(
        "parser testfiles-negative: {}/{} rejected",
        dirs.len() - accepted.len(),
        dirs.len()
    );
    assert_eq!(dirs.len(), 4, "expected 4 negative testfiles");
    assert!(accepted.is_empty(), "accepted: {accepted:#?}");
}

#[test]
fn testfile_line_spans() {
    let src = read(&Path::new(DATA).join("testfile-line/Dockerfile"));
    let df = dockerfile::parse(&src).expect("testfile-line parses");
    assert_eq!((df.span.start, df.span.end), (5, 31));
    let spans: Vec<(usize, usize)> = df
        .nodes
        .iter()
        .map(|n| (n.span.start, n.span.end))
        .collect();
    assert_eq!(spans, vec![(5, 5), (11, 12), (17, 31)]);
    // The empty continuation lines inside the RUN produce one warning.
    assert_eq!(df.warnings.len(), 1);
    assert!(df.warnings[0]
        .message
        .starts_with("Empty continuation line found in: RUN apt-get update"));
}

#[test]
fn negative_messages() {
    let dir = Path::new(DATA).join("testfiles-negative");
    let msg = |case: &str| {
        dockerfile::parse(&read(&dir.join(case).join("Dockerfile")))
            .err()
            .map(|e| (e.line, e.message))
    };
    assert_eq!(
        msg("empty_dockerfile"),
        Some((1, "file with no instructions".into()))
    );
    assert_eq!(
        msg("only_comments"),
        Some((3, "file with no instructions".into()))
    );
    assert_eq!(
        msg("env_no_value"),
        Some((3, "ENV must have two arguments".into()))
    );
    assert_eq!(
        msg("shykes-nested-json"),
        Some((
            1,
            "when using JSON array syntax, arrays must be comprised of strings only".into()
        ))
    );
}
