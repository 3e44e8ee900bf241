//! The stage graph: global ARGs and FROM lines expanded, stages linked by
//! `FROM <stage>`, `COPY --from` and `RUN --mount=…,from=`, the `--target`
//! chosen, and the stages it does not need dropped. Every word BuildKit
//! expands is expanded once here with what is statically known, so a
//! mistake is reported with its line before anything runs.

mod default_from;
mod lints;
mod platform;
mod scope;
mod validate;

use std::collections::{BTreeMap, BTreeSet};

pub use platform::Platform;
pub use scope::{Inputs, Scope, PROXY_ARGS};

use crate::error::{Error, Result, Span};
use crate::instructions::Dockerfile;
use crate::parser::Warning;
use crate::shell::{Env, Lexer};

/// What the user asked for.
#[derive(Clone, Debug)]
pub struct Options {
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    /// The target platform (TARGETPLATFORM); the build platform
    /// (BUILDPLATFORM) is always the host's.
    pub platform: Platform,
    /// Stage names (lower-cased) a `--build-context` replaces, as
    /// BuildKit's: `FROM NAME` and `--from=NAME` then name the context,
    /// not the stage.
    pub replaced: BTreeSet<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            build_args: BTreeMap::new(),
            target: None,
            platform: Platform::host(),
            replaced: BTreeSet::new(),
        }
    }
}

/// Where a stage starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Base {
    Scratch,
    Stage(usize),
    Image(String),
}

/// What a `--from` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Stage(usize),
    Image(String),
}

/// A COPY or ADD source read from the build context, expanded (for the
/// CopyIgnoredFile check against the `.dockerignore`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextSource {
    pub add: bool,
    pub source: String,
    pub span: Span,
}

/// A stage reading another stage or an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub source: Source,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageNode {
    pub index: usize,
    pub name: Option<String>,
    /// The FROM image after expansion.
    pub base: Base,
    pub platform: Option<String>,
    /// `COPY --from` and `RUN --mount from=` sources, in order.
    pub edges: Vec<Edge>,
}

impl StageNode {
    /// Every stage this one reads: its base and its `--from` sources.
    pub fn stage_deps(&self) -> impl Iterator<Item = usize> + '_ {
        let base = match self.base {
            Base::Stage(i) => Some(i),
            _ => None,
        };
        base.into_iter()
            .chain(self.edges.iter().filter_map(|e| match e.source {
                Source::Stage(i) => Some(i),
                Source::Image(_) => None,
            }))
    }
}

/// A resolved build: the stages, the target, and the order to build the
/// needed stages in (dependencies first).
#[derive(Clone, Debug)]
pub struct Graph {
    pub file: Dockerfile,
    pub stages: Vec<StageNode>,
    pub target: usize,
    pub order: Vec<usize>,
    pub inputs: Inputs,
    pub warnings: Vec<Warning>,
    /// The context sources of the stages built, in build order.
    pub context_sources: Vec<ContextSource>,
}

impl Graph {
    pub fn stage_label(&self, index: usize) -> String {
        match &self.stages[index].name {
            Some(n) => n.clone(),
            None => format!("stage-{index}"),
        }
    }
}

/// Resolves a parsed Dockerfile for one build.
pub fn resolve(file: Dockerfile, opts: &Options) -> Result<Graph> {
    let lexer = Lexer::new(file.directives.escape);
    let mut warnings = file.warnings.clone();
    let all_names = stage_names(&file)?;
    let target = target_index(&file, opts, &all_names)?;
    let inputs = global_inputs(&file, opts, &lexer, target)?;
    let mut names = all_names.clone();
    names.retain(|name, _| !opts.replaced.contains(name));
    let mut stages = Vec::with_capacity(file.stages.len());
    for (index, stage) in file.stages.iter().enumerate() {
        let from = &stage.from;
        let global = GlobalEnv(&inputs);
        let expanded = lexer
            .process_word_with_matches(&from.image, &global)
            .map_err(|e| Error::new(from.span, format!("FROM {}: {e}", from.image)))?;
        undeclared_in_from(&expanded.unmatched, &inputs, from.span, &mut warnings);
        if expanded.value.is_empty() {
            return Err(Error::new(
                from.span,
                format!("base name ({}) should not be blank", from.image),
            ));
        }
        let image = expanded.value;
        let base = match names.get(&image.to_ascii_lowercase()) {
            Some(&i) if i < index => Base::Stage(i),
            _ if image.eq_ignore_ascii_case("scratch") => Base::Scratch,
            _ => Base::Image(image),
        };
        let platform = match &from.platform {
            Some(p) => {
                let expanded = lexer
                    .process_word_with_matches(p, &global)
                    .map_err(|e| Error::new(from.span, format!("FROM --platform={p}: {e}")))?;
                undeclared_in_from(&expanded.unmatched, &inputs, from.span, &mut warnings);
                check_platform(p, &expanded.value, &expanded.unmatched, &inputs)
                    .map_err(|m| Error::new(from.span, m))?;
                lints::from_platform(
                    p,
                    &expanded,
                    from.name.as_deref(),
                    inputs.automatic.get("TARGETPLATFORM").map(String::as_str),
                    from.span,
                    &mut warnings,
                );
                Some(expanded.value)
            }
            None => None,
        };
        stages.push(StageNode {
            index,
            name: from.name.clone(),
            base,
            platform,
            edges: Vec::new(),
        });
    }
    let scan = validate::scan_stages(&file, &mut stages, &names, &inputs, &lexer);
    let order = build_order(&stages, target, &file)?;
    for &i in &order {
        if let Some(err) = &scan[i].error {
            return Err(err.clone());
        }
        warnings.extend(scan[i].warnings.iter().cloned());
    }
    let context_sources = order
        .iter()
        .flat_map(|&i| scan[i].context_sources.iter().cloned())
        .collect();
    unused_build_args(opts, &scan, &order, &inputs, &file, &mut warnings);
    default_from::check(&file, opts, &lexer, target, &mut warnings);
    Ok(Graph {
        file,
        stages,
        target,
        order,
        inputs,
        warnings,
        context_sources,
    })
}

/// The scope FROM lines see: global ARGs and the automatic ones.
struct GlobalEnv<'a>(&'a Inputs);

impl Env for GlobalEnv<'_> {
    fn get(&self, name: &str) -> Option<String> {
        match self.0.global.get(name) {
            Some(v) => v.clone(),
            None => self.0.automatic.get(name).cloned(),
        }
    }
}

fn global_inputs(
    file: &Dockerfile,
    opts: &Options,
    lexer: &Lexer,
    target: usize,
) -> Result<Inputs> {
    let mut automatic: BTreeMap<String, String> =
        opts.platform.automatic_args().into_iter().collect();
    // BuildKit names an unnamed target stage "default".
    let target_name = file.stages[target].from.name.as_deref();
    automatic.insert(
        "TARGETSTAGE".into(),
        target_name.unwrap_or("default").to_string(),
    );
    let mut inputs = Inputs {
        build_args: opts.build_args.clone(),
        global: BTreeMap::new(),
        automatic,
    };
    for (decl, span) in &file.meta_args {
        let value = match opts.build_args.get(&decl.name) {
            Some(v) => Some(v.clone()),
            None => match &decl.default {
                Some(d) => Some(
                    lexer
                        .process_word(d, &GlobalEnv(&inputs))
                        .map_err(|e| Error::new(*span, format!("ARG {}: {e}", decl.name)))?,
                ),
                None => None,
            },
        };
        if decl.name == EPOCH_ARG && !opts.build_args.contains_key(EPOCH_ARG) {
            check_epoch(value.as_deref()).map_err(|m| Error::new(*span, m))?;
        }
        inputs.global.insert(decl.name.clone(), value);
    }
    Ok(inputs)
}

/// BuildKit's UndefinedArgInFrom: a variable no global ARG declares. An
/// `ARG X` without a value declares X (empty), so `$X` is not a mistake.
fn undeclared_in_from(
    unmatched: &BTreeSet<String>,
    inputs: &Inputs,
    span: Span,
    warnings: &mut Vec<Warning>,
) {
    let known = || inputs.global.keys().chain(inputs.automatic.keys());
    for var in unmatched.iter().filter(|v| !inputs.global.contains_key(*v)) {
        let mut message = format!("FROM argument '{var}' is not declared");
        if let Some(best) = crate::suggest::closest(var, known().map(String::as_str)) {
            message.push_str(&format!(" (did you mean {best}?)"));
        }
        warnings.push(Warning {
            rule: "UndefinedArgInFrom",
            message,
            span,
        });
    }
}

/// An expanded `FROM --platform` must name a platform: a misspelt `$ARG`
/// is an error, as in BuildKit, not a silent build for the host.
fn check_platform(
    written: &str,
    value: &str,
    unmatched: &BTreeSet<String>,
    inputs: &Inputs,
) -> std::result::Result<(), String> {
    let mut message = if value.is_empty() {
        format!("empty platform value from expression {written}")
    } else if let Some(bad) = value.split('/').find(|c| {
        c.is_empty()
            || !c
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch))
    }) {
        format!(
            "failed to parse platform {written}: {bad:?} is an invalid component of {value:?}: \
platform specifier component must match \"^[A-Za-z0-9_.-]+$\": invalid argument"
        )
    } else {
        return Ok(());
    };
    let known = || inputs.global.keys().chain(inputs.automatic.keys());
    if let Some(best) = unmatched
        .iter()
        .find_map(|var| crate::suggest::closest(var, known().map(String::as_str)))
    {
        message.push_str(&format!(" (did you mean {best}?)"));
    }
    Err(message)
}

/// The PATH of an image that sets none (BuildKit's default for Linux).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The build arg that clamps layer mtimes and sets `created`; a global
/// `ARG SOURCE_DATE_EPOCH=<n>` default counts as if given by `--build-arg`.
pub const EPOCH_ARG: &str = "SOURCE_DATE_EPOCH";

/// The build arg that names RUN's host (BuildKit's default is its own
/// `buildkitsandbox`; kiln's is `kiln`).
pub const HOSTNAME_ARG: &str = "BUILDKIT_SANDBOX_HOSTNAME";

/// A Dockerfile's SOURCE_DATE_EPOCH default must be whole seconds (empty
/// means unset, as in BuildKit).
fn check_epoch(value: Option<&str>) -> std::result::Result<(), String> {
    match value {
        Some(v) if !v.is_empty() && v.parse::<u64>().is_err() => Err(format!(
            "ARG {EPOCH_ARG}={v}: not a number of seconds since 1970-01-01 UTC"
        )),
        _ => Ok(()),
    }
}

/// Stage names (lower-cased) to indices; a name used twice is an error.
fn stage_names(file: &Dockerfile) -> Result<BTreeMap<String, usize>> {
    let mut names = BTreeMap::new();
    for (i, stage) in file.stages.iter().enumerate() {
        if let Some(name) = &stage.from.name {
            if let Some(first) = names.insert(name.clone(), i) {
                let line = file.stages[first].from.span.start;
                return Err(Error::new(
                    stage.from.span,
                    format!("duplicate stage name {name:?}: first defined on line {line}"),
                ));
            }
        }
    }
    Ok(names)
}

fn target_index(
    file: &Dockerfile,
    opts: &Options,
    names: &BTreeMap<String, usize>,
) -> Result<usize> {
    let Some(target) = &opts.target else {
        return Ok(file.stages.len() - 1);
    };
    names
        .get(&target.to_ascii_lowercase())
        .copied()
        .ok_or_else(|| {
            let known: Vec<&str> = names.keys().map(String::as_str).collect();
            let mut msg = format!("target stage {target:?} could not be found");
            if let Some(best) = crate::suggest::closest(target, known.iter().copied()) {
                msg.push_str(&format!(" (did you mean {best}?)"));
            } else if !known.is_empty() {
                msg.push_str(&format!("; stages are: {}", known.join(", ")));
            }
            Error::new(Span::default(), msg)
        })
}

/// Depth-first from the target: dependencies before dependants, cycles
/// reported with the line that closes them.
fn build_order(stages: &[StageNode], target: usize, file: &Dockerfile) -> Result<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; stages.len()];
    let mut order = Vec::new();
    // An explicit stack: a long chain of stages must not overflow ours.
    // Pending deps are popped from the end: keep them reversed so stages
    // are built in the order they are referenced.
    let deps_of = |i: usize| -> Vec<usize> {
        let mut deps: Vec<usize> = stages[i].stage_deps().collect();
        deps.reverse();
        deps
    };
    let mut stack: Vec<(usize, Vec<usize>)> = vec![(target, deps_of(target))];
    marks[target] = Mark::Active;
    while let Some((node, pending)) = stack.last_mut() {
        let node = *node;
        match pending.pop() {
            Some(dep) => match marks[dep] {
                Mark::Done => {}
                Mark::Active => {
                    return Err(Error::new(
                        file.stages[node].from.span,
                        format!(
                            "circular dependency: stage {} reads stage {} which needs it",
                            stage_name(stages, node),
                            stage_name(stages, dep)
                        ),
                    ))
                }
                Mark::New => {
                    marks[dep] = Mark::Active;
                    stack.push((dep, deps_of(dep)));
                }
            },
            None => {
                marks[node] = Mark::Done;
                order.push(node);
                stack.pop();
            }
        }
    }
    Ok(order)
}

fn stage_name(stages: &[StageNode], i: usize) -> String {
    stages[i].name.clone().unwrap_or_else(|| i.to_string())
}

/// BuildKit warns about `--build-arg`s that no needed stage declares.
fn unused_build_args(
    opts: &Options,
    scan: &[validate::StageScan],
    order: &[usize],
    inputs: &Inputs,
    file: &Dockerfile,
    warnings: &mut Vec<Warning>,
) {
    let mut used: BTreeSet<&str> = order
        .iter()
        .flat_map(|&i| scan[i].used_args.iter().map(String::as_str))
        .collect();
    used.extend(file.meta_args.iter().map(|(d, _)| d.name.as_str()));
    used.extend(PROXY_ARGS);
    // The builder itself reads it: the clamp for layer mtimes and `created`.
    used.insert(EPOCH_ARG);
    used.insert(HOSTNAME_ARG);
    used.insert(crate::check::CHECK_BUILD_ARG);
    let unused: Vec<&str> = opts
        .build_args
        .keys()
        .map(String::as_str)
        .filter(|k| !used.contains(k) && !inputs.automatic.contains_key(*k))
        .collect();
    if !unused.is_empty() {
        warnings.push(Warning {
            rule: "UnusedBuildArg",
            message: format!(
                "one or more build-args were not consumed: {}",
                unused.join(", ")
            ),
            span: Span::default(),
        });
    }
}
