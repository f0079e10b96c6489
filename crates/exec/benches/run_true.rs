//! Per-RUN overhead: `/bin/true` in a fresh overlay (new upper/work dirs over a busybox
//! lowerdir) each time, spawn to wait, median of 50 after 5 warm-ups. Prints numbers; run
//! with `cargo bench -p exec` (root, `/bin/busybox` from Debian's busybox-static needed).
//! The prototype measured 2.5–3.2 ms for the same thing (stack-measurements.md §3).
//! The rows run with Docker's default seccomp profile (the executor's default); the last
//! block compares it with no filter, alternating the two run by run so that load from other
//! processes falls on both alike.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use exec::{ExecSpec, Network, Rootfs, Seccomp, SeccompProfile};

const RUNS: usize = 50;

fn rootfs(root: &Path) {
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    for d in ["proc", "dev", "sys"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("etc/hosts"), "").unwrap();
    std::fs::write(root.join("etc/resolv.conf"), "").unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("/bin/busybox is missing: apt-get install -y busybox-static");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    }
}

/// One `/bin/true` on a fresh overlay: (spawn until exec'd, spawn until exited).
fn once(
    tag: &str,
    base: &[PathBuf],
    scratch: &Path,
    network: Network,
    pool: Option<&std::sync::Arc<exec::NetworkPool>>,
    seccomp: &Seccomp,
) -> (Duration, Duration) {
    let d = scratch.join(tag);
    let (upper, work) = (d.join("upper"), d.join("work"));
    std::fs::create_dir_all(&upper).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let mut spec = ExecSpec::new(
        Rootfs::Overlay {
            lower: base.to_vec(),
            upper,
            work,
        },
        vec!["/bin/true".into()],
    );
    spec.network = network;
    spec.network_pool = pool.cloned();
    spec.state_dir = Some(scratch.to_path_buf());
    spec.seccomp = seccomp.clone();
    let t = Instant::now();
    let mut r = exec::spawn(&spec).unwrap();
    let ds = t.elapsed();
    let st = r.wait().unwrap();
    let dt = t.elapsed();
    assert!(st.success());
    std::fs::remove_dir_all(&d).unwrap();
    (ds, dt)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn measure(
    name: &str,
    base: &[PathBuf],
    scratch: &Path,
    network: Network,
    pool: Option<&std::sync::Arc<exec::NetworkPool>>,
) {
    let mut times = Vec::new();
    let mut spawns = Vec::new();
    for i in 0..RUNS + 5 {
        let (ds, dt) = once(
            &format!("{name}-{i}"),
            base,
            scratch,
            network,
            pool,
            &Seccomp::Default,
        );
        if i >= 5 {
            times.push(dt);
            spawns.push(ds);
        }
    }
    times.sort();
    spawns.sort();
    println!(
        "{name:<38} median {:5.2} ms  p10 {:5.2}  p90 {:5.2}  (spawn until exec'd: median {:5.2} ms; n={RUNS})",
        ms(times[RUNS / 2]),
        ms(times[RUNS / 10]),
        ms(times[RUNS * 9 / 10]),
        ms(spawns[RUNS / 2]),
    );
}

/// Docker's default profile against none, alternating, `n` pairs after 5 warm-ups each.
fn seccomp_cost(base: &[PathBuf], scratch: &Path, n: usize) {
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..n + 5 {
        let order = if i % 2 == 0 {
            [Seccomp::Default, Seccomp::Unconfined]
        } else {
            [Seccomp::Unconfined, Seccomp::Default]
        };
        for s in &order {
            let (_, dt) = once(&format!("sc-{i}"), base, scratch, Network::Host, None, s);
            if i >= 5 {
                match s {
                    Seccomp::Unconfined => without.push(dt),
                    _ => with.push(dt),
                }
            }
        }
    }
    // Each pair ran back to back: the median of the differences is robust to load changes.
    let mut diffs: Vec<f64> = with
        .iter()
        .zip(&without)
        .map(|(w, u)| ms(*w) - ms(*u))
        .collect();
    diffs.sort_by(f64::total_cmp);
    with.sort();
    without.sort();
    let (a, b) = (ms(with[n / 2]), ms(without[n / 2]));
    println!(
        "seccomp default vs unconfined (n={n} each, alternating): median {a:.2} ms vs {b:.2} ms, \
         delta {:+.2} ms per RUN (p10 {:.2} vs {:.2}, p90 {:.2} vs {:.2}); \
         median of the paired differences {:+.3} ms",
        a - b,
        ms(with[n / 10]),
        ms(without[n / 10]),
        ms(with[n * 9 / 10]),
        ms(without[n * 9 / 10]),
        diffs[n / 2],
    );
}

fn main() {
    exec::maybe_run_init();
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches asks for the list of benchmarks
    }
    let parent = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let tmp = tempfile::Builder::new()
        .prefix("exec-bench-")
        .tempdir_in(parent)
        .unwrap();
    let base = tmp.path().join("base");
    rootfs(&base);
    let t = Instant::now();
    let profile = SeccompProfile::docker_default().unwrap();
    println!(
        "compiling Docker's default profile (once per process): {:.2} ms, {} filters",
        ms(t.elapsed()),
        profile.filter_count()
    );

    let scratch = tmp.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();

    measure(
        "overlay, host network",
        std::slice::from_ref(&base),
        &scratch,
        Network::Host,
        None,
    );
    measure(
        "overlay, network none",
        std::slice::from_ref(&base),
        &scratch,
        Network::None,
        None,
    );
    measure(
        "overlay, private network (slirp4netns)",
        std::slice::from_ref(&base),
        &scratch,
        Network::Private,
        None,
    );
    let pool = std::sync::Arc::new(exec::NetworkPool::new());
    measure(
        "overlay, private network from a pool",
        std::slice::from_ref(&base),
        &scratch,
        Network::Private,
        Some(&pool),
    );
    let mut lowers = Vec::new();
    for i in 0..150 {
        let d = tmp.path().join(format!("layer-{i:03}"));
        std::fs::create_dir_all(d.join("l")).unwrap();
        std::fs::write(d.join("l").join(i.to_string()), "x").unwrap();
        lowers.push(d);
    }
    lowers.push(base.clone());
    measure(
        "overlay of 151 layers, host network",
        &lowers,
        &scratch,
        Network::Host,
        None,
    );
    seccomp_cost(std::slice::from_ref(&base), &scratch, 200);
}
