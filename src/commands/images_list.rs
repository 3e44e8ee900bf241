//! The store commands for multi-platform images (image indexes): their
//! row in `kiln images`, `kiln inspect` of the index or of one platform
//! (`--platform`), and `kiln save` as an oci-archive.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use kiln_store::{archive, Image, ImageList, Store, Stored};
use serde_json::json;

/// One row per name (`<none>` for an unnamed one): the index digest as
/// the ID, the newest entry's creation, the entries' layers' size and the
/// platforms.
pub fn list_rows(lists: &[ImageList]) -> Result<()> {
    for l in lists {
        let size: u64 = l
            .entries
            .iter()
            .flat_map(|(_, i)| i.manifest.layers())
            .map(|d| d.size())
            .sum();
        let created = l
            .entries
            .iter()
            .filter_map(|(_, i)| i.created.clone())
            .max()
            .unwrap_or_default();
        let names = if l.names.is_empty() {
            vec!["<none>".to_string()]
        } else {
            l.names.clone()
        };
        for n in names {
            out!(
                "{:<40} {:<14} {:<22} {:>10} {}",
                n,
                &l.id()[..12],
                created,
                super::images::human(size),
                l.platforms().join(",")
            )?;
        }
    }
    Ok(())
}

/// `kiln inspect [--platform P] NAME`: an index is shown as such (None:
/// printed here), unless `--platform` picks one of its images, which the
/// caller shows as any image.
pub fn inspect(store: &Store, name: &str, platform: Option<&str>) -> Result<Option<Image>> {
    let list = match (store.lookup(name)?, platform) {
        (Stored::Image(i), None) => return Ok(Some(*i)),
        (Stored::Image(i), Some(p)) => {
            let own = format!("{}/{}", i.config.os(), i.config.architecture());
            if own != p.trim_end_matches("/v8") {
                bail!("{name} is a {own} image, not a multi-platform one: it has nothing for {p}");
            }
            return Ok(Some(*i));
        }
        (Stored::List(l), Some(p)) => {
            return l.entry(p).cloned().map(Some).with_context(|| {
                format!(
                    "{name} has no image for {p} (it has {})",
                    l.platforms().join(", ")
                )
            })
        }
        (Stored::List(l), None) => l,
    };
    let manifests: Vec<_> = list
        .entries
        .iter()
        .zip(list.index.manifests())
        .map(|((platform, image), desc)| {
            json!({
                "Platform": platform,
                "Digest": image.manifest_digest.to_string(),
                "Id": format!("sha256:{}", image.id()),
                "Architecture": image.config.architecture().to_string(),
                "Os": image.config.os().to_string(),
                "Annotations": desc.annotations(),
            })
        })
        .collect();
    let out = json!({
        "Id": format!("sha256:{}", list.id()),
        "Digest": list.digest.to_string(),
        "MediaType": "application/vnd.oci.image.index.v1+json",
        "RepoTags": list.names,
        "Annotations": list.index.annotations(),
        "Manifests": manifests,
    });
    out!("{}", serde_json::to_string_pretty(&out)?)?;
    Ok(None)
}

/// `kiln save` of a multi-platform image: an oci-archive holding the
/// index (a docker-archive cannot).
pub fn save(
    store: &Store,
    list: &ImageList,
    name: &str,
    format: &str,
    output: Option<&Path>,
) -> Result<i32> {
    if format != "oci-archive" {
        bail!("{name} is a multi-platform image ({}): a {format} holds one platform; use --format oci-archive", list.platforms().join(", "));
    }
    let names: Vec<String> = match kiln_store::normalize_name(name) {
        Ok(n) if list.names.contains(&n) => vec![n],
        _ => list.names.clone(),
    };
    let output = output.unwrap_or(Path::new("-"));
    if super::stdio::is_stdout(output) {
        super::stdio::refuse_terminal("kiln save")?;
    }
    let mut out = super::stdio::create(output)?;
    archive::export_oci_list_archive(store, list, &names, &mut out)?;
    out.flush()?;
    Ok(0)
}
