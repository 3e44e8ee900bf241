//! `kiln history IMAGE`: docker's columns (IMAGE, CREATED, CREATED BY,
//! SIZE, COMMENT), newest step first; `--no-trunc`, `--format json`.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use kiln_store::Store;
use serde_json::json;

use super::images::human;
use crate::cli::HistoryArgs;
use crate::image_config::ImageConfig;

/// One history step, with the size of the layer it made (0 for none).
struct Row {
    id: String,
    created: Option<String>,
    created_by: String,
    size: u64,
    comment: String,
}

pub fn run(store: &Store, args: &HistoryArgs) -> Result<i32> {
    if !matches!(args.format.as_str(), "table" | "json") {
        bail!("--format {}: use table or json", args.format);
    }
    let image = store.image(&args.image)?;
    let config = ImageConfig::from_json(&store.read_blob(&image.config_digest)?)?;
    let mut sizes = image.manifest.layers().iter().map(|l| l.size());
    let mut rows: Vec<Row> = config
        .history
        .iter()
        .map(|h| Row {
            id: "<missing>".into(),
            created: h.created.clone(),
            created_by: h.created_by.clone().unwrap_or_default(),
            size: if h.empty_layer {
                0
            } else {
                sizes.next().unwrap_or(0)
            },
            comment: h.comment.clone().unwrap_or_default(),
        })
        .collect();
    rows.reverse();
    // As docker: the image's ID on its newest step, `<missing>` below
    // (the steps are not images of their own).
    let id = format!("sha256:{}", image.id());
    match rows.first_mut() {
        Some(top) => top.id = id,
        None => rows.push(Row {
            id,
            created: config.created.clone(),
            created_by: String::new(),
            size: 0,
            comment: String::new(),
        }),
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if args.format == "json" {
        for r in &rows {
            let since = r.created.as_deref().and_then(unix_time);
            let line = json!({
                "ID": r.id,
                "CreatedAt": r.created.clone().unwrap_or_default(),
                "CreatedSince": since.map_or_else(|| "N/A".into(), |t| ago(now - t)),
                "CreatedBy": r.created_by,
                "Size": human(r.size),
                "SizeBytes": r.size,
                "Comment": r.comment,
            });
            out!("{line}")?;
        }
        return Ok(0);
    }
    out!(
        "{:<14} {:<18} {:<45} {:<10} COMMENT",
        "IMAGE",
        "CREATED",
        "CREATED BY",
        "SIZE"
    )?;
    for r in &rows {
        let created = r
            .created
            .as_deref()
            .and_then(unix_time)
            .map_or_else(|| "N/A".into(), |t| ago(now - t));
        let (id, by) = if args.no_trunc {
            (r.id.clone(), r.created_by.clone())
        } else {
            (short_id(&r.id), truncate(&r.created_by, 45))
        };
        out!(
            "{id:<14} {created:<18} {by:<45} {:<10} {}",
            human(r.size),
            r.comment
        )?;
    }
    Ok(0)
}

fn short_id(id: &str) -> String {
    id.strip_prefix("sha256:")
        .map_or_else(|| id.to_string(), |h| h[..12.min(h.len())].to_string())
}

/// At most `max` characters, the last one `…` when cut (as docker).
fn truncate(s: &str, max: usize) -> String {
    let s = s.replace(['\n', '\t'], " ");
    if s.chars().count() <= max {
        return s;
    }
    let mut cut: String = s.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// `N units ago`, docker's wording.
fn ago(secs: i64) -> String {
    let s = secs.max(0);
    let text = match s {
        0 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".to_string(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".to_string(),
        s if s < 2 * 86400 => format!("{} hours", s / 3600),
        s if s < 14 * 86400 => format!("{} days", s / 86400),
        s if s < 60 * 86400 => format!("{} weeks", s / (7 * 86400)),
        s if s < 2 * 365 * 86400 => format!("{} months", s / (30 * 86400)),
        s => format!("{} years", s / (365 * 86400)),
    };
    format!("{text} ago")
}

/// Seconds since the epoch of an RFC 3339 time (`2024-05-01T10:00:00Z`,
/// with optional fraction and offset); None when it is not one.
fn unix_time(t: &str) -> Option<i64> {
    let num = |s: &str| -> Option<i64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let (y, mo, d) = (num(t.get(0..4)?)?, num(t.get(5..7)?)?, num(t.get(8..10)?)?);
    let (h, mi, s) = (
        num(t.get(11..13)?)?,
        num(t.get(14..16)?)?,
        num(t.get(17..19)?)?,
    );
    let rest = t.get(19..)?;
    let rest = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match rest {
        "Z" | "z" | "" => 0,
        o if o.len() == 6 => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (num(o.get(1..3)?)? * 3600 + num(o.get(4..6)?)? * 60)
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86400 + h * 3600 + mi * 60 + s - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(unix_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            unix_time("2024-02-29T12:00:00.5+02:00"),
            Some(1_709_200_800)
        );
        assert_eq!(unix_time("yesterday"), None);
    }

    #[test]
    fn long_commands_are_cut_with_an_ellipsis() {
        assert_eq!(truncate("short", 45), "short");
        let cut = truncate(&"x".repeat(60), 45);
        assert_eq!(cut.chars().count(), 45);
        assert!(cut.ends_with('…'));
    }
}
