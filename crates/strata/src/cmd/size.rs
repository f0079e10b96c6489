//! Size reports: what each stage of a build produced and what the final image kept
//! (`strata build --report`), and image sizes compared (`strata size`). Sizes are docker's
//! (the content size of the layers, as `docker images` shows).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use store::{Digest, Store, Writer};

use crate::format::human_size;

/// How `to` compares with `from`, as people say it: `98.3 % smaller (58× smaller)`,
/// `12.0 % larger`, `608× larger` (a percentage past 100 % reads as a ratio).
pub fn change(from: u64, to: u64) -> String {
    if from == 0 || to == 0 {
        return if from == to {
            "the same size".into()
        } else if to == 0 {
            "100.0 % smaller".into()
        } else {
            "larger (from nothing)".into()
        };
    }
    let ratio = |a: u64, b: u64| {
        let r = a as f64 / b as f64;
        if r >= 10.0 {
            format!("{r:.0}×")
        } else {
            format!("{r:.1}×")
        }
    };
    if to <= from {
        let pct = 100.0 * (from - to) as f64 / from as f64;
        if from >= 2 * to {
            format!("{pct:.1} % smaller ({} smaller)", ratio(from, to))
        } else {
            format!("{pct:.1} % smaller")
        }
    } else if to >= 2 * from {
        format!("{} larger", ratio(to, from))
    } else {
        format!("{:.1} % larger", 100.0 * (to - from) as f64 / from as f64)
    }
}

/// A bar of `width` cells for `size` against `max` (at least one cell for a non-empty size).
pub fn bar(size: u64, max: u64, width: usize) -> String {
    if max == 0 || size == 0 {
        return String::new();
    }
    let cells = ((size as f64 / max as f64) * width as f64).round() as usize;
    "█".repeat(cells.clamp(1, width))
}

/// Bars' width in cells.
const BAR: usize = 30;

fn layers_size(store: &Writer<'_>, layers: &[Digest]) -> Result<u64> {
    let mut total = 0;
    for l in layers {
        total += archive::layer_content_size(store, l)?;
    }
    Ok(total)
}

/// The per-stage report of a finished build.
pub fn build_report(store: &Writer<'_>, r: &engine::BuildResult, json_out: bool) -> Result<String> {
    let final_layers: BTreeSet<&Digest> = r.image.config.rootfs.diff_ids.iter().collect();
    let final_size = layers_size(store, &r.image.config.rootfs.diff_ids)?;
    let mut rows = Vec::new();
    let mut left_behind = 0u64;
    for (i, layers) in &r.stage_layers {
        let s = &r.plan.stages[*i];
        let size = layers_size(store, layers)?;
        let kept = layers.iter().filter(|l| final_layers.contains(l)).count();
        let kept_size = layers_size(
            store,
            &layers
                .iter()
                .filter(|l| final_layers.contains(l))
                .cloned()
                .collect::<Vec<_>>(),
        )?;
        if kept < layers.len() {
            left_behind += size - kept_size;
        }
        let base = match &s.base {
            plan::Base::Scratch => "scratch".to_string(),
            plan::Base::Image { reference } => reference.clone(),
            plan::Base::Stage { name, .. } => format!("stage {name}"),
        };
        let chain = r
            .stage_chains
            .iter()
            .find(|(j, _)| j == i)
            .map(|(_, c)| c.clone())
            .unwrap_or_default();
        let whole = layers_size(store, &chain)?;
        rows.push((
            s.display_name.clone(),
            base,
            layers.len(),
            size,
            kept,
            kept_size,
            *i == r.plan.target,
            whole,
        ));
    }
    // What the final image took from the other stages arrives through COPY --from: it is
    // in the target stage's own layers; report the base image part separately.
    let target_own: u64 = rows.iter().filter(|r| r.6).map(|r| r.3).sum();
    // Everything the other stages' images hold that the final image does not, base images
    // included; a layer shared by several stages (their common base) counts once.
    let mut behind: BTreeSet<&Digest> = BTreeSet::new();
    for (i, chain) in &r.stage_chains {
        if *i != r.plan.target {
            behind.extend(chain.iter().filter(|l| !final_layers.contains(l)));
        }
    }
    let left_whole = layers_size(store, &behind.into_iter().cloned().collect::<Vec<_>>())?;
    let base_size = final_size.saturating_sub(target_own);
    if json_out {
        let stages: Vec<_> = rows
            .iter()
            .map(|(name, base, n, size, kept, kept_size, target, whole)| {
                json!({"stage": name, "base": base, "layers": n, "size": size, "stage_image_size": whole,
                       "layers_in_final": kept, "size_in_final": kept_size, "target": target})
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&json!({
            "image": r.image.id().to_string(),
            "final_size": final_size,
            "base_size": base_size,
            "left_behind": left_behind,
            "left_behind_with_bases": left_whole,
            "stages": stages,
        }))? + "\n");
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<28} {:>7} {:>10} {:>12}   IN FINAL IMAGE",
        "STAGE", "BASE", "LAYERS", "ADDED", "STAGE IMAGE"
    );
    let widest = rows.iter().map(|r| r.7).max().unwrap_or(0);
    for (name, base, n, size, kept, kept_size, target, whole) in &rows {
        let fate = if *target {
            "yes (the final stage)".to_string()
        } else if *kept == 0 {
            "no (left behind)".to_string()
        } else {
            format!("{kept} of {n} layers, {}", human_size(*kept_size))
        };
        let _ = writeln!(
            out,
            "{name:<16} {base:<28} {n:>7} {:>10} {:>12}   {fate:<24} {}",
            human_size(*size),
            human_size(*whole),
            bar(*whole, widest, BAR)
        );
    }
    let _ = writeln!(
        out,
        "final image {}: {} ({} from its base, {} added by its own steps); left behind: {} built in other stages, {} counting their base images",
        r.image.id().short(),
        human_size(final_size),
        human_size(base_size),
        human_size(target_own),
        human_size(left_behind),
        human_size(left_whole)
    );
    Ok(out)
}

/// `strata size IMAGE...`: each image's size; with two or more, each compared with the first.
pub fn size(store: &Store, images: &[String], json_out: bool) -> Result<ExitCode> {
    let store = &store.lock_shared()?;
    let mut rows = Vec::new();
    for i in images {
        let img = store.resolve(i)?;
        let size = archive::image_size(store, &img)?;
        rows.push((
            i.clone(),
            img.id().short().to_string(),
            img.config.rootfs.diff_ids.len(),
            size,
        ));
    }
    let first = rows.first().map(|r| r.3).unwrap_or(0);
    if json_out {
        let v: Vec<_> = rows
            .iter()
            .map(|(name, id, n, size)| {
                let smaller = if first > 0 { 100.0 * (first as f64 - *size as f64) / first as f64 } else { 0.0 };
                json!({"image": name, "id": id, "layers": n, "size": size, "percent_smaller_than_first": (smaller * 10.0).round() / 10.0})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<40} {:<14} {:>7} {:>10}",
        "IMAGE", "IMAGE ID", "LAYERS", "SIZE"
    );
    let widest = rows.iter().map(|r| r.3).max().unwrap_or(0);
    for (name, id, n, size) in &rows {
        println!(
            "{name:<40} {id:<14} {n:>7} {:>10}  {}",
            human_size(*size),
            bar(*size, widest, BAR)
        );
    }
    if let Some((fname, ..)) = rows.first() {
        for (name, _, _, size) in rows.iter().skip(1) {
            println!(
                "{fname} {} → {name} {}, {}",
                human_size(first),
                human_size(*size),
                change(first, *size)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `strata size --compare SINGLE MULTI ...`: for each pair, the single-stage image, the
/// multi-stage image that replaces it, and what multi-stage saved.
pub fn compare(store: &Store, images: &[String], json_out: bool) -> Result<ExitCode> {
    let store = &store.lock_shared()?;
    let mut rows = Vec::new();
    for pair in images.chunks(2) {
        let [single, multi] = pair else {
            anyhow::bail!("--compare takes two images: SINGLE MULTI");
        };
        let s = archive::image_size(store, &store.resolve(single)?)?;
        let m = archive::image_size(store, &store.resolve(multi)?)?;
        let pct = if s > 0 {
            100.0 * (s as f64 - m as f64) / s as f64
        } else {
            0.0
        };
        rows.push((single, s, multi, m, pct));
    }
    if json_out {
        let v: Vec<_> = rows
            .iter()
            .map(|(single, s, multi, m, pct)| {
                json!({"single": single, "single_size": s, "multi": multi, "multi_size": m,
                       "percent_smaller": (pct * 10.0).round() / 10.0})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<32} {:>10}   {:<32} {:>10}   {:>9}",
        "SINGLE-STAGE", "SIZE", "MULTI-STAGE", "SIZE", "SAVED"
    );
    for (single, s, multi, m, pct) in &rows {
        let saved = if *pct >= 0.0 {
            format!("{pct:.1} %")
        } else {
            format!("-{:.1} %", pct.abs())
        };
        println!(
            "{single:<32} {:>10}   {multi:<32} {:>10}   {saved:>9}",
            human_size(*s),
            human_size(*m)
        );
    }
    let widest = rows.iter().map(|r| r.1.max(r.3)).max().unwrap_or(0);
    for (single, s, multi, m, _) in &rows {
        println!(
            "{single} {} → {multi} {}, {}",
            human_size(*s),
            human_size(*m),
            change(*s, *m)
        );
        println!("  {:<10} {}", human_size(*s), bar(*s, widest, BAR));
        println!("  {:<10} {}", human_size(*m), bar(*m, widest, BAR));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_as_people_say_them() {
        assert_eq!(change(1000, 17), "98.3 % smaller (59× smaller)");
        assert_eq!(change(1000, 600), "40.0 % smaller");
        assert_eq!(change(1000, 400), "60.0 % smaller (2.5× smaller)");
        assert_eq!(change(100, 112), "12.0 % larger");
        assert_eq!(change(100, 60_800), "608× larger");
        assert_eq!(change(100, 250), "2.5× larger");
        assert_eq!(change(0, 0), "the same size");
    }

    #[test]
    fn bars_scale_to_the_largest() {
        assert_eq!(bar(100, 100, 30).chars().count(), 30);
        assert_eq!(bar(50, 100, 30).chars().count(), 15);
        assert_eq!(bar(1, 1_000_000, 30).chars().count(), 1, "never invisible");
        assert_eq!(bar(0, 100, 30), "");
    }
}
