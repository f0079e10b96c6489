use std::collections::BTreeMap;

use super::*;

fn file(name: &str, text: &str) -> File {
    File {
        name: name.into(),
        text: text.into(),
    }
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn builtins() -> BTreeMap<String, hcl::Value> {
    BTreeMap::from([("BAKE_LOCAL_PLATFORM".to_string(), "linux/amd64".into())])
}

fn load_with(files: &[File], e: &[(&str, &str)]) -> Result<Config> {
    load(files, &env(e), &builtins())
}

fn resolve_one(text: &str, e: &[(&str, &str)], names: &[&str], set: &[&str]) -> Result<Resolved> {
    let c = load_with(&[file("docker-bake.hcl", text)], e)?;
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
    resolve(&c, &names, &set, &env(e))
}

fn err(r: Result<impl std::fmt::Debug>) -> String {
    format!("{:#}", r.expect_err("should fail"))
}

const FILE: &str = r#"
variable "TAG" { default = "latest" }
variable "REPO" { default = "example/${lower("APP")}" }
variable "DEBUG" { default = false }
group "default" { targets = ["app", "tools"] }
group "all" { targets = ["tools", "default", "extra", "app"] }
target "_common" {
  args = { BASE = "busybox", MODE = DEBUG ? "debug" : "release" }
  labels = { "org.opencontainers.image.source" = "here" }
  tags = ["common"]
}
target "app" {
  inherits = ["_common"]
  tags = ["${REPO}:${TAG}", join("-", ["x", TAG])]
  args = { MODE = notequal(TAG, "latest") ? "pinned" : "floating" }
}
target "tools" {
  context = "tools"
  dockerfile = "Tools.Dockerfile"
}
target "extra" {
  dockerfile-inline = "FROM busybox\n"
}
"#;

#[test]
fn hcl_targets_groups_variables_and_inherits() {
    let r = resolve_one(FILE, &[], &[], &[]).unwrap();
    assert_eq!(r.order, ["app", "tools"]);
    let app = &r.targets["app"];
    assert_eq!(
        app.tags.as_deref().unwrap(),
        ["example/app:latest", "x-latest"]
    );
    // The child's args win key by key; the parent's other keys stay.
    let args = app.args.as_ref().unwrap();
    assert_eq!(args["BASE"], "busybox");
    assert_eq!(args["MODE"], "floating");
    assert_eq!(
        app.labels.as_ref().unwrap()["org.opencontainers.image.source"],
        "here"
    );
    assert_eq!(app.context.as_deref(), Some("."));
    assert_eq!(app.dockerfile.as_deref(), Some("Dockerfile"));
    assert!(app.inherits.is_empty());
    let tools = &r.targets["tools"];
    assert_eq!(tools.context.as_deref(), Some("tools"));
    assert_eq!(tools.dockerfile.as_deref(), Some("Tools.Dockerfile"));
}

#[test]
fn environment_overrides_variables_typed_as_their_default() {
    let r = resolve_one(FILE, &[("TAG", "v2"), ("DEBUG", "true")], &["app"], &[]).unwrap();
    let app = &r.targets["app"];
    assert_eq!(app.tags.as_deref().unwrap(), ["example/app:v2", "x-v2"]);
    assert_eq!(app.args.as_ref().unwrap()["MODE"], "pinned");
    let r = resolve_one(FILE, &[("DEBUG", "true")], &["_common"], &[]).unwrap();
    assert_eq!(r.targets["_common"].args.as_ref().unwrap()["MODE"], "debug");
    let e = err(resolve_one(FILE, &[("DEBUG", "maybe")], &["app"], &[]));
    assert!(e.contains("DEBUG") && e.contains("not a bool"), "{e}");
    // A variable whose default uses another one, declared before it.
    let text = "variable \"B\" { default = \"${A}-b\" }\nvariable \"A\" { default = \"a\" }\ntarget \"t\" { tags = [B] }";
    let r = resolve_one(text, &[("A", "env")], &["t"], &[]).unwrap();
    assert_eq!(r.targets["t"].tags.as_deref().unwrap(), ["env-b"]);
}

#[test]
fn index_order_is_group_expansion_without_duplicates() {
    let r = resolve_one(FILE, &[], &["all"], &[]).unwrap();
    assert_eq!(r.order, ["tools", "app", "extra"]);
    let r = resolve_one(FILE, &[], &["extra", "default", "app"], &[]).unwrap();
    assert_eq!(r.order, ["extra", "app", "tools"]);
}

#[test]
fn groups_that_contain_themselves_end() {
    let text = r#"
group "a" { targets = ["b", "t1"] }
group "b" { targets = ["a", "t2"] }
target "t1" {}
target "t2" {}
"#;
    let r = resolve_one(text, &[], &["a"], &[]).unwrap();
    assert_eq!(r.order, ["t2", "t1"]);
}

#[test]
fn json_files_have_buildx_shape_and_interpolate() {
    let json = r#"{
      "variable": {"TAG": {"default": "1.0"}},
      "group": {"default": {"targets": ["web"]}},
      "target": {"web": {"tags": ["web:${TAG}"], "args": {"N": 3}, "no-cache": true}}
    }"#;
    let c = load_with(&[file("docker-bake.json", json)], &[("TAG", "2.0")]).unwrap();
    let r = resolve(&c, &[], &[], &BTreeMap::new()).unwrap();
    let web = &r.targets["web"];
    assert_eq!(web.tags.as_deref().unwrap(), ["web:2.0"]);
    assert_eq!(web.args.as_ref().unwrap()["N"], "3");
    assert_eq!(web.no_cache, Some(true));
}

#[test]
fn later_files_override_attribute_by_attribute() {
    let base = file(
        "docker-bake.hcl",
        r#"target "app" {
  tags = ["a:1"]
  args = { A = "1", B = "1" }
  cache-from = ["type=local,src=x"]
}
group "default" { targets = ["app"] }"#,
    );
    let over = file(
        "docker-bake.override.json",
        r#"{"target": {"app": {"tags": ["a:2"], "args": {"B": "2"}, "cache-from": ["type=local,src=y"]}},
            "group": {"default": {"targets": ["other"]}}}"#,
    );
    let c = load_with(&[base, over], &[]).unwrap();
    let app = c.targets.iter().find(|t| t.name == "app").unwrap();
    assert_eq!(app.tags.as_deref().unwrap(), ["a:2"]);
    let args = app.args.as_ref().unwrap();
    assert_eq!((args["A"].as_str(), args["B"].as_str()), ("1", "2"));
    assert_eq!(
        app.cache_from.as_deref().unwrap(),
        ["type=local,src=x", "type=local,src=y"]
    );
    assert_eq!(c.groups[0].targets, ["app", "other"]);
}

#[test]
fn set_overrides_as_buildx() {
    let r = resolve_one(
        FILE,
        &[("FROMENV", "e")],
        &["default"],
        &[
            "*.args.EXTRA=1",
            "app.tags=one",
            "app.tags=two",
            "tools.tags+=more",
            "app.args.FROMENV",
            "app.no-cache=true",
            "t*.platform=linux/amd64",
        ],
    )
    .unwrap();
    let app = &r.targets["app"];
    assert_eq!(app.tags.as_deref().unwrap(), ["one", "two"]);
    assert_eq!(app.args.as_ref().unwrap()["EXTRA"], "1");
    assert_eq!(app.args.as_ref().unwrap()["FROMENV"], "e");
    assert_eq!(app.no_cache, Some(true));
    assert_eq!(app.platforms, None);
    let tools = &r.targets["tools"];
    assert_eq!(tools.tags.as_deref().unwrap(), ["more"]);
    assert_eq!(tools.args.as_ref().unwrap()["EXTRA"], "1");
    assert_eq!(tools.platforms.as_deref().unwrap(), ["linux/amd64"]);

    let e = err(resolve_one(FILE, &[], &[], &["app.tag=x"]));
    assert!(
        e.contains("unknown key: tag") && e.contains("did you mean tags?"),
        "{e}"
    );
    let e = err(resolve_one(FILE, &[], &[], &["nope.tags=x"]));
    assert!(
        e.contains("could not find any target matching 'nope'"),
        "{e}"
    );
    let e = err(resolve_one(FILE, &[], &[], &["app.args=x"]));
    assert!(e.contains("args.<name>"), "{e}");
    let e = err(resolve_one(FILE, &[], &[], &["app"]));
    assert!(e.contains("expected target.name"), "{e}");
    let e = err(resolve_one(FILE, &[], &[], &["app.pull=maybe"]));
    assert!(e.contains("boolean key pull"), "{e}");
}

#[test]
fn print_has_buildx_shape() {
    let r = resolve_one(FILE, &[], &["extra", "app"], &[]).unwrap();
    let v = print_json(&r);
    assert_eq!(
        v["group"]["default"]["targets"],
        serde_json::json!(["app", "extra"])
    );
    assert_eq!(
        v["target"]["extra"],
        serde_json::json!({
            "context": ".",
            "dockerfile": "Dockerfile",
            "dockerfile-inline": "FROM busybox\n",
        })
    );
    let app = v["target"]["app"].as_object().unwrap();
    let keys: Vec<&str> = app.keys().map(String::as_str).collect();
    assert_eq!(keys, ["context", "dockerfile", "args", "labels", "tags"]);
    // Printed values read back as themselves: `${` is escaped as buildx does.
    let text = "target \"e\" {\n  args = { A = \"$${HOME}\" }\n  dockerfile-inline = \"RUN echo %%{x}\"\n}";
    let r = resolve_one(text, &[], &["e"], &[]).unwrap();
    assert_eq!(r.targets["e"].args.as_ref().unwrap()["A"], "${HOME}");
    let v = print_json(&r);
    assert_eq!(v["target"]["e"]["args"]["A"], "$${HOME}");
    assert_eq!(v["target"]["e"]["dockerfile-inline"], "RUN echo %%{x}");
    // The default group asked for is printed as it is.
    let r = resolve_one(FILE, &[], &[], &[]).unwrap();
    assert_eq!(
        print_json(&r)["group"],
        serde_json::json!({"default": {"targets": ["app", "tools"]}})
    );
}

#[test]
fn errors_are_located_and_hinted() {
    let e = err(resolve_one(
        "target \"a\" {\n  tag = [\"x\"]\n}\n",
        &[],
        &["a"],
        &[],
    ));
    assert_eq!(
        e,
        "docker-bake.hcl:2:3: target \"a\": attribute \"tag\": unknown attribute (did you mean tags?)"
    );
    let e = err(resolve_one(
        "target \"a\" {\n  tags = [nosuch(\"x\")]\n}",
        &[],
        &["a"],
        &[],
    ));
    assert!(
        e.starts_with("docker-bake.hcl:2:3:") && e.contains("undefined function `nosuch`"),
        "{e}"
    );
    let e = err(resolve_one(
        "target \"a\" {\n  tags = [UNSET]\n}",
        &[],
        &["a"],
        &[],
    ));
    assert!(e.contains("undefined variable `UNSET`"), "{e}");
    let e = err(resolve_one("targte \"a\" {}", &[], &["a"], &[]));
    assert!(
        e.contains("unknown block type \"targte\" (did you mean target?)"),
        "{e}"
    );
    let e = err(resolve_one(
        "function \"f\" {\n params = []\n result = 1\n}",
        &[],
        &[],
        &[],
    ));
    assert!(e.contains("function blocks are not supported yet"), "{e}");
    let e = err(resolve_one(
        "target \"a\" {\n matrix = {}\n}",
        &[],
        &["a"],
        &[],
    ));
    assert!(e.contains("matrix targets are not supported yet"), "{e}");
    let e = err(resolve_one("target \"a\" {}", &[], &[], &[]));
    assert!(
        e.contains("failed to find target default") && e.contains("group \"default\""),
        "{e}"
    );
    let e = err(resolve_one("target \"app\" {}", &[], &["ap"], &[]));
    assert!(
        e.contains("failed to find target ap (did you mean app?)"),
        "{e}"
    );
    let e = err(resolve_one(
        "target \"a\" { tags = \"x\" }",
        &[],
        &["a"],
        &[],
    ));
    assert!(e.contains("expected a list of strings"), "{e}");
    let e = err(resolve_one("target \"a\" \"b\" {}", &[], &["a"], &[]));
    assert!(e.contains("one label"), "{e}");
    let e = err(resolve_one("target \"a/b\" {}", &[], &["a"], &[]));
    assert!(e.contains("use letters, digits"), "{e}");
    let e = err(resolve_one(
        "target \"a\" { inherits = [\"b\"] }\ntarget \"b\" { inherits = [\"a\"] }",
        &[],
        &["a"],
        &[],
    ));
    assert!(e.contains("inherits itself (a → b → a)"), "{e}");
    let e = err(resolve_one(
        "target \"a\" { inherits = [\"nope\"] }",
        &[],
        &["a"],
        &[],
    ));
    assert!(
        e.contains("target a: inherits: failed to find target nope"),
        "{e}"
    );
    let e = err(resolve_one(
        "variable \"A\" { default = B }\nvariable \"B\" { default = A }",
        &[],
        &[],
        &[],
    ));
    assert!(e.contains("which uses it in turn"), "{e}");
    let e = err(resolve_one(
        "target \"a\" {\n  tags = [\"x\"\n}",
        &[],
        &["a"],
        &[],
    ));
    assert!(e.starts_with("docker-bake.hcl:3:1:"), "{e}");
    let e = err(load_with(&[file("b.json", "{\"target\": [1]}")], &[]));
    assert!(
        e.contains("b.json") && e.contains("named target blocks"),
        "{e}"
    );
    let e = err(load_with(&[file("b.json", "{\"target\": ")], &[]));
    assert!(e.starts_with("b.json:1:"), "{e}");
}

#[test]
fn target_contexts_link_other_targets() {
    let text = r#"
target "base" { dockerfile-inline = "FROM busybox\n" }
target "app" { contexts = { base = "target:base", src = "./src" } }
target "self" { contexts = { me = "target:self" } }
target "loop1" { contexts = { x = "target:loop2" } }
target "loop2" { contexts = { x = "target:loop1" } }
target "dangling" { contexts = { x = "target:nope" } }
"#;
    let r = resolve_one(text, &[], &["app"], &[]).unwrap();
    // The linked target is resolved too, but is not one of the targets asked for.
    assert_eq!(r.order, ["app"]);
    assert!(r.targets.contains_key("base"));
    assert_eq!(
        r.targets["app"].linked(),
        [("base".to_string(), "base".to_string())]
    );
    let o = BuildOptions {
        linked_tags: BTreeMap::from([("base".to_string(), "strata-bake/link-0:1".to_string())]),
        ..BuildOptions::default()
    };
    let a = build_args(&r.targets["app"], &o).unwrap();
    assert!(
        a.windows(2).any(|w| w
            == [
                "--build-context",
                "base=docker-image://strata-bake/link-0:1"
            ]),
        "{a:?}"
    );
    assert!(
        a.windows(2).any(|w| w == ["--build-context", "src=./src"]),
        "{a:?}"
    );
    assert!(err(resolve_one(text, &[], &["self"], &[])).contains("cannot link to itself"));
    assert!(err(resolve_one(text, &[], &["loop1"], &[])).contains("infinite loop"));
    assert!(err(resolve_one(text, &[], &["dangling"], &[])).contains("failed to find target nope"));
}

#[test]
fn targets_map_to_strata_build_flags() {
    let text = r#"
target "full" {
  context = "ctx"
  dockerfile = "df/Dockerfile.app"
  target = "final"
  args = { A = "1" }
  labels = { L = "v" }
  tags = ["t:1", "t:2"]
  no-cache = true
  pull = true
  network = "none"
  secret = ["id=s,src=f"]
  cache-from = ["type=local,src=c"]
  cache-to = ["type=local,dest=c"]
  output = ["type=local,dest=out"]
  platforms = ["linux/x86_64"]
  attest = ["type=provenance,mode=max", "type=sbom,disabled=true"]
  ssh = ["default"]
  shm-size = "128m"
  ulimits = ["nofile=1024:2048"]
  extra-hosts = { db = "10.0.0.1" }
}
target "abs" { dockerfile = "/abs/Dockerfile" }
"#;
    let r = resolve_one(text, &[], &["full", "abs"], &[]).unwrap();
    let o = BuildOptions {
        push: true,
        progress: Some("plain".into()),
        ..BuildOptions::default()
    };
    let a = build_args(&r.targets["full"], &o).unwrap();
    let expected: Vec<&str> = vec![
        "build",
        "--file",
        "ctx/df/Dockerfile.app",
        "--target",
        "final",
        "--build-arg",
        "A=1",
        "--label",
        "L=v",
        "--tag",
        "t:1",
        "--tag",
        "t:2",
        "--no-cache",
        "--network",
        "none",
        "--secret",
        "id=s,src=f",
        "--ssh",
        "default",
        "--cache-from",
        "type=local,src=c",
        "--cache-to",
        "type=local,dest=c",
        "--output",
        "type=local,dest=out",
        "--platform",
        "linux/x86_64",
        "--provenance=mode=max",
        "--sbom=false",
        "--shm-size",
        "128m",
        "--ulimit",
        "nofile=1024:2048",
        "--add-host",
        "db:10.0.0.1",
        "--pull",
        "--push",
        "--progress=plain",
        "--",
        "ctx",
    ];
    assert_eq!(a, expected);
    let a = build_args(&r.targets["abs"], &o).unwrap();
    assert_eq!(&a[1..3], ["--file", "/abs/Dockerfile"]);

    let refused = |attrs: &str| {
        let text = format!("target \"x\" {{\n{attrs}\n}}");
        let r = resolve_one(&text, &[], &["x"], &[]).unwrap();
        err(build_args(&r.targets["x"], &o))
    };
    let args = |attrs: &str| {
        let text = format!("target \"x\" {{\n{attrs}\n}}");
        let r = resolve_one(&text, &[], &["x"], &[]).unwrap();
        build_args(&r.targets["x"], &o).unwrap().join(" ")
    };
    let a = args("platforms = [\"linux/amd64\", \"linux/arm64\"]");
    assert!(a.contains("--platform linux/amd64,linux/arm64"), "{a}");
    let e = refused("output = [\"type=local,dest=a\", \"type=tar,dest=b\"]");
    assert!(e.contains("target x: output: 2 outputs"), "{e}");
    let e = refused("annotations = [\"a=b\"]");
    assert!(e.contains("target x: annotations"), "{e}");
    let e = refused("context = \"https://github.com/x/y.git\"");
    assert!(e.contains("remote contexts are not supported yet"), "{e}");
    let e = refused("call = \"outline\"");
    assert!(e.contains("target x: call"), "{e}");
    let e = refused("dockerfile-inline = \"FROM scratch\"");
    assert!(e.contains("dockerfile-inline"), "{e}");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let mut text = String::new();
    for i in 0..1000 {
        text.push_str(&format!(
            "target \"t{i}\" {{ inherits = [\"t{}\"] }}\ngroup \"g{i}\" {{ targets = [\"g{}\"] }}\n\
             target \"c{i}\" {{ contexts = {{ x = \"target:c{}\" }} }}\n",
            i + 1,
            i + 1,
            i + 1
        ));
    }
    text.push_str(
        "target \"t1000\" {}\ngroup \"g1000\" { targets = [\"t1000\"] }\ntarget \"c1000\" {}\n",
    );
    assert!(err(resolve_one(&text, &[], &["t0"], &[])).contains("inherits nests deeper than 256"));
    assert!(err(resolve_one(&text, &[], &["g0"], &[])).contains("groups nest deeper than 256"));
    assert!(err(resolve_one(&text, &[], &["c0"], &[])).contains("chain deeper than 256"));
    // Within the bound, all is well.
    let r = resolve_one(&text, &[], &["t900", "g900", "c900"], &[]).unwrap();
    assert_eq!(r.order, ["t900", "t1000", "c900"]);
}

/// Damaged files (bytes flipped, cut, duplicated) give errors or configs, never a panic.
#[test]
fn damaged_files_never_panic() {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let json = r#"{"variable":{"T":{"default":"x"}},"group":{"default":{"targets":["a"]}},"target":{"a":{"tags":["${T}"],"args":{"A":"${upper(T)}"}}}}"#;
    let pieces = b"{}[]\"$%~=,.:\n\\ \x00\xff${}(target)";
    for (name, text) in [("f.hcl", FILE), ("f.json", json)] {
        for _ in 0..400 {
            let mut bytes = text.as_bytes().to_vec();
            for _ in 0..(next() % 4 + 1) {
                if bytes.is_empty() {
                    break;
                }
                let at = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => bytes[at] = pieces[(next() as usize) % pieces.len()],
                    1 => bytes.truncate(at),
                    _ => {
                        let end = (at + (next() as usize) % 40).min(bytes.len());
                        let copy = bytes[at..end].to_vec();
                        bytes.splice(at..at, copy);
                    }
                }
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let Ok(c) = load_with(&[file(name, &text)], &[]) {
                if let Ok(r) = resolve(&c, &[], &[], &BTreeMap::new()) {
                    for t in r.targets.values() {
                        let _ = build_args(t, &BuildOptions::default());
                    }
                }
            }
        }
    }
}
