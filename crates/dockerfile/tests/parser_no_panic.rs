//! Robustness: `parse` must return (Ok or Err) on any input, never panic.
//! Feeds every conformance Dockerfile truncated at every char boundary and with
//! deterministic pseudo-random single-byte mutations.

use std::fs;
use std::path::{Path, PathBuf};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../conformance/buildkit-parser"
);

fn dockerfiles() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["testfiles", "testfiles-negative"] {
        let dir = Path::new(DATA).join(sub);
        for entry in fs::read_dir(&dir).expect("data dir").flatten() {
            out.push(entry.path().join("Dockerfile"));
        }
    }
    out.push(Path::new(DATA).join("testfile-line/Dockerfile"));
    out.sort();
    out
}

/// Extra inputs exercising heredocs, directives and odd tokens.
const EXTRA: &[&str] = &[
    "# syntax=x\n# escape=`\n# check=skip=all\nFROM a\nRUN <<EOF\nhi\nEOF\n",
    "FROM a\nRUN <<-'E' 3<<\"F\" cat\n\tx\n\tE\ny\nF\nCOPY <<X <<Y /d\nX\nY\n",
    "\u{feff}FROM a\nONBUILD RUN <<EOF\n${a:-${b#c}} $x \"q\\\"\" 'z'\nEOF\n",
    "FROM a\nRUN echo ${a/b/c} ${a//b} ${:} ${ <<E\nE\nCMD [\"\\ud800\\u0041\", 1]\n",
    "FROM a\nENV a=\"b c\" d='e' f=g\\ h\nLABEL x y z\nHEALTHCHECK --x=1 CMD [\"a\"]\n",
];

/// xorshift64*: tiny deterministic PRNG.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[u8] = b"\\`\n\r\t \"'#=-<[]{}$:,0123456789EOFonbuild\x00\xef\xbb\xbf\xc3\xa9";

#[test]
fn parse_never_panics() {
    let mut inputs: Vec<Vec<u8>> = dockerfiles()
        .iter()
        .map(|p| fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    inputs.extend(EXTRA.iter().map(|s| s.as_bytes().to_vec()));

    let mut parsed = 0usize;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for bytes in &inputs {
        let src = String::from_utf8_lossy(bytes).into_owned();
        // Every prefix at a char boundary.
        for (i, _) in src.char_indices().chain(std::iter::once((src.len(), ' '))) {
            let _ = dockerfile::parse(&src[..i]);
            parsed += 1;
        }
        // Single-byte mutations (replace, insert, delete).
        for _ in 0..300 {
            let mut m = bytes.clone();
            let pos = rng.below(m.len() + 1);
            let byte = if rng.below(2) == 0 {
                INTERESTING[rng.below(INTERESTING.len())]
            } else {
                rng.next() as u8
            };
            match rng.below(3) {
                0 if pos < m.len() => m[pos] = byte,
                1 if pos < m.len() => {
                    m.remove(pos);
                }
                _ => m.insert(pos, byte),
            }
            let s = String::from_utf8_lossy(&m);
            if let Ok(df) = dockerfile::parse(&s) {
                let _ = dockerfile::dump(&df);
            }
            parsed += 1;
        }
    }
    println!("parser no-panic: {parsed} inputs parsed");
}
