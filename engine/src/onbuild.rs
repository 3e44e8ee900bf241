//! ONBUILD triggers. A stage's own triggers fire in the stages built
//! `FROM` it; the resolver reads them and counts their `--from` stages as
//! that child's (for the order, the scheduler and [`super::release`]). A
//! base image's triggers are only known once its config is read: as
//! BuildKit does, those images are resolved before any stage runs, and a
//! trigger's `--from=NAME` naming a stage of this Dockerfile makes that
//! stage one the child reads, like a `COPY --from` written in it.

use std::collections::{BTreeSet, HashMap};

use anyhow::{anyhow, Context, Result};
use kiln_dockerfile::instructions::{Command, Instruction};
use kiln_dockerfile::resolve::{Base, Platform, Source};

use super::{base, images, Builder};

/// The stages the build runs and, per stage, the stages its base image's
/// triggers read.
#[derive(Default)]
pub(super) struct TriggerDeps {
    pub order: Vec<usize>,
    pub extra: HashMap<usize, Vec<usize>>,
}

impl TriggerDeps {
    /// The stages `index` reads: the resolver's and its triggers'.
    pub fn deps(&self, graph: &kiln_dockerfile::Graph, index: usize) -> BTreeSet<usize> {
        let mut deps: BTreeSet<usize> = graph.stages[index].stage_deps().collect();
        deps.extend(self.extra.get(&index).into_iter().flatten());
        deps
    }
}

impl Builder<'_> {
    /// Reads the triggers of the base images of every stage to build (the
    /// images are looked up or pulled, in parallel, once for the build),
    /// adding the stages they read, and what those need, to the order. An
    /// image that cannot be read is left to its stage to report.
    pub(super) fn trigger_deps(&self) -> TriggerDeps {
        let graph = &self.req.graph;
        let mut deps = TriggerDeps {
            order: graph.order.clone(),
            extra: HashMap::new(),
        };
        let mut todo = graph.order.clone();
        while !todo.is_empty() {
            self.resolve_bases(&todo);
            let mut added = Vec::new();
            for &i in &todo {
                let read = self.trigger_sources(i);
                for &j in &read {
                    self.add_with_deps(j, &mut deps, &mut added);
                }
                if !read.is_empty() {
                    deps.extra.insert(i, read);
                }
            }
            todo = added;
        }
        deps
    }

    /// Looks up (pulling if needed) the base images of `stages`, one
    /// thread per image.
    fn resolve_bases(&self, stages: &[usize]) {
        // A stage whose platform does not parse reports it when it runs.
        let refs: BTreeSet<(&str, Platform)> = stages
            .iter()
            .filter_map(|&i| Some((self.base_image(i)?, self.stage_platform(i).ok()?)))
            .collect();
        std::thread::scope(|scope| {
            for (r, p) in refs {
                scope.spawn(move || {
                    if let Err(e) = self.image_for(r, &p) {
                        super::lock(&self.base_errors).insert(images::key(r, &p), format!("{e:#}"));
                    }
                });
            }
        });
    }

    /// The image stage `index` starts from, unless a named context dir
    /// replaces it (the stage reports that).
    fn base_image(&self, index: usize) -> Option<&str> {
        match &self.req.graph.stages[index].base {
            Base::Image(r) if !self.context_is_not_an_image(r) => Some(r.as_str()),
            _ => None,
        }
    }

    /// The stages of this Dockerfile that the triggers of stage `index`'s
    /// base image read. A `--from` holding a variable is only known when
    /// the trigger runs: it is not counted.
    fn trigger_sources(&self, index: usize) -> Vec<usize> {
        let mut read = Vec::new();
        for cmd in self.base_triggers(index) {
            let froms: Vec<&str> = match &cmd.instruction {
                Instruction::Copy(op) | Instruction::Add(op) => {
                    op.from.as_deref().into_iter().collect()
                }
                Instruction::Run(run) => run
                    .mounts
                    .iter()
                    .filter_map(|m| m.from.as_deref())
                    .collect(),
                _ => Vec::new(),
            };
            for from in froms.into_iter().filter(|f| !f.contains('$')) {
                if let Source::Stage(j) = self.source_named(from) {
                    if j != index && !read.contains(&j) {
                        read.push(j);
                    }
                }
            }
        }
        read
    }

    /// The ONBUILD triggers of stage `index`'s base image, as far as they
    /// parse; none when the image cannot be read (the stage reports it).
    pub(super) fn base_triggers(&self, index: usize) -> Vec<Command> {
        let Some(reference) = self.base_image(index) else {
            return Vec::new();
        };
        // Looked up as FROM does: through a `--build-context` of that name
        // (the images read are kept under the reference it maps to).
        let Ok(platform) = self.stage_platform(index) else {
            return Vec::new();
        };
        let Ok(image) = self.base_image_of(reference, &platform) else {
            return Vec::new();
        };
        let Ok(config) = base::config_of(self.store, &image) else {
            return Vec::new();
        };
        let triggers = config.config.on_build.unwrap_or_default();
        triggers
            .iter()
            .filter_map(|t| onbuild_command(t).ok())
            .collect()
    }

    /// A stage's base image: as read before the stages ran, its error
    /// included.
    pub(super) fn base_image_of(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<kiln_store::Image> {
        match super::lock(&self.base_errors).get(&images::key(reference, platform)) {
            Some(e) => Err(anyhow!("{e}")),
            None => self.image_for(reference, platform),
        }
    }

    /// Adds stage `index` and the stages it needs to the order, if missing.
    fn add_with_deps(&self, index: usize, deps: &mut TriggerDeps, added: &mut Vec<usize>) {
        let mut stack = vec![index];
        while let Some(i) = stack.pop() {
            if deps.order.contains(&i) {
                continue;
            }
            deps.order.push(i);
            added.push(i);
            stack.extend(self.req.graph.stages[i].stage_deps());
        }
    }
}

/// An ONBUILD trigger (one instruction, as stored in the config) parsed
/// with the frontend. Its span is the default one, which no line of the
/// Dockerfile has: its `--from` is resolved by name, not by the
/// resolver's edges (see `source_of_from`).
pub(super) fn onbuild_command(trigger: &str) -> Result<Command> {
    let text = format!("FROM scratch\n{trigger}\n");
    let file = kiln_dockerfile::parse_dockerfile(&text).map_err(|e| anyhow!("{}", e.message))?;
    let mut cmd = file
        .stages
        .into_iter()
        .next()
        .and_then(|s| s.commands.into_iter().next())
        .context("an empty ONBUILD trigger")?;
    cmd.span = kiln_dockerfile::Span::default();
    Ok(cmd)
}
