//! The store commands: `images`, `rmi`, `inspect`, `prune`, `save`, `load`.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use kiln_store::{archive, Store};
use serde_json::json;

use crate::image_config::ImageConfig;

pub fn list(store: &Store, quiet: bool) -> Result<i32> {
    let images = store.images()?;
    let lists = store.lists()?;
    if quiet {
        for i in &images {
            out!("{}", &i.id()[..12])?;
        }
        for l in &lists {
            out!("{}", &l.id()[..12])?;
        }
        return Ok(0);
    }
    out!(
        "{:<40} {:<14} {:<22} {:>10}",
        "REPOSITORY:TAG",
        "IMAGE ID",
        "CREATED",
        "SIZE"
    )?;
    for i in &images {
        let size: i64 = i.manifest.layers().iter().map(|l| l.size() as i64).sum();
        let created = i.created.clone().unwrap_or_default();
        // `repo@digest` names (what a pull records) are for lookups;
        // shown only when an image has no other name.
        let tagged: Vec<String> = i
            .names
            .iter()
            .filter(|n| !n.contains('@'))
            .cloned()
            .collect();
        let names = match (tagged.is_empty(), i.names.is_empty()) {
            (_, true) => vec!["<none>".to_string()],
            (true, false) => i.names.clone(),
            (false, false) => tagged,
        };
        for n in names {
            out!(
                "{:<40} {:<14} {:<22} {:>10}",
                n,
                &i.id()[..12],
                created,
                human(size as u64)
            )?;
        }
    }
    super::images_list::list_rows(&lists)?;
    Ok(0)
}

pub(crate) fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.2} GB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.2} MB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.2} kB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

pub fn remove(store: &Store, names: &[String]) -> Result<i32> {
    let mut code = 0;
    for name in names {
        match store.remove_image(name) {
            Ok(removed) => {
                for r in removed {
                    out!("Untagged: {r}")?;
                }
            }
            Err(e) => {
                say!("error: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub fn inspect(store: &Store, name: &str, platform: Option<&str>) -> Result<i32> {
    let image = match super::images_list::inspect(store, name, platform)? {
        Some(image) => image,
        None => return Ok(0),
    };
    let config = ImageConfig::from_json(&store.read_blob(&image.config_digest)?)?;
    let out = json!({
        "Id": format!("sha256:{}", image.id()),
        "Digest": image.manifest_digest.to_string(),
        "RepoTags": image.names,
        "Created": config.created,
        "Architecture": config.architecture,
        "Os": config.os,
        "Config": config.config,
        "RootFS": config.rootfs,
        "Layers": image.manifest.layers().iter().map(|l| l.digest().to_string()).collect::<Vec<_>>(),
        "History": config.history,
    });
    out!("{}", serde_json::to_string_pretty(&out)?)?;
    Ok(0)
}

/// `kiln tag SOURCE TARGET…`: every target names the source's image.
pub fn tag(store: &Store, source: &str, targets: &[String]) -> Result<i32> {
    if let kiln_store::Stored::List(list) = store.lookup(source)? {
        for t in targets {
            store
                .tag_list(&list, t)
                .with_context(|| format!("tagging {source} as {t}"))?;
        }
        return Ok(0);
    }
    let image = store.image(source)?;
    for t in targets {
        store
            .tag(&image, t)
            .with_context(|| format!("tagging {source} as {t}"))?;
    }
    Ok(0)
}

/// `output` None or `-`: standard output, as `docker save`.
pub fn save(store: &Store, name: &str, format: &str, output: Option<&Path>) -> Result<i32> {
    if let kiln_store::Stored::List(list) = store.lookup(name)? {
        return super::images_list::save(store, &list, name, format, output);
    }
    let image = store.image(name)?;
    let names: Vec<String> = match kiln_store::normalize_name(name) {
        Ok(n) if image.names.contains(&n) => vec![n],
        _ => image.names.clone(),
    };
    let output = output.unwrap_or(Path::new("-"));
    if super::stdio::is_stdout(output) {
        super::stdio::refuse_terminal("kiln save")?;
    }
    let mut out = super::stdio::create(output)?;
    match format {
        "docker-archive" => archive::export_docker_archive(store, &image, &names, &mut out)?,
        "oci-archive" => archive::export_oci_archive(store, &image, &names, &mut out)?,
        other => bail!("--format {other}: use docker-archive or oci-archive"),
    }
    out.flush()?;
    Ok(0)
}

pub fn load(store: &Store, input: &Path) -> Result<i32> {
    let loaded = archive::load_archive(store, input)
        .with_context(|| format!("loading {}", input.display()))?;
    for stored in loaded {
        let (id, names) = match &stored {
            kiln_store::Stored::Image(i) => (i.id(), &i.names),
            kiln_store::Stored::List(l) => (l.id(), &l.names),
        };
        if names.is_empty() {
            out!("Loaded image: sha256:{id}")?;
        }
        for n in names {
            out!("Loaded image: {n}")?;
        }
    }
    Ok(0)
}
