//! Parse + plan of 100,000 ENV lines against 100,000 LABEL lines (issue 10, item 5): ENV
//! used to search the stage's environment once per line, which made it quadratic (153 s
//! against 1.3 s for LABEL through `strata build`). Goal: ENV within a small factor of
//! LABEL, and both linear (the 10,000-line figures ×10 ≈ the 100,000-line ones).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn generate(keyword: &str, lines: usize) -> String {
    let mut s = String::from("FROM scratch\n");
    for i in 0..lines {
        s.push_str(&format!("{keyword} v{i}=value{i}\n"));
    }
    s
}

fn bench(c: &mut Criterion) {
    let opts = plan::PlanOptions::default();
    let mut group = c.benchmark_group("parse+plan");
    group.sample_size(10);
    for lines in [10_000, 100_000] {
        for keyword in ["ENV", "LABEL"] {
            let src = generate(keyword, lines);
            let p = plan::plan(&src, &opts, &plan::Unresolved).expect("generated file plans");
            assert_eq!(p.stages[0].steps.len(), lines);
            group.bench_with_input(BenchmarkId::new(keyword, lines), &src, |b, src| {
                b.iter(|| plan::plan(src, &opts, &plan::Unresolved).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
