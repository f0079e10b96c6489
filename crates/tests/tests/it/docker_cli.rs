//! docker's command names and conventions on the CLI: the `image`/`container`/`system`/
//! `builder` namespaces as aliases of the top-level commands, `inspect -f` templates, and
//! usage errors exiting 125.

use std::time::Duration;

use crate::common::{busybox_tar, Env};

/// A store with `bb:1`, imported from busybox with labels and env; returns its id.
fn setup() -> (Env, String) {
    let env = Env::new();
    let tar = env.path("busybox.tar");
    busybox_tar(&tar);
    let id = env.ok(&[
        "import",
        "--change",
        "ENV A=1 B=2",
        "--change",
        "LABEL b=2 a=\"x y\"",
        tar.to_str().unwrap(),
        "bb:1",
    ]);
    (env, id.trim().to_string())
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The flags and arguments part of `--help` (from `Arguments:` or `Options:` on): what must
/// be the same for an alias and its command (the about and usage lines name them).
fn flags_help(env: &Env, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--help");
    let help = env.ok(&all);
    let start = help
        .lines()
        .position(|l| l.starts_with("Arguments:") || l.starts_with("Options:"))
        .unwrap_or_else(|| panic!("no flags in the help of {args:?}:\n{help}"));
    help.lines().skip(start).collect::<Vec<_>>().join("\n")
}

#[test]
fn aliases_take_the_same_flags() {
    let env = Env::new();
    let pairs: &[(&[&str], &[&str])] = &[
        (&["image", "ls"], &["images"]),
        (&["image", "list"], &["images"]),
        (&["image", "inspect"], &["inspect"]),
        (&["image", "rm"], &["rmi"]),
        (&["image", "history"], &["history"]),
        (&["image", "prune"], &["prune"]),
        (&["image", "tag"], &["tag"]),
        (&["image", "save"], &["save"]),
        (&["image", "load"], &["load"]),
        (&["image", "import"], &["import"]),
        (&["image", "pull"], &["pull"]),
        (&["image", "push"], &["push"]),
        (&["container", "ls"], &["ps"]),
        (&["container", "list"], &["ps"]),
        (&["container", "ps"], &["ps"]),
        (&["container", "inspect"], &["inspect"]),
        (&["container", "rm"], &["rm"]),
        (&["container", "logs"], &["logs"]),
        (&["container", "stop"], &["stop"]),
        (&["container", "run"], &["run"]),
        (&["container", "exec"], &["exec"]),
        (&["container", "start"], &["start"]),
        (&["container", "restart"], &["restart"]),
        (&["container", "kill"], &["kill"]),
        (&["container", "wait"], &["wait"]),
        (&["container", "port"], &["port"]),
        (&["system", "prune"], &["prune"]),
        (&["builder", "prune"], &["prune"]),
    ];
    for (alias, cmd) in pairs {
        assert_eq!(
            flags_help(&env, alias),
            flags_help(&env, cmd),
            "{alias:?} vs {cmd:?}"
        );
    }
}

#[test]
fn image_aliases_give_the_same_output() {
    strata_tests::require!(Root, Busybox);
    let (env, id) = setup();
    env.ok(&["image", "tag", "bb:1", "example.com/other:2"]);
    let images = env.ok(&["images"]);
    assert!(images.contains("example.com/other"), "{images}");
    // No CREATED column: "2 seconds ago" may turn into "3 seconds ago" between two runs.
    let table = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}";
    for args in [
        &["images", "--format", table][..],
        &["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
        &["images", "-q"],
        &["images", "--format", table, "bb"],
        &["images", "--format", table, "example.com/other:2"],
        &["images", "--format", table, "nosuch"],
        &[
            "history",
            "--format",
            "{{.ID}} {{.CreatedBy}} {{.Size}}",
            "bb:1",
        ],
        &["history", "-q", "bb:1"],
        &["inspect", "bb:1"],
        &["inspect", "-f", "{{.Id}}", "bb:1"],
    ] {
        let want = env.ok(args);
        let (alias, rest): (&[&str], _) = match args[0] {
            "images" => (&["image", "ls"], &args[1..]),
            other => (&["image", other], &args[1..]),
        };
        let alias: Vec<&str> = alias.iter().chain(rest).copied().collect();
        assert_eq!(env.ok(&alias), want, "{alias:?} vs {args:?}");
        if args[0] == "images" {
            let mut list = alias.clone();
            list[1] = "list";
            assert_eq!(env.ok(&list), want, "{list:?}");
        }
    }
    // `images` and `ps` take the same template engine as `inspect -f`.
    assert_eq!(
        env.ok(&["image", "ls", "--format", "{{.Repository | upper}}", "bb"]),
        "BB\n"
    );
    let o = env.run(&["images", "--format", "{{.ID"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("template parsing error"),
        "{}",
        stderr(&o)
    );
    // `image ls REPO` filters as `images REPO`.
    assert_eq!(env.ok(&["image", "ls", "-q", "bb"]).trim(), &id[7..19]);
    assert_eq!(
        env.ok(&["image", "ls", "--format", "{{.Tag}}", "bb"]),
        "1\n"
    );
    assert_eq!(env.ok(&["image", "ls", "-q", "nosuch"]), "");

    // save / load / import under `image`.
    let saved = env.path("bb.tar");
    env.ok(&["image", "save", "-o", saved.to_str().unwrap(), "bb:1"]);
    let other = Env::new();
    assert_eq!(
        other.ok(&["image", "load", "-i", saved.to_str().unwrap()]),
        "Loaded image: bb:1\n"
    );
    assert_eq!(
        other.ok(&["inspect", "-f", "{{.Id}}", "bb:1"]),
        format!("{id}\n")
    );
    let tar = env.path("busybox.tar");
    let imported = other.ok(&["image", "import", tar.to_str().unwrap(), "plain:1"]);
    assert!(imported.trim().starts_with("sha256:"), "{imported}");

    // rm as rmi; prune, system prune and builder prune on a store with nothing to free.
    assert_eq!(
        env.ok(&["image", "rm", "example.com/other:2"]),
        "Untagged: example.com/other:2\n"
    );
    let prune = env.ok(&["prune"]);
    assert_eq!(env.ok(&["image", "prune"]), prune);
    assert_eq!(env.ok(&["system", "prune"]), prune);
    assert_eq!(env.ok(&["builder", "prune"]), env.ok(&["prune", "--all"]));
    env.fsck_clean();
}

#[test]
fn system_df_counts_what_the_store_holds() {
    strata_tests::require!(Root, Busybox);
    let (env, _) = setup();
    let df = env.ok(&["system", "df"]);
    let lines: Vec<Vec<&str>> = df
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        lines[0],
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        "{df}"
    );
    let types: Vec<&str> = lines[1..].iter().map(|l| l[0]).collect();
    assert_eq!(
        types,
        ["Images", "Containers", "Local Volumes", "Build Cache"],
        "{df}"
    );
    // One image, in no container's use: all of it reclaimable. Its size is `images`' size.
    let size = env.ok(&["images", "--format", "{{.Size}}"]);
    assert_eq!(lines[1][1..4], ["1", "0", size.trim()], "{df}");
    assert_eq!(lines[1][4], format!("{} (100%)", size.trim()), "{df}");
    assert_eq!(lines[2][1..4], ["0", "0", "0B"], "{df}");
    assert_eq!(lines[3][1..4], ["0", "0", "0B"], "{df}");
    // The table's cells by name.
    assert_eq!(
        env.ok(&["system", "df", "--format", "{{.Type}}={{.TotalCount}}"]),
        "Images=1\nContainers=0\nLocal Volumes=0\nBuild Cache=0\n"
    );
    // A second name for the same image is no second image.
    env.ok(&["tag", "bb:1", "bb:2"]);
    assert!(env
        .ok(&["system", "df", "--format", "{{.Type}}={{.TotalCount}}"])
        .starts_with("Images=1\n"));
}

#[test]
fn inspect_format_templates() {
    strata_tests::require!(Root, Busybox);
    let (env, id) = setup();
    let f = |t: &str| env.ok(&["inspect", "-f", t, "bb:1"]);
    assert_eq!(f("{{.Id}}"), format!("{id}\n"));
    assert_eq!(
        env.ok(&["inspect", "--format", "{{.Id}}", "bb:1"]),
        format!("{id}\n")
    );
    assert_eq!(f("{{.Config.Labels}}"), "map[a:x y b:2]\n");
    assert_eq!(f("{{.Config.Env}}"), "[A=1 B=2]\n");
    assert_eq!(f(r#"{{index .Config.Labels "a"}}"#), "x y\n");
    assert_eq!(f(r#"{{index .Config.Labels "nosuch"}}"#), "\n");
    assert_eq!(f("{{.RootFS.Type}} {{.Os}}"), "layers linux\n");
    assert_eq!(f("{{.Nope}} {{.Config.Nope}}"), "<no value> <no value>\n");
    // `{{json .Config}}` is the Config inspect prints, compact.
    let full: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "bb:1"])).unwrap();
    let config = f("{{json .Config}}");
    assert!(
        !config.trim().contains('\n') && !config.contains(": "),
        "{config}"
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&config).unwrap(),
        full[0]["Config"]
    );
    assert_eq!(f("{{json .Config.Env}}"), "[\"A=1\",\"B=2\"]\n");
    // One line per object, as docker.
    env.ok(&["tag", "bb:1", "bb:2"]);
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.Os}}", "bb:1", "bb:2"]),
        "linux\nlinux\n"
    );
    assert_eq!(
        env.ok(&["image", "inspect", "-f", "{{index .RepoTags 1}}", "bb:1"]),
        "bb:2\n"
    );
    // Text around actions, braces that open no action.
    assert_eq!(f("}} {{.Os}} }"), "}} linux }\n");

    // Templates that do not parse: exit 1, one clear error, nothing on stdout, no panic.
    let deep = format!("{{{{{}.Id{}}}}}", "(".repeat(10_000), ")".repeat(10_000));
    for bad in [
        "{{.Id",
        "{{}}",
        "{{nosuch .Id}}",
        "{{.Id .Os}}",
        "}}{{.Id}}{{",
        "{{ (.Id }}",
        deep.as_str(),
    ] {
        let o = env.run(&["inspect", "-f", bad, "bb:1"]);
        assert_eq!(o.status.code(), Some(1), "{bad}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains("template parsing error"), "{bad}: {e}");
        assert!(!e.contains("panicked"), "{bad}: {e}");
        assert!(o.stdout.is_empty(), "{bad}");
    }
    // A template that parses but cannot run on this value (a field of a string).
    let o = env.run(&["inspect", "-f", "{{.Id.Nope}}", "bb:1"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("can't evaluate field Nope"),
        "{}",
        stderr(&o)
    );
}

/// Removes the test's containers however it ends.
struct Cleanup<'a>(&'a Env);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["rm", "-f", "c1"]);
    }
}

#[test]
fn container_aliases_and_inspect_format() {
    strata_tests::require!(Root, Busybox);
    let (env, id) = setup();
    let _cleanup = Cleanup(&env);
    let cid = env.ok(&[
        "container",
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "c1",
        "bb:1",
        "sh",
        "-c",
        "echo hi; exec sleep 30",
    ]);
    let cid = cid.trim();
    assert_eq!(cid.len(), 64, "{cid}");
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while env.ok(&["logs", "c1"]) != "hi\n" {
        assert!(std::time::Instant::now() < end, "no log line");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(env.ok(&["container", "logs", "c1"]), "hi\n");
    assert_eq!(
        env.ok(&["container", "inspect", "-f", "{{.State.Status}}", "c1"]),
        "running\n"
    );
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.Id}} {{.State.Running}}", "c1"]),
        format!("{cid} true\n")
    );
    assert_eq!(
        env.ok(&["container", "inspect", "-f", "{{.Image}}", "c1"]),
        format!("{id}\n")
    );
    let fmt = "{{.ID}} {{.Names}} {{.State}}";
    let ps = env.ok(&["ps", "-a", "--format", fmt]);
    assert_eq!(ps, format!("{} c1 running\n", &cid[..12]));
    for alias in ["ls", "list", "ps"] {
        assert_eq!(env.ok(&["container", alias, "-a", "--format", fmt]), ps);
    }
    // `container inspect` looks at containers only, `image inspect` at images only.
    let o = env.run(&["container", "inspect", "bb:1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("No such container: bb:1"),
        "{}",
        stderr(&o)
    );
    let o = env.run(&["image", "inspect", "c1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("No such image"), "{}", stderr(&o));
    // system df sees the container and the image it uses.
    let df = env.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Active}}",
    ]);
    assert!(
        df.contains("Images 1 1\n") && df.contains("Containers 1 1\n"),
        "{df}"
    );

    assert_eq!(env.ok(&["container", "stop", "-t", "0", "c1"]), "c1\n");
    assert_eq!(
        env.ok(&["container", "inspect", "-f", "{{.State.Status}}", "c1"]),
        "exited\n"
    );
    assert_eq!(env.ok(&["container", "rm", "c1"]), "c1\n");
    assert_eq!(env.ok(&["container", "ls", "-aq"]), "");
}

#[test]
fn usage_errors_exit_125() {
    let env = Env::new();
    let o = env.run(&["build", "--nope"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "unknown flag: --nope\nSee 'strata build --help'.\n"
    );
    let o = env.run(&["image", "ls", "--nope=1"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "unknown flag: --nope\nSee 'strata image ls --help'.\n"
    );
    // A missing required argument.
    let o = env.run(&["tag", "only-one"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("<TARGET>"), "{}", stderr(&o));
    // An unknown command, at the top and in a namespace.
    let o = env.run(&["nope"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "strata: 'nope' is not a strata command.\nSee 'strata --help'.\n"
    );
    let o = env.run(&["image", "nope"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    // Help and version are no errors.
    for args in [
        &["--help"][..],
        &["--version"],
        &["build", "--help"],
        &["image", "ls", "--help"],
        &["help", "build"],
    ] {
        let o = env.run(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(!o.stdout.is_empty(), "{args:?}");
    }
    // A command alone, or a namespace without its command: its help on stdout, exit 0, as
    // docker.
    for (args, first) in [
        (&[][..], "Daemonless, Docker-compatible builder"),
        (&["image"], "Manage images"),
        (&["container"], "Manage containers"),
        (&["volume"], "Manage volumes"),
    ] {
        let o = env.run(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.starts_with(first), "{args:?}: {out}");
    }
}

/// `version`: docker's client lines (no server), `--format json` and a template.
#[test]
fn version_prints_the_client_lines() {
    let env = Env::new();
    let out = env.ok(&["version"]);
    let labels: Vec<&str> = out
        .lines()
        .map(|l| l.split(':').next().unwrap().trim())
        .collect();
    assert_eq!(
        labels,
        [
            "Client",
            "Version",
            "API version",
            "Rust version",
            "Git commit",
            "Built",
            "OS/Arch"
        ],
        "{out}"
    );
    assert!(
        out.contains(&format!(
            " Version:           {}\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{out}"
    );
    assert!(out.contains(" OS/Arch:           linux/"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["version", "--format", "json"])).unwrap();
    assert_eq!(v["Client"]["Version"], env!("CARGO_PKG_VERSION"));
    assert!(v["Server"].is_null());
    let commit = v["Client"]["GitCommit"].as_str().unwrap().to_string();
    assert!(commit == "unknown" || commit.len() == 7, "{commit}");
    assert_eq!(
        env.ok(&["version", "-f", "{{.Client.Version}} {{.Client.GitCommit}}"]),
        format!("{} {commit}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// `info`: counts from the store, host facts, `--format json` and a template.
#[test]
fn info_counts_what_the_store_holds() {
    strata_tests::require!(Busybox);
    let (env, _) = setup();
    env.ok(&["tag", "bb:1", "bb:again"]);
    let out = env.ok(&["info"]);
    for line in [
        " Containers: 0\n",
        " Images: 1\n",
        " Storage Driver: overlayfs\n",
        "  seccomp\n   Profile: default\n",
        &format!(" Store Root: {}\n", env.root().display()),
    ] {
        assert!(out.contains(line), "{line:?} missing from\n{out}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["info", "--format", "json"])).unwrap();
    assert_eq!(v["Images"], 1);
    assert_eq!(v["Containers"], 0);
    assert!(v["NCPU"].as_u64().unwrap() >= 1);
    assert!(v["MemTotal"].as_u64().unwrap() > 0);
    assert_eq!(
        env.ok(&["info", "-f", "{{.Images}} {{.Driver}} {{.OSType}}"]),
        "1 overlayfs linux\n"
    );
}

/// Errors that point the way: a stage name mistyped in `FROM` or `COPY --from` names the
/// stage before anything is pulled; a base that is in no store and no reachable registry
/// says how to get it into the store, without a plain-http hint for a name that does not
/// resolve.
#[test]
fn errors_name_the_stage_and_how_to_get_an_image() {
    strata_tests::require!(Root, Busybox);
    let (env, _) = setup();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let build = |df: &str| {
        std::fs::write(ctx.join("Dockerfile"), df).unwrap();
        let o = env.run(&["build", "--progress=plain", ctx.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        stderr(&o)
    };
    for (df, line, col) in [
        ("FROM bb:1 AS builder\nRUN true\nFROM biulder\n", 3, 6),
        (
            "FROM bb:1 AS builder\nRUN true\nFROM bb:1\nCOPY --from=biulder /x /x\n",
            4,
            13,
        ),
        (
            "FROM bb:1 AS builder\nRUN true\nFROM bb:1\nRUN --mount=from=buidler,target=/b true\n",
            4,
            18,
        ),
    ] {
        let err = build(df);
        assert!(
            err.contains(&format!(
                "Dockerfile:{line}:{col}: no stage or image named \""
            )),
            "{df}\n{err}"
        );
        assert!(err.contains("hint: did you mean builder?"), "{err}");
        assert!(!err.contains("pulling"), "nothing is pulled: {err}");
    }
    // A name in the store is an image, even one typo away from a stage.
    env.ok(&["tag", "bb:1", "biulder"]);
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb:1 AS builder\nRUN false\nFROM biulder\nRUN true\n",
    )
    .unwrap();
    env.ok(&["build", "--progress=plain", ctx.to_str().unwrap()]);
    // The base is nowhere: how to get it, and no plain-http hint for a DNS failure.
    let err = build("FROM nosuch.invalid/app:1\nRUN true\n");
    assert!(err.contains("not in the local store"), "{err}");
    assert!(
        err.contains("hint: to get it there: strata pull nosuch.invalid/app:1, strata load -i IMAGE.tar, strata import ROOTFS.tar nosuch.invalid/app:1, or strata tag IMAGE nosuch.invalid/app:1"),
        "{err}"
    );
    assert!(!err.contains("insecure-registry"), "{err}");
}

/// `images -a`, `--digests` and `--filter` as docker's.
#[test]
fn images_filters_and_digests() {
    strata_tests::require!(Root, Busybox);
    let (env, id) = setup();
    let tar = env.path("busybox.tar");
    // An untagged image (dangling) and a second name of bb:1.
    let other = env.ok(&[
        "import",
        "--change",
        "LABEL only=here",
        tar.to_str().unwrap(),
    ]);
    let other = other.trim().to_string();
    env.ok(&["tag", "bb:1", "app/web:2"]);
    let rows = |args: &[&str]| {
        let mut all = vec!["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"];
        all.extend_from_slice(args);
        let mut v: Vec<String> = env.ok(&all).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    let (bb, un) = (&id[7..19], &other[7..19]);
    assert_eq!(rows(&["-a"]), rows(&[]), "no intermediate images");
    assert_eq!(
        rows(&["--filter", "dangling=true"]),
        vec![format!("<none>:<none> {un}")]
    );
    assert_eq!(
        rows(&["--filter", "dangling=false"]),
        vec![format!("app/web:2 {bb}"), format!("bb:1 {bb}")]
    );
    assert_eq!(
        rows(&["--filter", "reference=app/*"]),
        vec![format!("app/web:2 {bb}")]
    );
    assert_eq!(rows(&["-f", "reference=bb:1"]), vec![format!("bb:1 {bb}")]);
    assert_eq!(
        rows(&["-f", "reference=*"]),
        vec![format!("bb:1 {bb}")],
        "* stops at /"
    );
    assert_eq!(
        rows(&["--filter", "label=only"]),
        vec![format!("<none>:<none> {un}")]
    );
    assert_eq!(
        rows(&["--filter", "label=a=x y"]),
        vec![format!("app/web:2 {bb}"), format!("bb:1 {bb}")]
    );
    assert!(rows(&["--filter", "label=a=nope"]).is_empty());
    assert_eq!(
        rows(&["--filter", "since=bb:1"]),
        vec![format!("<none>:<none> {un}")]
    );
    assert_eq!(rows(&["--filter", "before=bb:1"]), Vec::<String>::new());
    // --digests adds docker's DIGEST column (<none> for images that were never pulled).
    let table = env.ok(&["images", "--digests", "bb"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "REPOSITORY",
            "TAG",
            "DIGEST",
            "IMAGE",
            "ID",
            "CREATED",
            "SIZE"
        ]
    );
    assert!(
        lines.next().unwrap().split_whitespace().nth(2) == Some("<none>"),
        "{table}"
    );
    // Bad filters: docker's messages.
    let o = env.run(&["images", "--filter", "nope=1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("invalid filter 'nope'"),
        "{}",
        stderr(&o)
    );
    let o = env.run(&["images", "--filter", "dangling"]);
    assert!(
        stderr(&o).contains("bad format of filter"),
        "{}",
        stderr(&o)
    );
}

/// `strata completion bash|zsh|fish` and `strata man DIR`, from the same clap definitions.
#[test]
fn completions_and_man_pages() {
    let env = Env::new();
    // bash: the script loads, and completes commands and flags.
    let script = env.path("strata.bash");
    std::fs::write(&script, env.ok(&["completion", "bash"])).unwrap();
    let complete = |words: &str| {
        let o = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); _strata strata \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                script.display()
            ))
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let c = complete("strata bui");
    assert!(
        c.lines().any(|l| l == "build") && c.lines().any(|l| l == "builder"),
        "{c}"
    );
    let c = complete("strata build --no-");
    assert!(c.lines().any(|l| l == "--no-cache"), "{c}");
    for shell in ["zsh", "fish"] {
        let s = env.ok(&["completion", shell]);
        assert!(s.contains("strata") && s.contains("build"), "{shell}: {s}");
    }
    let o = env.run(&["completion", "tcsh"]);
    assert_eq!(o.status.code(), Some(125));
    // man: one page per command, roff that names the command and its flags.
    let dir = env.path("man1");
    env.ok(&["man", dir.to_str().unwrap()]);
    for page in [
        "strata.1",
        "strata-build.1",
        "strata-image-ls.1",
        "strata-run.1",
    ] {
        let text =
            std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie \\n(.g .ds Aq") || text.contains(".TH"),
            "{page}"
        );
    }
    let build = std::fs::read_to_string(dir.join("strata-build.1")).unwrap();
    assert!(
        build.contains("strata\\-build") && build.contains("\\-\\-target"),
        "{build}"
    );
}

/// Without root's powers, the commands that need them say so and how, before anything
/// fails with "Operation not permitted"; the others work.
#[test]
fn not_root_builds_rootless_and_says_what_it_costs() {
    strata_tests::require!(Root, Busybox);
    let dir = crate::common::scratch();
    let root = dir.path();
    std::fs::create_dir_all(root.join("ctx")).unwrap();
    std::fs::write(root.join("ctx/Dockerfile"), "FROM bb:1\nRUN true\n").unwrap();
    busybox_tar(&root.join("bb.tar"));
    crate::common::tool("chown", &["-R", "65534:65534", root.to_str().unwrap()]);
    let nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(strata_tests::strata_bin())
            .args(args)
            .env("STRATA_ROOT", root.join("store"))
            .env("HOME", root)
            .current_dir(root)
            .output()
            .unwrap()
    };
    let o = nobody(&["import", "bb.tar", "bb:1"]);
    assert!(o.status.success(), "import works unprivileged: {o:?}");
    // Without root, strata goes rootless: nobody has no subordinate ids, so only its own id
    // is mapped, and it says what that costs. (Where user namespaces are refused, the error
    // is workers::strata_builds_in_unprivileged_podman_and_docker's.)
    let o = nobody(&["build", "-t", "nb:1", "ctx"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("warning: rootless with a single id: no subordinate ids for nobody"),
        "{err}"
    );
    assert!(!err.contains("Operation not permitted"), "{err}");
    let o = nobody(&["run", "--rm", "--network", "none", "nb:1", "id", "-u"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0");
    let o = nobody(&["exec", "x", "true"]);
    assert!(stderr(&o).contains("No such container: x"), "{o:?}");
    // What needs no privileges still works: checks, listings.
    let o = nobody(&["build", "--check", "ctx"]);
    assert!(o.status.success(), "{o:?}");
    let o = nobody(&["images", "-q"]);
    assert!(o.status.success() && !o.stdout.is_empty(), "{o:?}");
}

/// `save -o` and `load -i` draw a byte bar on a terminal (stderr), nothing elsewhere.
#[test]
fn save_and_load_draw_byte_bars_on_a_terminal() {
    strata_tests::require!(Root, Busybox);
    let (env, _) = setup();
    let tar = env.path("saved.tar");
    let in_pty = |env: &Env, args: &str| {
        let o = std::process::Command::new("script")
            .arg("-qec")
            .arg(format!("{} {args}", strata_tests::strata_bin()))
            .arg("/dev/null")
            .env("STRATA_ROOT", env.root())
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = in_pty(&env, &format!("save -o {} bb:1", tar.display()));
    assert!(out.contains("Saving "), "{out}");
    let fresh = Env::new();
    let out = in_pty(&fresh, &format!("load -i {}", tar.display()));
    assert!(out.contains("Loading ["), "{out}");
    assert!(out.contains("Loaded image: bb:1"), "{out}");
    // Not a terminal: docker's lines only.
    let again = Env::new();
    let out = again.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: bb:1\n");
    let o = again.run(&[
        "save",
        "-o",
        env.path("again.tar").to_str().unwrap(),
        "bb:1",
    ]);
    assert!(o.status.success() && o.stderr.is_empty(), "{o:?}");
}
