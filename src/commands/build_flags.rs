//! The `kiln build` flags copied from docker/buildx CI snippets that map
//! onto other settings: `--push`, `--call`, `--annotation`, and the RUN
//! flags (`build::RunFlags`).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use crate::build::{Progress, RunFlagArgs, RunFlags};
use crate::cli::BuildArgs;

/// `--call=check` is `--check`; `--call=build` (or none) builds.
pub fn call_is_check(args: &BuildArgs) -> Result<bool> {
    match args.call.as_deref() {
        None | Some("build") => Ok(false),
        Some("check") => Ok(true),
        Some(other) => {
            bail!("--call={other}: kiln knows build and check (outline and targets are not supported)")
        }
    }
}

/// `-o` values, with `--push` as buildx reads it: `-o type=registry`.
pub fn outputs(args: &BuildArgs) -> Vec<String> {
    let mut outputs = args.outputs.clone();
    if args.push
        && !outputs
            .iter()
            .any(|o| o.contains("type=registry") || o.contains("push=true"))
    {
        outputs.push("type=registry".into());
    }
    outputs
}

/// How many pushes the outputs make (a step each in the live view).
pub fn pushes(args: &BuildArgs, outputs: &[super::export::Output]) -> usize {
    outputs
        .iter()
        .map(|o| match o {
            super::export::Output::Push(Some(_)) => 1,
            super::export::Output::Push(None) => args.tags.len(),
            _ => 0,
        })
        .sum()
}

pub fn run_flags(args: &BuildArgs) -> Result<RunFlags> {
    RunFlags::parse(&RunFlagArgs {
        add_hosts: &args.add_hosts,
        shm_size: args.shm_size.as_deref(),
        ulimits: &args.ulimits,
        no_cache_filter: &args.no_cache_filter,
        ssh: &args.ssh,
    })
}

/// `--no-cache-filter` names no stage of the Dockerfile: most likely a typo.
pub fn warn_unknown_stages(flags: &RunFlags, graph: &kiln_dockerfile::Graph, progress: &Progress) {
    for name in &flags.no_cache_stages {
        let known = graph.stages.iter().enumerate().any(|(i, s)| {
            s.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
                || *name == i.to_string()
        });
        if !known {
            progress.note(&format!(
                "WARN: --no-cache-filter {name}: the Dockerfile has no stage of that name"
            ));
        }
    }
}

/// `--annotation [manifest:]KEY=VALUE`, buildx's syntax (the manifest is
/// the default and only level: a single-platform build has no index).
pub fn annotations(args: &BuildArgs) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for a in &args.annotations {
        let (key, value) = a
            .split_once('=')
            .with_context(|| format!("--annotation {a}: expected KEY=VALUE"))?;
        let key = match key.split_once(':') {
            Some(("manifest", k)) => k,
            Some((level, _))
                if ["index", "manifest-descriptor", "index-descriptor"]
                    .contains(&level.split('[').next().unwrap_or(level)) =>
            {
                bail!("--annotation {a}: a single-platform image has no index (list several platforms: --platform linux/amd64,linux/arm64)")
            }
            Some((l, _)) if l.starts_with("manifest[") => {
                bail!("--annotation {a}: platform-specific annotations are for multi-platform builds (--platform linux/amd64,linux/arm64)")
            }
            _ => key,
        };
        if key.is_empty() {
            bail!("--annotation {a}: the key is empty");
        }
        map.insert(key.to_string(), value.to_string());
    }
    Ok(map)
}
