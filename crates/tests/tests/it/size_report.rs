//! The size report's numbers equal the layer sizes in the store (counted independently from
//! the saved archive) and what Docker 20.10 reports for the same image.

use crate::common::{busybox_tar, tool, unique, Env};
use std::fs;

/// Docker's size of a docker-archive: regular files' sizes plus symlink target lengths.
const COUNT_PY: &str = r#"
import sys, tarfile, io
t = tarfile.open(sys.argv[1])
total = 0
for m in t.getmembers():
    if m.name.endswith('layer.tar'):
        l = tarfile.open(fileobj=io.BytesIO(t.extractfile(m).read()))
        for e in l.getmembers():
            if e.isreg():
                total += e.size
            elif e.issym():
                total += len(e.linkname.encode())
print(total)
"#;

#[test]
fn size_report_matches_the_layers_and_docker() {
    strata_tests::require!(Root, Busybox, Docker, Python3);
    let env = Env::new();
    let tar = env.path("busybox.tar");
    busybox_tar(&tar);
    env.ok(&["import", tar.to_str().unwrap(), "busybox:local"]);
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:local AS build\nRUN mkdir /out && head -c 300000 /dev/zero > /out/big && echo small > /out/small && ln -s small /out/link\n\
FROM busybox:local\nCOPY --from=build /out/small /small\n",
    )
    .unwrap();
    let name = unique("size");
    let report = env.ok(&[
        "build",
        "-q",
        "--report",
        "--report-format",
        "json",
        "-t",
        &name,
        ctx.to_str().unwrap(),
    ]);
    let json_end = report.rfind('}').unwrap() + 1;
    let r: serde_json::Value = serde_json::from_str(&report[..json_end]).unwrap();
    let build = r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "build")
        .unwrap();
    // The build stage's own layer: 300,000 + 6 bytes of files + a 5-byte symlink target.
    assert_eq!(build["size"], 300_011, "{r}");
    assert_eq!(build["layers_in_final"], 0);
    let final_size = r["final_size"].as_u64().unwrap();
    // Count the saved image's layers independently.
    let saved = env.path("img.tar");
    env.ok(&["save", "-o", saved.to_str().unwrap(), &name]);
    let counted = tool("python3", &["-c", COUNT_PY, saved.to_str().unwrap()]);
    assert_eq!(counted.trim().parse::<u64>().unwrap(), final_size);
    let sz: serde_json::Value =
        serde_json::from_str(&env.ok(&["size", "--format", "json", &name])).unwrap();
    assert_eq!(sz[0]["size"].as_u64().unwrap(), final_size);
    // Left behind, base images counted: the build stage's own layer only, since the busybox
    // layer it stands on is also in the final image.
    assert_eq!(r["left_behind_with_bases"], 300_011, "{r}");
    // The pair table: the base alone against the built image.
    let base: serde_json::Value =
        serde_json::from_str(&env.ok(&["size", "--format", "json", "busybox:local"])).unwrap();
    let base_size = base[0]["size"].as_u64().unwrap();
    let cmp: serde_json::Value = serde_json::from_str(&env.ok(&[
        "size",
        "--format",
        "json",
        "--compare",
        &name,
        "busybox:local",
    ]))
    .unwrap();
    assert_eq!(cmp[0]["single_size"].as_u64().unwrap(), final_size);
    assert_eq!(cmp[0]["multi_size"].as_u64().unwrap(), base_size);
    let pct = 100.0 * (final_size as f64 - base_size as f64) / final_size as f64;
    assert_eq!(
        cmp[0]["percent_smaller"].as_f64().unwrap(),
        (pct * 10.0).round() / 10.0
    );
    let table = env.ok(&["size", "--compare", &name, "busybox:local"]);
    assert!(table.starts_with("SINGLE-STAGE"), "{table}");
    assert!(table.contains(&format!("{:.1} % smaller", pct)), "{table}");
    // A bar per image, the larger one full width, the other in proportion.
    let bars: Vec<usize> = table
        .lines()
        .filter(|l| l.contains('█'))
        .map(|l| l.chars().filter(|c| *c == '█').count())
        .collect();
    assert_eq!(bars.len(), 2, "{table}");
    assert_eq!(bars[0], 30, "{table}");
    let expect = (30.0 * base_size as f64 / final_size as f64)
        .round()
        .max(1.0) as usize;
    assert_eq!(bars[1], expect, "{table}");
    // The other way round it is larger: past 2× as a ratio, not a percentage.
    let table = env.ok(&["size", "--compare", "busybox:local", &name]);
    let ratio = final_size as f64 / base_size as f64;
    let said = if ratio >= 10.0 {
        format!("{ratio:.0}× larger")
    } else if ratio >= 2.0 {
        format!("{ratio:.1}× larger")
    } else {
        format!("{:.1} % larger", 100.0 * (ratio - 1.0))
    };
    assert!(table.contains(&said), "{said}: {table}");
    // Docker counts the same.
    struct Rmi(String);
    impl Drop for Rmi {
        fn drop(&mut self) {
            let _ = std::process::Command::new("/usr/bin/docker")
                .args(["rmi", "-f", &self.0])
                .output();
        }
    }
    let _rmi = Rmi(name.clone());
    tool("/usr/bin/docker", &["load", "-i", saved.to_str().unwrap()]);
    let di: serde_json::Value =
        serde_json::from_str(&tool("/usr/bin/docker", &["image", "inspect", &name])).unwrap();
    assert_eq!(di[0]["Size"].as_u64().unwrap(), final_size);
    let human = tool(
        "/usr/bin/docker",
        &["images", "--format", "{{.Size}}", &name],
    );
    let ours = env.ok(&["images", "--format", "{{.Size}}", &name]);
    assert_eq!(human.trim(), ours.trim());
}
