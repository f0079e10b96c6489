//! Parse + plan of a generated 10,000-instruction Dockerfile with 50 stages, in the
//! instruction mix of BuildKit's parser testfiles, with `COPY --from` between stages.
//! Goal (issue 2): under 50 ms.

use criterion::{criterion_group, criterion_main, Criterion};

/// Instruction mix of the conformance `result` files (conformance/README.md §1), FROM
/// excluded: one FROM starts each stage.
const MIX: &[(&str, usize)] = &[
    ("run", 83),
    ("env", 47),
    ("cmd", 32),
    ("add", 31),
    ("expose", 14),
    ("copy", 12),
    ("label", 11),
    ("volume", 8),
    ("healthcheck", 7),
    ("entrypoint", 4),
    ("onbuild", 3),
    ("workdir", 2),
    ("user", 2),
    ("arg", 2),
];

pub fn generate(stages: usize, total: usize) -> String {
    let per_stage = total / stages - 1;
    let weights: usize = MIX.iter().map(|(_, w)| w).sum();
    let mut seq: Vec<&str> = Vec::new();
    for (kw, w) in MIX {
        seq.extend(std::iter::repeat_n(*kw, *w));
    }
    // Interleave deterministically.
    let mut order: Vec<&str> = (0..weights).map(|i| seq[(i * 97) % weights]).collect();
    order.dedup_by(|a, b| a == b && *a == "onbuild");
    let mut s =
        String::from("# syntax=docker/dockerfile:1\nARG BASE=debian:bookworm\nARG VERSION=1.0\n");
    let mut n = 2;
    for st in 0..stages {
        s.push_str(&format!("FROM ${{BASE}} AS stage{st}\n"));
        n += 1;
        for i in 0..per_stage {
            if n >= total {
                break;
            }
            let kw = order[(st * per_stage + i) % order.len()];
            let line = match kw {
                "run" => format!("RUN apt-get update && apt-get install -y pkg{i} \\\n    && rm -rf /var/lib/apt/lists/*\n"),
                "env" => format!("ENV VAR{i}=value{i} PATH=/opt/s{st}/bin:$PATH\n"),
                "cmd" => format!("CMD [\"/usr/bin/app{i}\", \"--flag\", \"${{VERSION}}\"]\n"),
                "add" => format!("ADD file{i}.tar.gz /opt/s{st}/\n"),
                "expose" => format!("EXPOSE {} {}/udp\n", 1000 + i, 2000 + i),
                "copy" if st > 0 => format!("COPY --from=stage{} /opt/s{}/out{i} /opt/s{st}/in{i}\n", st - 1, st - 1),
                "copy" => format!("COPY --chown=1000:1000 src{i} /src/\n"),
                "label" => format!("LABEL com.example.l{i}=\"v {i}\" version=$VERSION\n"),
                "volume" => format!("VOLUME [\"/data{i}\"]\n"),
                "healthcheck" => "HEALTHCHECK --interval=30s --timeout=3s CMD curl -f http://localhost/ || exit 1\n".to_string(),
                "entrypoint" => "ENTRYPOINT [\"/bin/sh\", \"-c\"]\n".to_string(),
                "onbuild" => format!("ONBUILD RUN echo trigger{i}\n"),
                "workdir" => format!("WORKDIR /opt/s{st}/w{i}\n"),
                "user" => "USER 1000:1000\n".to_string(),
                _ => format!("ARG A{i}=default{i}\n"),
            };
            s.push_str(&line);
            n += 1;
        }
    }
    s
}

fn bench(c: &mut Criterion) {
    let src = generate(50, 10_000);
    let df = dockerfile::parse(&src).expect("generated Dockerfile parses");
    assert_eq!(df.nodes.len(), 10_000);
    let opts = plan::PlanOptions::default();
    let p = plan::plan(&src, &opts, &plan::Unresolved).expect("generated Dockerfile plans");
    assert_eq!(p.stages.len(), 50);
    assert!(p.stages.iter().all(|s| s.needed));
    c.bench_function("parse 10k instructions", |b| {
        b.iter(|| dockerfile::parse(&src).unwrap())
    });
    c.bench_function("parse+plan 10k instructions, 50 stages", |b| {
        b.iter(|| plan::plan(&src, &opts, &plan::Unresolved).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
