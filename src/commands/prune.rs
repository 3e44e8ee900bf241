//! `kiln prune [--all] [--keep-storage SIZE] [--filter until=DURATION]`,
//! with buildx's flag syntax.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use kiln_store::{PruneOptions, Store};

use crate::build::cache_layers;

pub fn run(
    store: &Store,
    all: bool,
    keep_storage: Option<&str>,
    filters: &[String],
) -> Result<i32> {
    let mut opts = PruneOptions {
        all,
        keep_storage: keep_storage
            .map(|s| parse_size(s).with_context(|| format!("--keep-storage {s}")))
            .transpose()?,
        until: None,
    };
    for f in filters {
        match f.split_once('=') {
            Some(("until", d)) => {
                opts.until = Some(parse_duration(d).with_context(|| format!("--filter {f}"))?)
            }
            _ => {
                bail!("--filter {f}: kiln's prune filters by until=DURATION (e.g. until=24h) only")
            }
        }
    }
    let report = store.prune(&opts, &cache_layers)?;
    out!("{report}")?;
    Ok(0)
}

/// `512`, `10k`, `1.5GB`, `200MiB`: binary units, as docker's and
/// buildx's `--keep-storage`.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite())
        .with_context(|| format!("{s:?} is not a size (e.g. 500MB, 2GB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => bail!("{other:?}: the size's unit must be B, KB, MB, GB or TB"),
    };
    Ok((n * (1u64 << shift) as f64) as u64)
}

/// Go's durations, as buildx's `until=`: `24h`, `1h30m`, `90s`, `500ms`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        bail!("an empty duration (e.g. 24h, 30m)");
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .with_context(|| format!("{s:?}: a number needs a unit (h, m, s, ms)"))?;
        let (num, tail) = rest.split_at(split);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let n: f64 = num
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite())
            .with_context(|| format!("{s:?} is not a duration (e.g. 24h, 1h30m)"))?;
        let secs = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            other => bail!("{s:?}: unknown unit {other:?} (use h, m, s or ms)"),
        };
        total += Duration::try_from_secs_f64(n * secs)
            .with_context(|| format!("{s:?}: out of range"))?;
        rest = tail;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("10k").unwrap(), 10 << 10);
        assert_eq!(parse_size("1.5GB").unwrap(), 3 << 29);
        assert_eq!(parse_size("200MiB").unwrap(), 200 << 20);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn durations_are_go_durations() {
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("24").is_err());
        assert!(parse_duration("3d").is_err());
        assert!(parse_duration("").is_err());
    }
}
