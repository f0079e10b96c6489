//! Layer pipeline against the shell pipelines a user would reach for, on the tree of
//! conformance/scenarios/bigtree (20,000 files of 1–4 KiB + one 200 MiB random file),
//! generated with the same shell loop on tmpfs. Prints times and ratios measured in this run,
//! and the peak RSS of each of our pipelines (each runs in a child process).
//!
//!   cargo bench -p layer --bench pipeline
//!
//! Goal (issue 3): each ratio ≤ 1.3, peak RSS ≤ 64 MiB.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const TREE: &str = "/dev/shm/strata-bench-bigtree";
const ROUNDS: usize = 3;

fn generate(dir: &Path) {
    if dir.join(".complete").exists() {
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
    eprintln!("generating {} (20,000 files + 200 MiB) ...", dir.display());
    let script = format!(
        "set -e; mkdir -p {d}/out/tree && cd {d}/out/tree && i=0; while [ $i -lt 200 ]; do mkdir d$i; j=0; \
         while [ $j -lt 100 ]; do head -c $(( (i*100+j) % 3072 + 1024 )) /dev/urandom > d$i/f$j; j=$((j+1)); done; \
         i=$((i+1)); done && head -c 209715200 /dev/urandom > {d}/out/big.bin && touch {d}/.complete",
        d = dir.display()
    );
    let st = Command::new("sh")
        .arg("-c")
        .arg(script)
        .status()
        .expect("sh");
    assert!(st.success(), "generating the tree failed");
}

/// Best wall time of `ROUNDS` runs of a shell pipeline.
fn time_shell(cmd: &str) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let st = Command::new("bash")
            .args(["-o", "pipefail", "-c", cmd])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("bash");
        assert!(st.success(), "{cmd} failed");
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

/// Best wall time and the peak RSS (KiB) of our pipeline `mode`, run in a child process.
fn time_ours(mode: &str, dir: &Path) -> (f64, u64) {
    let exe = std::env::current_exe().expect("current exe");
    let mut best = f64::MAX;
    let mut rss = 0;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let out = Command::new(&exe)
            .env("STRATA_BENCH_CHILD", mode)
            .env("STRATA_BENCH_DIR", dir)
            .output()
            .expect("child");
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        best = best.min(t.elapsed().as_secs_f64());
        let text = String::from_utf8_lossy(&out.stdout);
        let hwm: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        rss = rss.max(hwm);
    }
    (best, rss)
}

struct Sink;
impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn child(mode: &str, dir: PathBuf) {
    let opts = layer::CommitOptions::default();
    match mode {
        "commit" => {
            let info = layer::commit(&dir, &opts, Sink).expect("commit");
            eprintln!("diffID {} ({} bytes)", info.diff_id, info.size);
        }
        "gzip" | "zstd" => {
            let c = if mode == "gzip" {
                layer::Compression::Gzip
            } else {
                layer::Compression::Zstd
            };
            let (r, w) = io::pipe().expect("pipe");
            let t = std::thread::spawn(move || layer::commit(&dir, &opts, w).expect("commit"));
            let blob = layer::compress(r, c, Sink).expect("compress");
            let info = t.join().expect("commit thread");
            eprintln!(
                "diffID {} blob {} ({} bytes)",
                info.diff_id, blob.digest, blob.size
            );
        }
        other => panic!("unknown mode {other}"),
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for l in status.lines().filter(|l| l.starts_with("VmHWM:")) {
        println!("{l}");
    }
}

fn main() {
    if let Ok(mode) = std::env::var("STRATA_BENCH_CHILD") {
        child(
            &mode,
            PathBuf::from(std::env::var("STRATA_BENCH_DIR").expect("dir")),
        );
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let base = PathBuf::from(TREE);
    generate(&base);
    let dir = base.join("out");
    let d = dir.display();
    for tool in ["pigz", "zstd", "sha256sum", "tar"] {
        assert!(
            Command::new("which")
                .arg(tool)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false),
            "{tool} is missing (apt-get install pigz zstd)"
        );
    }
    let cases = [
        (
            "commit (tar + diffID)",
            "commit",
            format!("tar -C {d} -cf - . | sha256sum"),
        ),
        (
            "export gzip",
            "gzip",
            format!("tar -C {d} -cf - . | pigz | sha256sum"),
        ),
        (
            "export zstd",
            "zstd",
            format!("tar -C {d} -cf - . | zstd -T0 -3 | sha256sum"),
        ),
    ];
    println!(
        "bigtree layer pipeline, best of {ROUNDS}, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "{:<24} {:>10} {:>10} {:>8} {:>12}",
        "pipeline", "strata s", "peer s", "ratio", "peak RSS"
    );
    for (name, mode, peer) in cases {
        let (ours, rss) = time_ours(mode, &dir);
        let theirs = time_shell(&peer);
        println!(
            "{name:<24} {ours:>10.2} {theirs:>10.2} {:>7.2}x {:>9.1} MiB   (peer: {peer})",
            ours / theirs,
            rss as f64 / 1024.0
        );
    }
}
