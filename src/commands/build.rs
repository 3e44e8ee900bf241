//! `kiln build`: resolve the Dockerfile, run the build engine, then store
//! and export the image as `-t`, `-o`, `--iidfile` ask.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use kiln_dockerfile::check::{lint, warnings_before, CheckConfig};
use kiln_dockerfile::{parse_dockerfile, render, resolve, Options};
use kiln_layer::Compression;
use kiln_store::Store;

use super::{dockerfile, export};
use crate::build::{self, NamedContext, Progress, ProgressMode, PullPolicy, Request};
use crate::cli::BuildArgs;

/// What the flags say, checked before anything runs.
struct Settings {
    outputs: Vec<export::Output>,
    network: kiln_sandbox::Network,
    security: build::Security,
    mode: ProgressMode,
    compression: Compression,
    jobs: usize,
    contexts: std::collections::BTreeMap<String, NamedContext>,
    pull: PullPolicy,
    /// An output writes its archive to stdout.
    stdout_taken: bool,
}

fn settings(args: &BuildArgs) -> Result<Settings> {
    let network = match args.network.as_str() {
        "default" | "private" => kiln_sandbox::Network::Private,
        "host" => kiln_sandbox::Network::Host,
        "none" => kiln_sandbox::Network::None,
        other => bail!("--network={other}: use default, host or none"),
    };
    let mode = ProgressMode::parse(&args.progress, args.quiet).with_context(|| {
        format!(
            "--progress={}: use auto, plain, tty or quiet",
            args.progress
        )
    })?;
    let pull = match args.pull.as_str() {
        "missing" | "false" => PullPolicy::Missing,
        "always" | "true" => PullPolicy::Always,
        "never" => PullPolicy::Never,
        other => bail!("--pull={other}: use always, missing or never"),
    };
    let compression = match args.compression.as_str() {
        "gzip" => Compression::Gzip,
        "zstd" => Compression::Zstd,
        other => bail!("--compression={other}: use gzip or zstd"),
    };
    let jobs = match args.jobs {
        Some(0) => bail!("--jobs must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let contexts = args
        .build_contexts
        .iter()
        .map(|c| {
            let (name, value) = c
                .split_once('=')
                .with_context(|| format!("--build-context {c}: expected NAME=VALUE"))?;
            Ok((name.to_string(), NamedContext::parse(value)?))
        })
        .collect::<Result<_>>()?;
    let mut outputs: Vec<_> = super::build_flags::outputs(args)
        .iter()
        .map(|o| export::parse_output(o))
        .collect::<Result<_>>()?;
    if args.load {
        outputs.push(export::Output::Load);
    }
    let stdout_taken = export::check_stdout(&outputs)?;
    Ok(Settings {
        outputs,
        network,
        security: build::Security::parse(&args.security_opts)?,
        mode,
        compression,
        jobs,
        contexts,
        pull,
        stdout_taken,
    })
}

/// SOURCE_DATE_EPOCH from the build arg (the environment's when none is
/// given, see `run`) or the Dockerfile's global ARG default.
fn source_date_epoch(inputs: &kiln_dockerfile::resolve::Inputs) -> Result<Option<u64>> {
    inputs
        .source_date_epoch()
        .map(|e| {
            e.trim()
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH={e}: not a number of seconds"))
        })
        .transpose()
}

pub fn run(args: &BuildArgs, store: &Store) -> Result<i32> {
    if let Some(code) = super::multiplat::run(args, store)? {
        return Ok(code);
    }
    run_one(args, store, None, None)
}

/// One platform's build; with `built`, the image is stored unnamed and
/// handed back there instead of being named and exported (a
/// multi-platform build's entry), and the first of `siblings` to fail
/// stops the others.
pub fn run_one(
    args: &BuildArgs,
    store: &Store,
    built_image: Option<&mut Option<super::multiplat::Unstored>>,
    siblings: Option<std::sync::Arc<build::Siblings>>,
) -> Result<i32> {
    // `-` or a URL: fetched into a directory, which the build then uses.
    let fetched = super::context::fetch(args, store)?;
    let args = fetched.as_ref().map_or(args, |f| &f.args);
    let source = dockerfile::read(args)?;
    let mut build_args = dockerfile::build_args(&args.build_args)?;
    // As buildx and buildctl do: a non-empty SOURCE_DATE_EPOCH in the
    // environment is the build arg when none is given (a RUN sees it after
    // its ARG); `--build-arg SOURCE_DATE_EPOCH=` wins over it.
    if let Some(epoch) = std::env::var(resolve::EPOCH_ARG)
        .ok()
        .filter(|e| !e.is_empty())
    {
        build_args.entry(resolve::EPOCH_ARG.into()).or_insert(epoch);
    }
    let mut opts = Options {
        build_args: build_args.clone(),
        target: args.target.clone(),
        platform: super::platform::target(args.platform.as_deref())?,
        ..Options::default()
    };
    let settings = settings(args)?;
    let (annotations, flags) = (
        super::build_flags::annotations(args)?,
        super::build_flags::run_flags(args)?,
    );
    opts.replaced = settings
        .contexts
        .keys()
        .map(|name| name.to_ascii_lowercase())
        .collect();
    let parsed = parse_dockerfile(&source.text).and_then(|file| {
        let config = CheckConfig::for_build(&file, &opts.build_args)?;
        Ok((resolve(file, &opts)?, config))
    });
    let (graph, config) = match parsed {
        Ok(g) => g,
        Err(err) => {
            for w in warnings_before(&source.text, &err, &opts.build_args) {
                say!(
                    "WARN: {} - {} ({}:{})",
                    w.rule,
                    w.message,
                    source.name,
                    w.span
                );
            }
            let _ = write!(
                std::io::stderr(),
                "{}",
                render(&source.name, &source.text, &err)
            );
            return Ok(1);
        }
    };
    // One platform of several (multiplat): its steps are labelled with it.
    let platform = args.platform.as_deref().filter(|_| built_image.is_some());
    let progress = Progress::for_platform(settings.mode, platform);
    progress.plan_graph(&graph, super::build_flags::pushes(args, &settings.outputs));
    let dockerfile_path = args.file.as_deref().filter(|f| f.as_os_str() != "-");
    let ignored = crate::build::Ignore::load(&args.context, dockerfile_path)?
        .copied_but_ignored(&graph.context_sources);
    let file_lints = lint(&graph.file);
    let mut warnings: Vec<_> = file_lints
        .iter()
        .chain(&graph.warnings)
        .chain(&ignored)
        .collect();
    warnings.retain(|w| config.keeps(w));
    warnings.sort_by_key(|w| w.span.start);
    for w in &warnings {
        let line = format!(
            "WARN: {} - {} ({}:{})",
            w.rule, w.message, source.name, w.span
        );
        // Each platform of a list lints again.
        if super::lint_once::first(&line) {
            progress.note(&line);
        }
    }
    if config.error && !warnings.is_empty() {
        // As BuildKit: `error=true` stops the build before it runs.
        super::check::say_lint_violation(warnings.iter().map(|w| w.rule));
        return Ok(1);
    }
    let epoch = source_date_epoch(&graph.inputs)?;
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let created = build::rfc3339(now());
    let req = Request {
        file: source.name.clone(),
        text: source.text.clone(),
        context: args.context.clone(),
        platform: opts.platform.clone(),
        graph,
        network: settings.network,
        isolation: super::isolation::of(args)?,
        security: settings.security.clone(),
        created,
        no_cache: args.no_cache,
        explain_cache: args.explain_cache,
        epoch: epoch.map(|e| e as i64),
        dockerfile_path: source.path.clone(),
        contexts: settings.contexts.clone(),
        secrets: build::Secrets::parse(&args.secrets)?,
        pull: settings.pull,
        registry: kiln_registry::Options {
            insecure: args.registry.insecure_registries.clone(),
            auth_file: args.registry.authfile.clone(),
            ..kiln_registry::Options::default()
        },
        flags,
        cache: build::CacheOptions::parse(&args.cache_from, &args.cache_to, settings.compression)?,
        siblings,
    };
    super::build_flags::warn_unknown_stages(&req.flags, &req.graph, &progress);
    let mut built = match build::build(store, &req, &progress, settings.jobs) {
        Ok(b) => b,
        Err(e) => {
            progress.finish();
            say!("error: {e:#}");
            return Ok(1);
        }
    };
    for label in &args.labels {
        let (k, v) = label.split_once('=').unwrap_or((label.as_str(), ""));
        let labels = built
            .config
            .config
            .labels
            .get_or_insert_with(Default::default);
        labels.insert(k.to_string(), v.to_string());
    }
    if let Some(slot) = built_image {
        // Stored once every platform's build is over and its layers are
        // published (see multiplat).
        *slot = Some(super::multiplat::Unstored {
            config: built.config.to_json(),
            compression: settings.compression,
            annotations,
        });
        progress.finish();
        return Ok(0);
    }
    let names = args
        .tags
        .iter()
        .map(|t| kiln_store::normalize_name(t))
        .collect::<Result<Vec<_>, _>>()?;
    let vertex = progress.start("exporting to image");
    // Stored uncompressed: only the outputs that carry layer blobs pay
    // for compressing them.
    let mut image = store
        .put_built_image(&built.config.to_json(), settings.compression, &names)
        .context("storing the image")?;
    image = store
        .annotate(&image, &annotations)
        .context("annotating the image")?;
    for name in &names {
        vertex.log(&format!("naming to {name}"));
    }
    if settings.outputs.iter().any(export::Output::needs_blobs) {
        vertex.log("compressing layers");
        image = store
            .exportable(&image, settings.compression)
            .context("compressing the image's layers")?;
    }
    for output in &settings.outputs {
        super::export_watch::watch(&vertex, output, || {
            export::export(store, &image, &names, output, settings.compression)
        })?;
    }
    vertex.done();
    push(args, store, &image, &names, &settings.outputs, &progress)?;
    write_results(args, &image, &names)?;
    if settings.mode == ProgressMode::Quiet {
        if !settings.stdout_taken {
            out!("sha256:{}", image.id())?;
        }
    } else {
        progress.result(image.id(), &names);
        progress.finish();
    }
    Ok(0)
}

/// `-o type=registry` (or `type=image,push=true`): the image pushed as
/// the output's `name=`, or as every `-t` name.
fn push(
    args: &BuildArgs,
    store: &Store,
    image: &kiln_store::Image,
    names: &[String],
    outputs: &[export::Output],
    progress: &Progress,
) -> Result<()> {
    push_each(args, names, outputs, progress, |registry, dest, vertex| {
        registry.push(store, image, dest, vertex)
    })
}

/// Pushes with `push_one` to each `-o type=registry` destination (its
/// `name=`, else every `-t` name), one progress step each; a single- and
/// a multi-platform build differ only in what they push.
pub(super) fn push_each(
    args: &BuildArgs,
    names: &[String],
    outputs: &[export::Output],
    progress: &Progress,
    push_one: impl Fn(&kiln_registry::Registry, &str, &build::Vertex) -> kiln_registry::Result<String>,
) -> Result<()> {
    let mut dests = Vec::new();
    for output in outputs {
        if let export::Output::Push(name) = output {
            match name {
                Some(n) => dests.push(n.clone()),
                None if names.is_empty() => {
                    bail!("-o type=registry: name the image with -t (or name= in -o)")
                }
                None => dests.extend(names.iter().cloned()),
            }
        }
    }
    if dests.is_empty() {
        return Ok(());
    }
    let registry = super::registry::client(&args.registry, None)?;
    for dest in dests {
        let vertex = progress.start(&format!("pushing {dest}"));
        match push_one(&registry, &dest, &vertex) {
            Ok(_) => vertex.done(),
            Err(e) => {
                vertex.error(&e.to_string());
                progress.finish();
                return Err(anyhow::anyhow!(e).context(format!("pushing {dest}")));
            }
        }
    }
    Ok(())
}

/// `--iidfile` and `--metadata-file`.
fn write_results(args: &BuildArgs, image: &kiln_store::Image, names: &[String]) -> Result<()> {
    if let Some(path) = &args.iidfile {
        std::fs::write(path, format!("sha256:{}", image.id()))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.metadata_file {
        let meta = serde_json::json!({
            "containerimage.config.digest": image.config_digest.to_string(),
            "containerimage.digest": image.manifest_digest.to_string(),
            "image.name": names.join(","),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&meta)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
