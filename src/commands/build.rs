//! `kiln build`: resolve the Dockerfile, run the build engine, then store
//! and export the image as `-t`, `-o`, `--iidfile` ask.

use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use kiln_dockerfile::{parse_dockerfile, render, resolve, Options};
use kiln_layer::Compression;
use kiln_store::{archive, Image, Store};

use super::dockerfile;
use crate::build::{self, Progress, Request};
use crate::cli::BuildArgs;

/// One `-o` destination.
#[derive(Debug, PartialEq)]
enum Output {
    DockerArchive(PathBuf),
    OciArchive(PathBuf),
    OciDir(PathBuf),
}

pub fn run(args: &BuildArgs, store: &Store) -> Result<i32> {
    let source = dockerfile::read(args)?;
    let build_args = dockerfile::build_args(&args.build_args)?;
    let opts = Options {
        build_args: build_args.clone(),
        target: args.target.clone(),
        ..Options::default()
    };
    let outputs = args
        .outputs
        .iter()
        .map(|o| parse_output(o))
        .collect::<Result<Vec<_>>>()?;
    let network = match args.network.as_str() {
        "host" | "default" => kiln_sandbox::Network::Host,
        "none" => kiln_sandbox::Network::None,
        other => bail!("--network={other}: use host or none"),
    };
    let graph = match parse_dockerfile(&source.text).and_then(|file| resolve(file, &opts)) {
        Ok(g) => g,
        Err(err) => {
            eprint!("{}", render(&source.name, &source.text, &err));
            return Ok(1);
        }
    };
    let progress = Progress::new(args.quiet);
    for w in &graph.warnings {
        progress.note(&format!(
            "WARN: {} - {} ({}:{})",
            w.rule, w.message, source.name, w.span
        ));
    }
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .or_else(|| build_args.get("SOURCE_DATE_EPOCH").cloned());
    let created = match epoch {
        Some(e) => rfc3339(
            e.trim()
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH={e}: not a number of seconds"))?,
        ),
        None => rfc3339(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        ),
    };
    let req = Request {
        file: source.name.clone(),
        text: source.text.clone(),
        context: args.context.clone(),
        graph,
        network,
        created: created.clone(),
        no_cache: args.no_cache,
    };
    let _lock = store.build_lock()?;
    let mut built = match build::build(store, &req, &progress) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(1);
        }
    };
    built.config.created = Some(created);
    let names = args
        .tags
        .iter()
        .map(|t| kiln_store::normalize_name(t))
        .collect::<Result<Vec<_>, _>>()?;
    let vertex = progress.start("exporting to image");
    let image = store
        .put_image_config(&built.config.to_json(), Compression::Gzip, &names)
        .context("storing the image")?;
    for name in &names {
        vertex.log(&format!("naming to {name}"));
    }
    for output in &outputs {
        export(store, &image, &names, output)?;
    }
    vertex.done();
    let id = format!("sha256:{}", image.id());
    if let Some(path) = &args.iidfile {
        std::fs::write(path, &id).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.quiet {
        println!("{id}");
    } else {
        progress.note(&format!("Successfully built {}", &image.id()[..12]));
    }
    Ok(0)
}

fn export(store: &Store, image: &Image, names: &[String], output: &Output) -> Result<()> {
    let file = |p: &PathBuf| -> Result<std::io::BufWriter<std::fs::File>> {
        Ok(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?,
        ))
    };
    match output {
        Output::DockerArchive(p) => {
            let mut f = file(p)?;
            archive::export_docker_archive(store, image, names, &mut f)?;
            f.flush()?;
        }
        Output::OciArchive(p) => {
            let mut f = file(p)?;
            archive::export_oci_archive(store, image, names, &mut f)?;
            f.flush()?;
        }
        Output::OciDir(p) => archive::export_oci_dir(store, image, names, p)?,
    }
    Ok(())
}

/// buildx's `-o` syntax: `type=docker,dest=FILE`, `type=oci,dest=FILE`,
/// `type=oci,dest=DIR,tar=false`.
fn parse_output(spec: &str) -> Result<Output> {
    let mut kind = None;
    let mut dest = None;
    let mut tar = true;
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("type", v)) => kind = Some(v.to_string()),
            Some(("dest", v)) => dest = Some(PathBuf::from(v)),
            Some(("tar", v)) => tar = v != "false",
            Some((k, _)) => bail!("-o {spec}: unknown field {k:?}"),
            None if kind.is_none() && !spec.contains(',') => bail!(
                "-o {spec}: exporting the rootfs to a directory is not supported yet; use type=docker|oci,dest=PATH"
            ),
            None => bail!("-o {spec}: expected KEY=VALUE fields"),
        }
    }
    let dest = dest.with_context(|| format!("-o {spec}: dest= is required"))?;
    match (kind.as_deref(), tar) {
        (Some("docker"), _) => Ok(Output::DockerArchive(dest)),
        (Some("oci"), true) => Ok(Output::OciArchive(dest)),
        (Some("oci"), false) => Ok(Output::OciDir(dest)),
        (Some(k @ ("local" | "tar" | "registry" | "image")), _) => {
            bail!("-o type={k} is not supported yet; use type=docker or type=oci")
        }
        (other, _) => bail!("-o {spec}: unknown type {other:?} (docker, oci)"),
    }
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn outputs() {
        assert_eq!(
            parse_output("type=docker,dest=a.tar").unwrap(),
            Output::DockerArchive("a.tar".into())
        );
        assert_eq!(
            parse_output("type=oci,dest=d,tar=false").unwrap(),
            Output::OciDir("d".into())
        );
        assert!(parse_output("type=oci").is_err());
        assert!(parse_output("type=bogus,dest=x").is_err());
    }
}
