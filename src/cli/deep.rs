//! `lafs manifest`, `lafs stats` and `lafs deep-check`: Tahoe's deep operations over a tree,
//! streamed from [`crate::grid::deep`] (memory does not grow with the tree).

use std::path::Path;

use futures::StreamExt;
use futures::stream::FuturesOrdered;

use super::Incomplete;
use super::shared::{complain, count_bar, resolve_target, say, show_path};
use crate::grid::deep::check::check_node;
use crate::grid::deep::{DeepCheckOptions, DeepCheckTally, DeepStats, DeepWalk, ManifestEntry, WalkError};

/// How many nodes are checked at once.
const CHECKS_IN_FLIGHT: usize = 8;

/// What `lafs manifest` prints of each node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestField {
    /// `cap path` (Tahoe's default).
    CapAndPath,
    /// Storage indexes only.
    StorageIndex,
    /// Verify caps only.
    VerifyCap,
    /// Repair caps only.
    RepairCap,
    /// One JSON object per node, then the stats (Tahoe's `--raw`).
    Json,
}

fn walk_problem(bar: Option<&indicatif::ProgressBar>, problem: &WalkError) {
    complain(
        bar,
        &format!("{}: cannot read directory: {}", show_path(&problem.path), problem.error),
    );
}

pub(crate) async fn manifest(dir: &Path, target: &str, field: ManifestField) -> anyhow::Result<()> {
    let (node, root) = resolve_target(dir, target).await?;
    let mut walk = DeepWalk::new(node.grid.clone(), root);
    let bar = count_bar("objects");
    let mut stats = DeepStats::new();
    let mut problems = 0u64;
    while let Some(item) = walk.next().await {
        let found = match item {
            Ok(found) => found,
            Err(problem) => {
                walk_problem(bar.as_ref(), &problem);
                problems += 1;
                continue;
            }
        };
        stats.add(&found);
        if let Some(bar) = &bar {
            bar.inc(1);
        }
        let entry = ManifestEntry::of(&found);
        let line = match field {
            ManifestField::CapAndPath => Some(format!("{} {}", entry.cap, entry.path.join("/"))),
            ManifestField::StorageIndex => entry.storage_index,
            ManifestField::VerifyCap => entry.verify_cap,
            ManifestField::RepairCap => entry.repair_cap,
            ManifestField::Json => Some(entry.to_json().to_string()),
        };
        if let Some(line) = line {
            say(bar.as_ref(), &line);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if field == ManifestField::Json {
        println!("{}", serde_json::json!({"type": "stats", "stats": stats.to_json()}));
    }
    if problems > 0 {
        return Err(Incomplete(format!("{problems} directories could not be read")).into());
    }
    Ok(())
}

pub(crate) async fn stats(dir: &Path, target: &str, json: bool) -> anyhow::Result<()> {
    let (node, root) = resolve_target(dir, target).await?;
    let mut walk = DeepWalk::new(node.grid.clone(), root);
    let bar = count_bar("objects");
    let mut stats = DeepStats::new();
    let mut problems = 0u64;
    while let Some(item) = walk.next().await {
        match item {
            Ok(found) => {
                stats.add(&found);
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
            }
            Err(problem) => {
                walk_problem(bar.as_ref(), &problem);
                problems += 1;
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&stats.to_json())?);
    } else {
        print!("{}", format_stats(&stats));
    }
    if problems > 0 {
        return Err(Incomplete(format!("{problems} directories could not be read")).into());
    }
    Ok(())
}

/// Tahoe's `stats` text: the counts and sizes, then the histogram.
pub(crate) fn format_stats(stats: &DeepStats) -> String {
    use std::fmt::Write;
    // Tahoe prints these (not count-unknown nor largest-directory-children), in this order.
    const SHOWN: [&str; 10] = [
        "count-immutable-files",
        "count-mutable-files",
        "count-literal-files",
        "count-files",
        "count-directories",
        "size-immutable-files",
        "size-literal-files",
        "size-directories",
        "largest-directory",
        "largest-immutable-file",
    ];
    let fields = stats.fields();
    let mut out = String::from("Counts and Total Sizes:\n");
    for key in SHOWN {
        let Some(&(_, value)) = fields.iter().find(|(k, _)| *k == key) else {
            continue;
        };
        let _ = write!(out, "{key:>22}: {value}");
        if !key.starts_with("count-") && value > 1000 {
            let _ = write!(out, "    {}", abbreviate_both(value));
        }
        out.push('\n');
    }
    let histogram = stats.histogram();
    if !histogram.is_empty() {
        out.push_str("Size Histogram:\n");
        let max_len = histogram
            .iter()
            .map(|(_, hi, _)| hi.to_string().len())
            .max()
            .unwrap_or(1);
        let count_len = histogram.iter().map(|(_, _, n)| n.to_string().len()).max().unwrap_or(1);
        let mut previous_max: Option<u64> = None;
        for (lo, hi, n) in histogram {
            if previous_max.is_some_and(|p| lo != p + 1) {
                let _ = writeln!(out, "{}...", " ".repeat(max_len - 1));
            }
            previous_max = Some(hi);
            let _ = writeln!(
                out,
                "{lo:>max_len$}-{hi:<max_len$} : {n:<count_len$}    {}",
                abbreviate_both(hi)
            );
        }
    }
    out
}

/// Tahoe's `abbreviate_space_both`: `(1.23 kB, 1.20 kiB)` (sic: Tahoe writes kiB).
fn abbreviate_both(size: u64) -> String {
    format!(
        "({}, {})",
        abbreviate(size, 1000.0, "B"),
        abbreviate(size, 1024.0, "iB")
    )
}

fn abbreviate(size: u64, unit: f64, suffix: &str) -> String {
    if size < 1024 {
        return format!("{size} B");
    }
    let s = size as f64;
    let mut scale = unit;
    for prefix in ["k", "M", "G", "T", "P"] {
        if s < scale * unit {
            return format!("{:.2} {prefix}{suffix}", s / scale);
        }
        scale *= unit;
    }
    format!("{:.2} E{suffix}", s / scale)
}

/// `lafs deep-check`'s switches.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeepCheckFlags {
    /// Verify every block.
    pub verify: bool,
    /// Repair what is unhealthy.
    pub repair: bool,
    /// Add or renew leases.
    pub add_lease: bool,
    /// One line per node.
    pub verbose: bool,
    /// One JSON object per node, then the tally.
    pub json: bool,
}

pub(crate) async fn deep_check(dir: &Path, target: &str, flags: DeepCheckFlags) -> anyhow::Result<()> {
    let (node, root) = resolve_target(dir, target).await?;
    let options = DeepCheckOptions {
        verify: flags.verify,
        repair: flags.repair,
        add_lease: flags.add_lease,
        scratch_dir: node.config.spool_dir.clone(),
    };
    let grid = node.grid.clone();
    let mut walk = DeepWalk::new(grid.clone(), root);
    let bar = count_bar("objects checked");
    let mut tally = DeepCheckTally::default();
    let mut in_flight = FuturesOrdered::new();
    let mut walk_done = false;
    loop {
        while !walk_done && in_flight.len() < CHECKS_IN_FLIGHT {
            match walk.next().await {
                Some(Ok(found)) => {
                    let (grid, options) = (grid.clone(), options.clone());
                    in_flight.push_back(async move {
                        let result = check_node(&grid, &found, &options).await;
                        (found.path, result)
                    });
                }
                Some(Err(problem)) => {
                    walk_problem(bar.as_ref(), &problem);
                    tally.errors += 1;
                }
                None => walk_done = true,
            }
        }
        let Some((path, result)) = in_flight.next().await else {
            break;
        };
        if let Some(bar) = &bar {
            bar.inc(1);
        }
        let check = match result {
            Ok(check) => check,
            Err(e) => {
                complain(bar.as_ref(), &format!("{}: cannot check: {e}", show_path(&path)));
                tally.errors += 1;
                continue;
            }
        };
        tally.add(&check);
        let shown = show_path(&check.path);
        if flags.json {
            let line = serde_json::json!({
                "path": check.path,
                "type": check.kind.manifest_type(),
                "storage-index": check.storage_index.map(|si| si.to_string()).unwrap_or_default(),
                "summary": check.summary(),
                "healthy": check.healthy,
                "recoverable": check.recoverable,
                "good-shares": check.good_shares,
                "needed": check.needed,
                "total": check.total,
                "list-corrupt-shares": check.corrupt_shares,
                "repair-attempted": check.repair_attempted,
                "healthy-after-repair": check.healthy_after,
            });
            say(bar.as_ref(), &line.to_string());
        } else if flags.verbose {
            let summary = if flags.repair {
                if check.healthy {
                    "healthy".to_string()
                } else {
                    "not healthy".to_string()
                }
            } else {
                check.summary()
            };
            say(bar.as_ref(), &format!("{shown}: {summary}"));
        }
        if !flags.json {
            for (server, share) in &check.corrupt_shares {
                let si = check.storage_index.map(|si| si.to_string()).unwrap_or_default();
                say(
                    bar.as_ref(),
                    &format!(" corrupt: server {server}, SI {si}, shnum {share}"),
                );
            }
            if check.repair_attempted {
                let outcome = if check.healthy_after { "successful" } else { "failed" };
                say(bar.as_ref(), &format!(" repair {outcome}"));
            }
        }
        if !check.healthy_after {
            complain(bar.as_ref(), &format!("{shown}: {}", check.summary()));
        }
        if check.lease_failures > 0 {
            complain(
                bar.as_ref(),
                &format!("{shown}: {} servers refused the lease", check.lease_failures),
            );
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if flags.json {
        println!(
            "{}",
            serde_json::json!({
                "type": "tally",
                "count-objects-checked": tally.checked,
                "count-objects-healthy": tally.healthy,
                "count-objects-unhealthy": tally.unhealthy,
                "count-objects-unrecoverable": tally.unrecoverable,
                "count-repairs-attempted": tally.repairs_attempted,
                "count-repairs-successful": tally.repairs_successful,
                "count-objects-healthy-post-repair": tally.healthy_after,
                "count-objects-unhealthy-post-repair": tally.unhealthy_after,
                "count-errors": tally.errors,
            })
        );
    } else if flags.repair {
        println!("done: {} objects checked", tally.checked);
        println!(" pre-repair: {} healthy, {} unhealthy", tally.healthy, tally.unhealthy);
        println!(
            " {} repairs attempted, {} successful, {} failed",
            tally.repairs_attempted,
            tally.repairs_successful,
            tally.repairs_attempted - tally.repairs_successful
        );
        println!(
            " post-repair: {} healthy, {} unhealthy",
            tally.healthy_after, tally.unhealthy_after
        );
    } else {
        println!(
            "done: {} objects checked, {} healthy, {} unhealthy",
            tally.checked, tally.healthy, tally.unhealthy
        );
    }
    if !tally.all_healthy() {
        return Err(Incomplete(format!(
            "{} objects not healthy, {} could not be checked",
            tally.unhealthy_after, tally.errors
        ))
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_abbreviate_as_tahoe() {
        assert_eq!(abbreviate_both(1000), "(1000 B, 1000 B)");
        assert_eq!(abbreviate_both(3162), "(3.16 kB, 3.09 kiB)");
        assert_eq!(abbreviate_both(1_000_000), "(1.00 MB, 976.56 kiB)");
    }
}
