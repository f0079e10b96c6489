//! `check` (BuildKit's rules and strata's own) on a generated Dockerfile of 10,000
//! instructions: 100 stages, thousands of variables, every rule's instruction kinds (the
//! Dockerfile of the test `large_dockerfile_is_checked`).
//!
//!   cargo bench -p check --bench check_large
//!
//! Goal (issue 16): under 50 ms.

use check::{check, Input, NoImages};
use criterion::{criterion_group, criterion_main, Criterion};

#[path = "../tests/common/large.rs"]
mod large;

fn bench(c: &mut Criterion) {
    let df = large::dockerfile();
    assert!(df.lines().count() > 10_000);
    let mut g = c.benchmark_group("check");
    g.sample_size(20);
    for practices in [false, true] {
        let name = if practices {
            "10k instructions, BuildKit's rules and strata's"
        } else {
            "10k instructions, BuildKit's rules"
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                check(&Input {
                    dockerfile: &df,
                    dockerignore: Some("secret\n"),
                    build_args: &[],
                    images: &NoImages,
                    practices,
                    ..Default::default()
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
