//! `lafs check`: each share of a file, its server and its health; with `--repair`, re-creating
//! missing shares.

use std::path::Path;

use anyhow::bail;

use super::shared::parse_cap;
use crate::grid::immutable::check::ShareHealth;
use crate::grid::uri::Cap;
use crate::node::Node;

pub(crate) async fn check(dir: &Path, cap_text: &str, verify: bool, repair: bool) -> anyhow::Result<()> {
    let cap = match parse_cap(cap_text)? {
        Cap::Directory(inner) => *inner,
        other => other,
    };
    let chk = match cap {
        Cap::Literal(_) => {
            println!("LIT file: its data is in the cap itself; nothing on the grid to check");
            return Ok(());
        }
        Cap::Chk(chk) => chk,
        Cap::Mutable(mutable) => return check_mutable(dir, &mutable, repair).await,
        other => bail!("checking {} caps is not supported yet", other.kind()),
    };
    let node = Node::open(dir)?;
    println!("storage index {}", chk.storage_index());
    println!("{}-of-{} encoding, {} bytes", chk.needed, chk.total, chk.size);
    if repair {
        let repaired = node.grid.repair(&chk, &node.config.spool_dir, verify).await?;
        print_check(&repaired.before);
        if repaired.before.is_healthy() {
            println!("repair: not needed");
            return Ok(());
        }
        if !repaired.before.is_recoverable() {
            bail!(
                "file is unrecoverable: {} shares needed, {} good found",
                repaired.before.needed,
                repaired.before.good_shares()
            );
        }
        if repaired.repaired {
            println!("repair: re-created shares; after repair:");
        } else {
            println!("repair: no server could take the missing shares; after repair:");
        }
        print_check(&repaired.after);
        if !repaired.after.is_healthy() {
            bail!(
                "repair incomplete: {} of {} shares good (too few servers could take the rest)",
                repaired.after.good_shares(),
                repaired.after.total
            );
        }
        return Ok(());
    }
    let report = node.grid.check(&chk, verify).await?;
    print_check(&report);
    if !report.is_recoverable() {
        bail!(
            "file is unrecoverable: {} shares needed, {} good found",
            report.needed,
            report.good_shares()
        );
    }
    Ok(())
}

/// Checks (and with `repair` republishes) a mutable file or directory.
async fn check_mutable(dir: &Path, cap: &crate::grid::uri::MutableCap, repair: bool) -> anyhow::Result<()> {
    let node = Node::open(dir)?;
    println!("storage index {}", cap.storage_index());
    let print = |h: &crate::grid::immutable::repair::MutableHealth| {
        for (share, server) in &h.shares {
            println!("  share {share:>3} on {server:<12} good (version {})", h.seqnum);
        }
        if h.other_versions > 0 {
            println!("  {} shares of other versions", h.other_versions);
        }
        println!(
            "{} of {} shares good ({} needed), version {}: {}",
            h.shares.len(),
            h.total,
            h.needed,
            h.seqnum,
            if h.is_healthy() {
                "healthy"
            } else {
                "not healthy but recoverable"
            }
        );
    };
    if !repair {
        print(&node.grid.check_mutable(cap).await?);
        return Ok(());
    }
    let (before, after) = node.grid.repair_mutable(cap).await.map_err(|e| match e {
        crate::grid::Error::ReadOnly => anyhow::anyhow!("repairing a mutable file needs its write cap"),
        other => other.into(),
    })?;
    print(&before);
    if before.is_healthy() {
        println!("repair: not needed");
        return Ok(());
    }
    if after.shares.len() > before.shares.len() {
        println!("repair: republished, shares re-created; after repair:");
    } else {
        println!("repair: republished; no server could take the missing shares; after repair:");
    }
    print(&after);
    if after.shares.len() < after.total {
        bail!(
            "repair incomplete: {} of {} shares good (too few servers could take the rest)",
            after.shares.len(),
            after.total
        );
    }
    if after.other_versions > 0 {
        bail!(
            "repair incomplete: {} shares of other versions are still on the grid",
            after.other_versions
        );
    }
    Ok(())
}

fn print_check(report: &crate::grid::immutable::check::CheckReport) {
    for share in &report.shares {
        match &share.health {
            ShareHealth::Good => println!("  share {:>3} on {:<12} good", share.share, share.server),
            ShareHealth::Bad(why) => println!("  share {:>3} on {:<12} BAD: {why}", share.share, share.server),
        }
    }
    let state = if report.is_healthy() {
        "healthy"
    } else if report.is_recoverable() {
        "not healthy but recoverable"
    } else {
        "UNRECOVERABLE"
    };
    println!(
        "{} of {} shares good ({} needed){}: {state}",
        report.good_shares(),
        report.total,
        report.needed,
        if report.verified { ", every block verified" } else { "" }
    );
}
