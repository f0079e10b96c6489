//! BuildKit's own `build --check` test cases (`dockerfile_check_test.go`, as data in
//! `buildkit-lint/cases.jsonl`; see its README): every case is checked for the warnings
//! BuildKit expects in check mode, compared after sorting by (line, detail): rule, line,
//! end line, detail, description and URL, and the count. Error cases: the check must fail
//! with BuildKit's exact `error_message` (lint violations, the parse error and the two
//! platform errors alike); other cases must not fail. Cases that do not pass yet are listed
//! in `buildkit-lint-known-failing.txt`; the test fails on any failure not listed there and
//! on any listed case that passes.

use std::collections::BTreeSet;

use check::{check, BaseImages, Input, Mode, NoImages};
use serde_json::Value;

mod common;
use common::DATA;

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn n(v: &Value) -> usize {
    v.as_u64().unwrap_or(0) as usize
}

/// One case: the differences, empty when it passes; and the number of expected warnings
/// that matched.
fn run_case(case: &Value, images: &dyn BaseImages) -> (Vec<String>, usize, usize) {
    let dockerfile = s(&case["dockerfile"]);
    let dockerignore = case["dockerignore"].as_str();
    let build_args: Vec<(String, String)> = case["build_args"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), s(v))).collect())
        .unwrap_or_default();
    let report = check(&Input {
        dockerfile: &dockerfile,
        dockerignore,
        build_args: &build_args,
        images,
        ..Default::default()
    });
    let mut diffs = Vec::new();
    let expected = case["expected"].as_array().cloned().unwrap_or_default();
    let mut matched = 0;
    for (i, e) in expected.iter().enumerate() {
        let Some(w) = report.warnings.get(i) else {
            diffs.push(format!(
                "missing warning {}: {} line {}: {}",
                i,
                s(&e["rule"]),
                n(&e["line"]),
                s(&e["detail"])
            ));
            continue;
        };
        let want = (
            s(&e["rule"]),
            n(&e["line"]),
            n(&e["end_line"]),
            s(&e["detail"]),
            s(&e["description"]),
            s(&e["url"]),
        );
        let got = (
            w.rule.to_string(),
            w.line,
            w.end_line,
            w.detail.clone(),
            w.description.to_string(),
            w.url.clone(),
        );
        if want == got {
            matched += 1;
        } else {
            diffs.push(format!(
                "warning {i}: want {want:?}\n               got  {got:?}"
            ));
        }
    }
    for w in report.warnings.iter().skip(expected.len()) {
        diffs.push(format!("unexpected warning: {}", w.short()));
    }
    match (case["error"].as_bool().unwrap_or(false), &report.error) {
        (true, None) => diffs.push(format!("no error; want {:?}", s(&case["error_message"]))),
        (true, Some(e)) => {
            let want = s(&case["error_message"]);
            // BuildKit lists the rules of a lint violation from a Go map: compare as a set.
            let same = if case["error_kind"] == "lint" {
                let set = |m: &str| -> BTreeSet<String> {
                    m.trim_start_matches("lint violation found for rules: ")
                        .split(", ")
                        .map(str::to_string)
                        .collect()
                };
                e.starts_with("lint violation found for rules: ") && set(e) == set(&want)
            } else {
                *e == want
            };
            if !same {
                diffs.push(format!("error: want {want:?}\n        got  {e:?}"));
            }
        }
        (false, Some(e)) => diffs.push(format!("unexpected error: {e:?}")),
        (false, None) => {}
    }
    (diffs, matched, expected.len())
}

#[test]
fn buildkit_lint_cases() {
    let text = std::fs::read_to_string(format!("{DATA}/cases.jsonl")).expect("cases.jsonl");
    let known: BTreeSet<String> = include_str!("buildkit-lint-known-failing.txt")
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let (mut cases, mut passed, mut warn_ok, mut warn_all) = (0, 0, 0, 0);
    let mut new_failures = Vec::new();
    let mut now_passing = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("case json");
        let name = s(&case["name"]);
        let (diffs, ok, all) = run_case(&case, &NoImages);
        cases += 1;
        warn_ok += ok;
        warn_all += all;
        if diffs.is_empty() {
            passed += 1;
            if known.contains(&name) {
                now_passing.push(name);
            }
        } else {
            if !known.contains(&name) {
                new_failures.push(name.clone());
            }
            println!("FAIL {name}\n  {}", diffs.join("\n  "));
        }
    }
    println!("buildkit-lint: {passed}/{cases} cases, {warn_ok}/{warn_all} warnings");
    println!("known failing: {}", known.len());
    assert_eq!(cases, 87, "cases.jsonl should hold 87 cases");
    assert!(
        new_failures.is_empty(),
        "cases failing that are not in buildkit-lint-known-failing.txt: {new_failures:?}"
    );
    assert!(
        now_passing.is_empty(),
        "cases in buildkit-lint-known-failing.txt that pass now (remove them): {now_passing:?}"
    );
}

/// Build mode (the warnings of a normal build): only the stages the target needs are
/// dispatched. Each case's `expected_build` (or `expected` when the case has none) must be
/// what a build warns, with its lines (BuildKit asserts `Rule: detail (line N)` there); the
/// lint error of `error=true` cases must be the same as in check mode.
#[test]
fn buildkit_lint_cases_build_mode() {
    let text = std::fs::read_to_string(format!("{DATA}/cases.jsonl")).expect("cases.jsonl");
    let (mut cases, mut with_build_list, mut failures) = (0, 0, Vec::new());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("case json");
        let name = s(&case["name"]);
        let dockerfile = s(&case["dockerfile"]);
        let build_args: Vec<(String, String)> = case["build_args"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), s(v))).collect())
            .unwrap_or_default();
        let report = check(&Input {
            dockerfile: &dockerfile,
            dockerignore: case["dockerignore"].as_str(),
            build_args: &build_args,
            mode: Mode::Build,
            ..Default::default()
        });
        cases += 1;
        let expected = match case["expected_build"].as_array() {
            Some(b) => {
                with_build_list += 1;
                b.clone()
            }
            None => case["expected"].as_array().cloned().unwrap_or_default(),
        };
        let want: Vec<String> = expected
            .iter()
            .map(|e| {
                format!(
                    "{}: {} (line {})",
                    s(&e["rule"]),
                    s(&e["detail"]),
                    n(&e["line"])
                )
            })
            .collect();
        let got: Vec<String> = report.warnings.iter().map(|w| w.short()).collect();
        if want != got {
            failures.push(format!("{name}:\n  want {want:?}\n  got  {got:?}"));
        }
        if case["error_kind"] == "lint" && !report.lint_error {
            failures.push(format!("{name}: no lint error in build mode"));
        }
    }
    println!("buildkit-lint build mode: {}/{cases} cases ({with_build_list} with their own build-mode list)", cases - failures.len());
    assert_eq!(with_build_list, 2);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The rule table agrees with rules.tsv: names, descriptions, URLs, experimental status.
#[test]
fn rules_match_rules_tsv() {
    let text = std::fs::read_to_string(format!("{DATA}/rules.tsv")).expect("rules.tsv");
    let mut rows = 0;
    for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let rule = check::rules::by_name(f[0]).unwrap_or_else(|| panic!("no rule {}", f[0]));
        assert_eq!(rule.description, f[1], "{}", f[0]);
        assert_eq!(rule.experimental, f[4] == "experimental", "{}", f[0]);
        assert_eq!(rule.url_path, f[5], "{}", f[0]);
        rows += 1;
    }
    assert_eq!(rows, 22);
    assert_eq!(check::rules::ALL.len(), 22);
}

/// The comparison can fail: a wrong detail, a missing warning, a missing error all count.
#[test]
fn harness_detects_differences() {
    let good: Value = serde_json::from_str(
        r#"{"name":"x","dockerfile":"FROM scratch\nMAINTAINER a\n","expected":[{"rule":"MaintainerDeprecated","line":2,"end_line":2,"detail":"Maintainer instruction is deprecated in favor of using label","description":"The MAINTAINER instruction is deprecated, use a label instead to define an image author","url":"https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/"}],"error":false}"#,
    )
    .expect("json");
    assert!(run_case(&good, &NoImages).0.is_empty());
    let mut wrong_line = good.clone();
    wrong_line["expected"][0]["line"] = 3.into();
    assert!(!run_case(&wrong_line, &NoImages).0.is_empty());
    let mut none = good.clone();
    none["expected"] = Value::Array(vec![]);
    assert!(!run_case(&none, &NoImages).0.is_empty());
    let mut err = good.clone();
    err["error"] = true.into();
    err["error_message"] = "lint violation found for rules: MaintainerDeprecated".into();
    err["error_kind"] = "lint".into();
    assert!(!run_case(&err, &NoImages).0.is_empty());
}
