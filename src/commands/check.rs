//! `kiln build --check`: parse, resolve and lint without executing.

use std::io::Write;

use anyhow::Result;
use kiln_dockerfile::check::{lint, warnings_before, CheckConfig};
use kiln_dockerfile::parser::Warning;
use kiln_dockerfile::resolve::{Base, Graph, Source};
use kiln_dockerfile::{parse_dockerfile, render, resolve, Options};

use super::dockerfile;
use crate::cli::BuildArgs;

pub fn run(args: &BuildArgs) -> Result<i32> {
    let source = dockerfile::read(args)?;
    let mut opts = Options {
        build_args: dockerfile::build_args(&args.build_args)?,
        target: args.target.clone(),
        platform: super::platform::target(None)?,
        // As the build: a stage a --build-context replaces is not built.
        replaced: args
            .build_contexts
            .iter()
            .filter_map(|c| c.split_once('='))
            .map(|(name, _)| name.to_ascii_lowercase())
            .collect(),
    };
    // Each platform of a list is checked: the stages a platform builds,
    // and so their warnings, may differ.
    let platforms = super::multiplat::platforms(args)?;
    let mut targets: Vec<Option<&str>> = platforms.iter().map(|p| Some(p.as_str())).collect();
    if targets.is_empty() {
        targets.push(None);
    }
    let mut graphs = Vec::new();
    for target in targets {
        opts.platform = super::platform::target(target)?;
        let parsed = parse_dockerfile(&source.text).and_then(|file| {
            let config = CheckConfig::for_build(&file, &opts.build_args)?;
            Ok((resolve(file, &opts)?, config))
        });
        match parsed {
            Ok(g) => graphs.push(g),
            Err(err) => {
                for w in warnings_before(&source.text, &err, &opts.build_args) {
                    out!(
                        "WARN: {} - {} ({}:{})",
                        w.rule,
                        w.message,
                        source.name,
                        w.span
                    )?;
                }
                let _ = write!(
                    std::io::stderr(),
                    "{}",
                    render(&source.name, &source.text, &err)
                );
                return Ok(1);
            }
        }
    }
    let (graph, config) = &graphs[0];
    let mut warnings: Vec<Warning> = lint(&graph.file);
    for w in graphs.iter().flat_map(|(g, _)| &g.warnings) {
        if !warnings.contains(w) {
            warnings.push(w.clone());
        }
    }
    let dockerfile_path = args.file.as_deref().filter(|f| f.as_os_str() != "-");
    let ignore = crate::build::Ignore::load(&args.context, dockerfile_path)?;
    warnings.extend(ignore.copied_but_ignored(&graph.context_sources));
    warnings.retain(|w| config.keeps(w));
    warnings.sort_by_key(|w| w.span.start);
    print_summary(graph, &source.name)?;
    for w in &warnings {
        let at = if w.span.start == 0 {
            source.name.clone()
        } else {
            format!("{}:{}", source.name, w.span)
        };
        out!("WARN: {} - {} ({at})", w.rule, w.message)?;
    }
    match warnings.len() {
        0 => out!("Check complete, no warnings found.")?,
        1 => out!("Check complete, 1 warning has been found!")?,
        n => out!("Check complete, {n} warnings have been found!")?,
    }
    if config.error && !warnings.is_empty() {
        // BuildKit's lint result carries this error too.
        say_lint_violation(warnings.iter().map(|w| w.rule));
        return Ok(1);
    }
    Ok(0)
}

/// BuildKit's error for `# check=error=true` when warnings remain: each
/// rule named once.
pub(super) fn say_lint_violation(rules: impl Iterator<Item = &'static str>) {
    let mut rules: Vec<&str> = rules.collect();
    rules.sort_unstable();
    rules.dedup();
    say!(
        "error: lint violation found for rules: {}",
        rules.join(", ")
    );
}

fn print_summary(graph: &Graph, file: &str) -> Result<()> {
    let mut line = String::new();
    let total = graph.stages.len();
    out!(
        "{file}: {total} stage{}, target {} builds {} of them",
        if total == 1 { "" } else { "s" },
        graph.stage_label(graph.target),
        graph.order.len()
    )?;
    for (n, &i) in graph.order.iter().enumerate() {
        let stage = &graph.stages[i];
        let base = match &stage.base {
            Base::Scratch => "scratch".to_string(),
            Base::Stage(j) => format!("stage {}", graph.stage_label(*j)),
            Base::Image(image) => image.clone(),
        };
        let reads: Vec<String> = stage
            .edges
            .iter()
            .map(|e| match &e.source {
                Source::Stage(j) => graph.stage_label(*j),
                Source::Image(r) => r.clone(),
            })
            .collect();
        let steps = graph.file.stages[i].commands.len();
        line.clear();
        line.push_str(&format!(
            "  [{}/{}] {} FROM {base}: {steps} instruction{}",
            n + 1,
            graph.order.len(),
            graph.stage_label(i),
            if steps == 1 { "" } else { "s" }
        ));
        if !reads.is_empty() {
            line.push_str(&format!(", reads {}", reads.join(", ")));
        }
        out!("{line}")?;
    }
    Ok(())
}
