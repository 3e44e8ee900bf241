//! `kiln build --platform linux/amd64,linux/arm64`: one build per
//! platform over the same store, then one OCI image index over the
//! results, named by the `-t` names and exported as `-o` asks.
//!
//! The platforms are built at once (up to `--jobs` of them, each with its
//! share of the jobs), through the one store handle: a step whose key does
//! not depend on the target (a `FROM --platform=$BUILDPLATFORM` stage's)
//! runs in one build while the others wait for it and take it as a cache
//! hit (`Store::claim_step`), and no build's layers move before all are
//! done (`Store::hold_layers`). See `build_all`.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use kiln_store::{archive, ImageList, Store};

use super::export::{self, Output};
use crate::build::{Progress, ProgressMode};
use crate::cli::BuildArgs;

/// The platforms `--platform` lists (comma-separated, repeatable as
/// buildx's: the repeats arrive joined by commas), each once, in order.
/// Each is normalised (`linux/arm64/v8` and `arm64` are `linux/arm64`).
pub fn platforms(args: &BuildArgs) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for p in args.platform.iter().flat_map(|v| v.split(',')) {
        let p = super::platform::target(Some(p.trim()))?.triple();
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Annotations by level, for a multi-platform build.
#[derive(Default)]
struct Annotations {
    index: BTreeMap<String, String>,
    /// On every manifest (`manifest:`, or none).
    manifest: Vec<String>,
    /// `manifest[PLATFORM]:`.
    manifest_for: Vec<(String, String)>,
    /// On each manifest's descriptor in the index (`manifest-descriptor`).
    descriptor: BTreeMap<String, String>,
    descriptor_for: Vec<(String, String, String)>,
}

/// buildx's `--annotation TYPE[PLATFORM]:KEY=VALUE` levels.
fn annotations(args: &BuildArgs) -> Result<Annotations> {
    let mut out = Annotations::default();
    for a in &args.annotations {
        let (key, value) = a
            .split_once('=')
            .with_context(|| format!("--annotation {a}: expected KEY=VALUE"))?;
        let (level, key) = match key.split_once(':') {
            Some((l, k)) if l.starts_with("manifest") || l.starts_with("index") => (l, k),
            _ => ("manifest", key),
        };
        if key.is_empty() {
            bail!("--annotation {a}: the key is empty");
        }
        let (level, platform) = match level.split_once('[') {
            Some((l, rest)) => {
                let p = rest
                    .strip_suffix(']')
                    .with_context(|| format!("--annotation {a}: expected TYPE[PLATFORM]:KEY"))?;
                (l, Some(p.to_string()))
            }
            None => (level, None),
        };
        let kv = (key.to_string(), value.to_string());
        match (level, platform) {
            ("index", None) => {
                out.index.insert(kv.0, kv.1);
            }
            ("manifest", None) => out.manifest.push(format!("manifest:{key}={value}")),
            ("manifest", Some(p)) => out.manifest_for.push((p, format!("manifest:{key}={value}"))),
            ("manifest-descriptor", None) => {
                out.descriptor.insert(kv.0, kv.1);
            }
            ("manifest-descriptor", Some(p)) => out.descriptor_for.push((p, kv.0, kv.1)),
            ("index-descriptor", None) => bail!(
                "--annotation {a}: index-descriptor annotations are not supported (kiln's OCI exports name the index in index.json)"
            ),
            _ => bail!(
                "--annotation {a}: use index, manifest, manifest[PLATFORM], manifest-descriptor or manifest-descriptor[PLATFORM]"
            ),
        }
    }
    Ok(out)
}

/// The outputs a multi-platform result can go to; the others fail before
/// anything is built, offering what works.
fn check_outputs(outputs: &[Output]) -> Result<()> {
    for o in outputs {
        match o {
            Output::DockerArchive(_) => bail!(
                "a docker archive holds one image per name, not a multi-platform image: \
build one platform (--platform linux/amd64), or export an OCI archive (-o type=oci,dest=FILE)"
            ),
            Output::Tar(_) => bail!(
                "-o type=tar of a multi-platform build is not supported: use -o type=local,dest=DIR (one subdir per platform)"
            ),
            _ => {}
        }
    }
    Ok(())
}

/// Builds every platform `--platform` lists, when it lists more than
/// one; None otherwise (the single-platform build does the work).
pub fn run(args: &BuildArgs, store: &Store) -> Result<Option<i32>> {
    let platforms = platforms(args)?;
    if platforms.len() < 2 {
        if args.platform.as_deref().is_some_and(|p| p.contains(',')) {
            // One platform, listed more than once.
            let mut one = args.clone();
            one.platform = platforms.into_iter().next();
            return super::build::run_one(&one, store, None, None).map(Some);
        }
        return Ok(None);
    }
    if args.check || args.call.is_some() {
        return Ok(None);
    }
    let outputs: Vec<Output> = super::build_flags::outputs(args)
        .iter()
        .map(|o| export::parse_output(o))
        .chain(args.load.then_some(Ok(Output::Load)))
        .collect::<Result<_>>()?;
    check_outputs(&outputs)?;
    let stdout_taken = export::check_stdout(&outputs)?;
    let ann = annotations(args)?;
    // A context or Dockerfile from stdin is read once, for every platform.
    let fetched = super::context::fetch(args, store)?;
    let args = fetched.as_ref().map_or(args, |f| &f.args);
    let _dockerfile_copy;
    let mut base = args.clone();
    if args.file.as_deref().is_some_and(|f| f.as_os_str() == "-") {
        let scratch = store.scratch()?;
        let path = scratch.path().join("Dockerfile");
        std::fs::write(&path, super::dockerfile::read(args)?.text)?;
        base.file = Some(path);
        _dockerfile_copy = scratch;
    }
    let quiet = ProgressMode::parse(&args.progress, args.quiet) == Some(ProgressMode::Quiet);
    let built = match build_all(&base, &platforms, &ann, store, quiet)? {
        Ok(built) => built,
        Err(code) => return Ok(Some(code)),
    };
    let mut images = Vec::new();
    let mut descriptors = Vec::new();
    for (platform, unstored) in platforms.iter().zip(&built) {
        images.push(unstored.store(store)?);
        let mut d = ann.descriptor.clone();
        for (_, k, v) in ann
            .descriptor_for
            .iter()
            .filter(|(p, ..)| same_platform(p, platform))
        {
            d.insert(k.clone(), v.clone());
        }
        descriptors.push(d);
    }
    let names = args
        .tags
        .iter()
        .map(|t| kiln_store::normalize_name(t))
        .collect::<Result<Vec<_>, _>>()?;
    let mode = ProgressMode::parse(&args.progress, args.quiet).context("--progress")?;
    let progress = Progress::new(mode);
    let vertex = progress.start(&format!(
        "exporting a multi-platform image ({})",
        platforms.join(", ")
    ));
    let mut list = store
        .put_list(&images, &ann.index, &descriptors, &names)
        .context("storing the image index")?;
    for name in &names {
        vertex.log(&format!("naming to {name}"));
    }
    if outputs.iter().any(Output::needs_blobs) {
        vertex.log("compressing layers");
        list = store
            .exportable_list(&list, compression(args)?)
            .context("compressing the images' layers")?;
    }
    if outputs.contains(&Output::Load) {
        vertex.log(&format!(
            "--load: podman keeps the image of this host's platform ({}); -o type=oci keeps them all",
            kiln_dockerfile::resolve::Platform::host().triple()
        ));
    }
    for output in &outputs {
        super::export_watch::watch(&vertex, output, || {
            export_list(store, &list, &names, output)
        })?;
    }
    vertex.done();
    push(args, store, &list, &names, &outputs, &progress)?;
    write_results(args, &list, &names)?;
    if mode == ProgressMode::Quiet {
        if !stdout_taken {
            out!("sha256:{}", list.id())?;
        }
    } else {
        progress.result(list.id(), &names);
        progress.finish();
    }
    Ok(Some(0))
}

/// A platform's built image config, stored once every platform's build
/// is over: until then its layers are pending, and nothing may name them.
pub struct Unstored {
    pub config: Vec<u8>,
    pub compression: kiln_layer::Compression,
    pub annotations: BTreeMap<String, String>,
}

impl Unstored {
    fn store(&self, store: &Store) -> Result<kiln_store::Image> {
        let image = store
            .put_built_image(&self.config, self.compression, &[])
            .context("storing the image")?;
        store
            .annotate(&image, &self.annotations)
            .context("annotating the image")
    }
}

/// Builds the platforms at once through the one store handle, as many at
/// a time as `--jobs` allows, each with its share of the jobs: a step
/// their builds share (a `$BUILDPLATFORM` stage) runs in one of them, the
/// others waiting for it (`Store::claim_step`). The builds' layers stay
/// pending until all are over (`Store::hold_layers`: one may have
/// another's mounted), then are published before any image names them.
/// The first failed platform's exit code, if any.
fn build_all(
    base: &BuildArgs,
    platforms: &[String],
    ann: &Annotations,
    store: &Store,
    quiet: bool,
) -> Result<Result<Vec<Unstored>, i32>> {
    let jobs = match base.jobs {
        Some(0) => bail!("--jobs must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let at_once = jobs.min(platforms.len());
    let args_for = |platform: &String| {
        let mut one = base.clone();
        one.platform = Some(platform.clone());
        one.tags.clear();
        one.outputs.clear();
        (one.push, one.load, one.iidfile, one.metadata_file) = (false, false, None, None);
        one.jobs = Some((jobs / at_once).max(1));
        // Two live terminal displays would overwrite each other.
        if at_once > 1 && ProgressMode::parse(&one.progress, one.quiet) == Some(ProgressMode::Tty) {
            one.progress = "plain".into();
        }
        one.annotations = ann.manifest.clone();
        one.annotations.extend(
            ann.manifest_for
                .iter()
                .filter(|(p, _)| same_platform(p, platform))
                .map(|(_, a)| a.clone()),
        );
        one
    };
    let hold = store.hold_layers();
    let siblings = std::sync::Arc::new(crate::build::Siblings::default());
    let mut results = Vec::new();
    for (group, chunk) in platforms.chunks(at_once).enumerate() {
        let done: Vec<Result<(i32, Option<Unstored>)>> = std::thread::scope(|s| {
            let threads: Vec<_> = chunk
                .iter()
                .enumerate()
                .map(|(i, platform)| {
                    if !quiet {
                        let n = group * at_once + i + 1;
                        say!("building for {platform} ({n}/{})", platforms.len());
                    }
                    let one = args_for(platform);
                    let siblings = Some(siblings.clone());
                    s.spawn(move || {
                        let mut built = None;
                        let code = super::build::run_one(&one, store, Some(&mut built), siblings)?;
                        Ok((code, built))
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a platform's build panicked")))
                })
                .collect()
        });
        results.extend(done);
        if results.iter().any(|r| !matches!(r, Ok((0, Some(_))))) {
            break;
        }
    }
    // Failed or not, the finished steps' layers are kept (and cached).
    drop(hold);
    store
        .publish_layers()
        .context("storing the build's layers")?;
    let mut built = Vec::new();
    for r in results {
        match r? {
            (0, Some(u)) => built.push(u),
            (code, _) => return Ok(Err(if code == 0 { 1 } else { code })),
        }
    }
    Ok(Ok(built))
}

fn compression(args: &BuildArgs) -> Result<kiln_layer::Compression> {
    match args.compression.as_str() {
        "gzip" => Ok(kiln_layer::Compression::Gzip),
        "zstd" => Ok(kiln_layer::Compression::Zstd),
        other => bail!("--compression={other}: use gzip or zstd"),
    }
}

/// `linux/arm64` and `linux/arm64/v8` are one platform.
fn same_platform(a: &str, b: &str) -> bool {
    a.trim_end_matches("/v8") == b.trim_end_matches("/v8")
}

/// One file output of a list: an OCI layout holding the index, or the
/// rootfs of each platform in a subdir named after it (BuildKit's
/// `linux_amd64/`).
fn export_list(store: &Store, list: &ImageList, names: &[String], output: &Output) -> Result<()> {
    match output {
        Output::OciArchive(p) => {
            let mut f = super::stdio::create(p)?;
            archive::export_oci_list_archive(store, list, names, &mut f)?;
            std::io::Write::flush(&mut f)?;
        }
        Output::OciDir(p) => archive::export_oci_list_dir(store, list, names, p)?,
        Output::Local(dir) => {
            for (platform, image) in &list.entries {
                let sub = dir.join(platform.replace('/', "_"));
                // A rootfs output writes no blob: the compression is unused.
                let unused = kiln_store::Compression::Gzip;
                export::export(store, image, &[], &Output::Local(sub), unused)?;
            }
        }
        // podman load takes the OCI archive and keeps the image of the
        // host's platform (containers/image picks it from the index): the
        // one a user can run here.
        Output::Load => {
            let mut f = super::load::sink()?;
            archive::export_oci_list_archive(store, list, names, &mut f)?;
            std::io::Write::flush(&mut f).context("streaming the image to podman load")?;
        }
        Output::Push(_) | Output::Store => {}
        Output::DockerArchive(_) | Output::Tar(_) => {
            unreachable!("refused before the build")
        }
    }
    Ok(())
}

/// `-o type=registry` / `--push`: each entry, then the index, under each
/// destination.
fn push(
    args: &BuildArgs,
    store: &Store,
    list: &ImageList,
    names: &[String],
    outputs: &[Output],
    progress: &Progress,
) -> Result<()> {
    super::build::push_each(args, names, outputs, progress, |registry, dest, vertex| {
        registry.push_list(store, list, dest, vertex)
    })
}

/// `--iidfile` (the index digest, as buildx writes for a multi-platform
/// build) and `--metadata-file`.
fn write_results(args: &BuildArgs, list: &ImageList, names: &[String]) -> Result<()> {
    if let Some(path) = &args.iidfile {
        std::fs::write(path, list.digest.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.metadata_file {
        let meta = serde_json::json!({
            "containerimage.digest": list.digest.to_string(),
            "image.name": names.join(","),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&meta)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(argv: &[&str]) -> BuildArgs {
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Build(b) => *b,
            _ => unreachable!(),
        }
    }

    #[test]
    fn annotation_levels() {
        let a = args(&[
            "kiln",
            "build",
            "--annotation",
            "index:org.a=1",
            "--annotation",
            "manifest[linux/arm64]:org.b=2",
            "--annotation",
            "org.c=3",
            "--annotation",
            "manifest-descriptor[linux/amd64]:org.d=4",
            ".",
        ]);
        let ann = annotations(&a).unwrap();
        assert_eq!(ann.index.get("org.a").map(String::as_str), Some("1"));
        assert_eq!(
            ann.manifest_for,
            vec![("linux/arm64".to_string(), "manifest:org.b=2".to_string())]
        );
        assert_eq!(ann.manifest, vec!["manifest:org.c=3".to_string()]);
        assert_eq!(ann.descriptor_for.len(), 1);
        let bad = args(&["kiln", "build", "--annotation", "index-descriptor:k=v", "."]);
        assert!(annotations(&bad).is_err());
    }

    #[test]
    fn platform_lists() {
        let a = args(&[
            "kiln",
            "build",
            "--platform",
            "linux/amd64, linux/arm64,linux/amd64",
            ".",
        ]);
        assert_eq!(platforms(&a).unwrap(), ["linux/amd64", "linux/arm64"]);
        let b = args(&["kiln", "build", "--platform", "arm64,linux/arm64/v8", "."]);
        assert_eq!(platforms(&b).unwrap(), ["linux/arm64"]);
    }
}
