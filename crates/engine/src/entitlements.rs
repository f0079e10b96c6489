//! Entitlements: what a Dockerfile may ask for only when the caller allows it.
//!
//! As in BuildKit, `RUN --network=host` needs the `network.host` entitlement (`docker buildx
//! build --allow network.host`; `--network host` for the whole build grants it too). Every
//! other RUN runs in a private network namespace. The check runs on the needed stages
//! before any step, so a refused build has run nothing.

use plan::{Diagnostic, ErrorKind, Instruction, Plan};

/// The entitlement `RUN --network=host` needs.
pub const NETWORK_HOST: &str = "network.host";

/// The first `RUN --network=host` of a needed stage, located, unless `network.host` is
/// allowed.
pub fn check(plan: &Plan, dockerfile: &str, allow_network_host: bool) -> Option<Diagnostic> {
    if allow_network_host {
        return None;
    }
    let step = plan
        .stages
        .iter()
        .filter(|s| s.needed)
        .flat_map(|s| &s.steps)
        .find(|step| {
            matches!(&step.instruction, Instruction::Run(r) if r.network.as_deref() == Some("host"))
        })?;
    let lines: Vec<&str> = dockerfile.lines().collect();
    // The flag's place within the instruction's physical lines (the RUN line if not found).
    let (line, col, width) = (step.span.start..=step.span.end.max(step.span.start))
        .find_map(|n| {
            let text = lines.get(n.checked_sub(1)?)?;
            let at = text.find("--network")?;
            let len = text[at..]
                .find(char::is_whitespace)
                .unwrap_or(text.len() - at);
            Some((
                n,
                text[..at].chars().count() + 1,
                text[at..at + len].chars().count(),
            ))
        })
        .unwrap_or((step.span.start, 1, 3));
    Some(Diagnostic {
        kind: ErrorKind::InvalidFlag,
        line,
        col,
        width,
        message: format!("{NETWORK_HOST} is not allowed"),
        hint: Some(format!(
            "RUN --network=host needs the {NETWORK_HOST} entitlement: pass --allow \
             {NETWORK_HOST} (or --network host) to strata build"
        )),
        source_line: lines
            .get(line.saturating_sub(1))
            .map(|l| l.to_string())
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoImages;
    impl plan::ImageResolver for NoImages {
        fn resolve(&self, _: &str) -> Option<plan::BaseImage> {
            None
        }
    }

    fn plan_of(df: &str) -> Plan {
        plan::plan(df, &plan::PlanOptions::default(), &NoImages).unwrap()
    }

    #[test]
    fn run_network_host_needs_the_entitlement() {
        let df = "FROM scratch\nRUN true\nRUN  --network=host wget x\n";
        let p = plan_of(df);
        let d = check(&p, df, false).expect("refused");
        assert_eq!((d.line, d.col, d.width), (3, 6, 14));
        assert_eq!(d.message, "network.host is not allowed");
        assert!(d
            .render("Dockerfile")
            .starts_with("error: Dockerfile:3:6: network.host is not allowed\n"));
        assert!(check(&p, df, true).is_none());
    }

    #[test]
    fn other_networks_and_unneeded_stages_pass() {
        let df = "FROM scratch AS other\nRUN --network=host true\n\
                  FROM scratch\nRUN --network=none true\nRUN --network=default true\nRUN true\n";
        assert!(check(&plan_of(df), df, false).is_none());
    }

    #[test]
    fn continuation_lines() {
        let df = "FROM scratch\nRUN --mount=type=tmpfs,target=/t \\\n    --network=host true\n";
        let d = check(&plan_of(df), df, false).expect("refused");
        assert_eq!((d.line, d.col), (3, 5));
    }
}
