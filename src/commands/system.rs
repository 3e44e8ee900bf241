//! `kiln system df [-v]`: the store's disk use, docker's columns, and what
//! each prune would free.

use std::time::SystemTime;

use anyhow::Result;
use kiln_store::{human_size, Store, Usage};

use crate::build::cache_layers;
use crate::cli::SystemCommand;

pub fn run(store: &Store, command: &SystemCommand) -> Result<i32> {
    match command {
        SystemCommand::Df { verbose } => df(store, *verbose),
    }
}

fn df(store: &Store, verbose: bool) -> Result<i32> {
    let u = store.usage(&cache_layers)?;
    out!(
        "{:<16} {:>6} {:>7} {:>10} {:>16}",
        "TYPE",
        "TOTAL",
        "ACTIVE",
        "SIZE",
        "RECLAIMABLE"
    )?;
    let named = u.images.iter().filter(|i| !i.names.is_empty()).count();
    let shared = u.cache.iter().filter(|c| c.shared).count();
    let mounts: u64 = u.cache_mounts.iter().map(|m| m.1).sum();
    let rows = [
        (
            "Images",
            u.images.len(),
            named,
            u.image_bytes,
            u.unnamed_bytes,
        ),
        (
            "Build Cache",
            u.cache.len(),
            shared,
            u.cache_bytes,
            u.cache_reclaimable,
        ),
        ("Cache Mounts", u.cache_mounts.len(), 0, mounts, mounts),
    ];
    for (kind, total, active, size, reclaim) in rows {
        out!(
            "{kind:<16} {total:>6} {active:>7} {:>10} {:>16}",
            human_size(size),
            reclaimable(reclaim, size)
        )?;
    }
    let unref = human_size(u.unreferenced_bytes);
    out!(
        "{:<16} {:>6} {:>7} {unref:>10} {unref:>16}",
        "Unreferenced",
        "",
        ""
    )?;
    out!(
        "\n`kiln prune` frees {} (unreferenced files, build cache no image uses); `kiln prune --all` also frees the unnamed images ({}) and all cache mounts ({})",
        human_size(u.unreferenced_bytes + u.cache_reclaimable),
        human_size(u.unnamed_bytes),
        human_size(mounts)
    )?;
    if verbose {
        verbose_lists(&u)?;
    }
    Ok(0)
}

fn reclaimable(bytes: u64, of: u64) -> String {
    match of {
        0 => human_size(bytes),
        of => format!("{} ({}%)", human_size(bytes), bytes * 100 / of),
    }
}

fn verbose_lists(u: &Usage) -> Result<()> {
    out!("\nImages space usage:\n")?;
    out!(
        "{:<40} {:<14} {:>10} {:>12}",
        "REPOSITORY:TAG",
        "IMAGE ID",
        "SIZE",
        "UNIQUE SIZE"
    )?;
    for i in &u.images {
        let name = i.names.first().map_or("<none>", String::as_str);
        out!(
            "{name:<40} {:<14} {:>10} {:>12}",
            &i.id[..12.min(i.id.len())],
            human_size(i.size),
            human_size(i.unique)
        )?;
    }
    out!("\nBuild cache usage: {}\n", human_size(u.cache_bytes))?;
    out!(
        "{:<14} {:>10} {:<20} SHARED",
        "CACHE ID",
        "SIZE",
        "LAST USED"
    )?;
    let now = SystemTime::now();
    let mut cache: Vec<_> = u.cache.iter().collect();
    cache.sort_by_key(|c| std::cmp::Reverse(c.last_used));
    for c in cache {
        let secs = now.duration_since(c.last_used).map_or(0, |d| d.as_secs());
        out!(
            "{:<14} {:>10} {:<20} {}",
            &c.key[..12.min(c.key.len())],
            human_size(c.size),
            format!("{} ago", since(secs)),
            c.shared
        )?;
    }
    out!("\nCache mounts space usage:\n")?;
    out!("{:<40} {:>10}", "CACHE MOUNT ID", "SIZE")?;
    for (id, size) in &u.cache_mounts {
        out!("{id:<40} {:>10}", human_size(*size))?;
    }
    Ok(())
}

fn since(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
