//! The build engine: runs a resolved stage graph. Each stage starts from
//! its base (scratch, an image, or an earlier stage's result), and each
//! instruction either changes only the image config or produces a layer:
//! RUN in the sandbox over an overlay of the stage's layers, COPY/ADD/
//! WORKDIR through the same overlay mounted in kiln's own namespace. A
//! layer is the overlay's upper dir, renamed into the store.
//!
//! Stages run in dependency order (`schedule`); `COPY --from` reads the
//! source stage through a read-only overlay of its layers: nothing is
//! exported or copied to a temporary place, and the reader may start
//! while the source's last layer is still being hashed.
//!
//! This crate (kiln-engine) is the whole engine and knows nothing of the
//! command line: the kiln binary turns flags into a [`Request`] and writes
//! the results. Entry points: [`build`] runs a [`Request`] against a
//! [`kiln_store::Store`], reporting through [`Progress`], and returns
//! [`Built`], whose [`image_config::ImageConfig`] lists the new layers;
//! [`copy_rootfs`] (export), [`cache_layers`] (prune) and [`Ignore`]
//! (`.dockerignore`) serve the other commands.

#[macro_use]
mod macros;

mod add;
mod base;
mod binfmt;
mod cache;
mod canon;
mod chroot_run;
mod config_ops;
mod content_key;
mod context;
mod copy;
mod created;
mod dockerignore;
mod explain;
mod flags;
mod fsops;
mod glob;
mod hardlinks;
pub mod image_config;
mod images;
mod isolation;
mod mounts;
mod named;
mod onbuild;
mod platform;
mod progress;
mod release;
mod remote;
mod remote_cache;
mod schedule;
mod security;
mod share;
mod stamp;
mod state;
mod step_key;
mod steps;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};
use kiln_dockerfile::instructions::{expand, Command, Instruction};
use kiln_dockerfile::resolve::Base;
use kiln_dockerfile::shell::Lexer;
use kiln_dockerfile::{render, Graph};
use kiln_layer::Digest;
use kiln_store::{Scratch, Store};

use crate::image_config::{History, ImageConfig};
pub use cache::cache_layers;
pub use copy::{copy_rootfs, Attrs};
pub use created::rfc3339;
pub use dockerignore::Ignore;
pub use flags::{RunFlagArgs, RunFlags};
pub use isolation::{Isolation, CHROOT_WARNING};
pub use mounts::Secrets;
pub use progress::{Mode as ProgressMode, Progress, Vertex};
pub use remote::{classify as classify_remote, fetch_git, subdir_path, Remote};
pub use remote_cache::{CacheOptions, CacheTo, Location as CacheLocation};
pub use schedule::Siblings;
use schedule::{Event, StageView};
pub use security::Security;
use state::Op;
pub(crate) use state::StageState;

/// What to build.
pub struct Request {
    /// The Dockerfile's name for messages, and its text.
    pub file: String,
    pub text: String,
    pub context: PathBuf,
    pub graph: Graph,
    /// The platform built for (`--platform`; the host's by default): a
    /// stage without `FROM --platform` is built for it.
    pub platform: kiln_dockerfile::resolve::Platform,
    pub network: kiln_sandbox::Network,
    /// `--isolation`: namespaces and overlays, or chroot into plain dirs.
    pub isolation: Isolation,
    /// `--security-opt`: seccomp and no_new_privs of RUN steps.
    pub security: Security,
    /// Now: `created` of the history entries of new layers (kept in their
    /// cache entries); the config's follows (see `created`).
    pub created: String,
    /// `--no-cache`: run every step.
    pub no_cache: bool,
    /// `--explain-cache`: say why each step missed.
    pub explain_cache: bool,
    /// SOURCE_DATE_EPOCH: the image's new layers get their mtimes clamped
    /// to it and its steps' history this time (`stamp`); not in step keys.
    pub epoch: Option<i64>,
    /// The Dockerfile read (None for stdin): `<Dockerfile>.dockerignore`
    /// beside it wins.
    pub dockerfile_path: Option<PathBuf>,
    /// `--build-context NAME=…`: what FROM NAME / COPY --from=NAME mean.
    pub contexts: std::collections::BTreeMap<String, NamedContext>,
    /// `--secret`: what `RUN --mount=type=secret` mounts.
    pub secrets: Secrets,
    /// `--pull`: when base images come from their registry.
    pub pull: PullPolicy,
    /// How registries are reached.
    pub registry: kiln_registry::Options,
    /// `--add-host`, `--shm-size`, `--ulimit`, `--no-cache-filter`, `--ssh`.
    pub flags: RunFlags,
    /// `--cache-from`, `--cache-to`.
    pub cache: CacheOptions,
    /// The other platforms' builds of a multi-platform build (none alone).
    pub siblings: Option<std::sync::Arc<Siblings>>,
}

/// `--pull=missing|always|never`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull only what the store lacks.
    Missing,
    /// Ask the registry every time (nothing is downloaded if the store
    /// has the image it names).
    Always,
    /// Never use the network.
    Never,
}

/// A `--build-context NAME=…` value.
#[derive(Clone, Debug, PartialEq)]
pub enum NamedContext {
    /// An image reference as FROM takes it (`oci:DIR:TAG`, a stored name).
    Image(String),
    /// A local directory, for `COPY --from=NAME`.
    Dir(PathBuf),
}

impl NamedContext {
    /// BuildKit's forms: `oci-layout:///path[:tag|@digest]`,
    /// `docker-image://REF`, or a directory.
    pub fn parse(value: &str) -> Result<NamedContext> {
        if let Some(rest) = value.strip_prefix("oci-layout://") {
            let reference = match rest.split_once('@') {
                Some((path, digest)) => format!("oci:{path}:{digest}"),
                None => format!("oci:{rest}"),
            };
            return Ok(NamedContext::Image(reference));
        }
        if let Some(rest) = value.strip_prefix("docker-image://") {
            return Ok(NamedContext::Image(rest.to_string()));
        }
        if value.contains("://") {
            anyhow::bail!("--build-context {value}: only oci-layout://, docker-image:// and directories are supported");
        }
        Ok(NamedContext::Dir(PathBuf::from(value)))
    }
}

/// The result: the target stage's image config (its rootfs lists the
/// layers, bottom first; every one is in the store).
pub struct Built {
    pub config: ImageConfig,
}

pub(crate) struct Builder<'a> {
    pub store: &'a Store,
    pub req: &'a Request,
    pub progress: &'a Progress,
    pub lexer: Lexer,
    /// The context dirs, filtered by their `.dockerignore`: declared
    /// before `scratch`, so they are unmounted before it is removed.
    pub contexts: context::Views,
    pub scratch: Scratch,
    /// Finished stages; stages run on several threads at once.
    pub stages: Mutex<HashMap<usize, StageState>>,
    /// Stages whose last layer is being hashed: what `--from` readers see.
    early: Mutex<HashMap<usize, StageView>>,
    /// Wakes the scheduler when a waiting stage gives its job slot back.
    events: std::sync::OnceLock<std::sync::mpsc::Sender<Event>>,
    /// The `--jobs` slots of the stages running steps.
    slots: schedule::Slots,
    /// Where steps reading another stage wait for it.
    gate: schedule::Gate,
    pub used_args: Mutex<BTreeSet<String>>,
    /// Images already resolved in this build, by reference and platform.
    pub images: Mutex<HashMap<String, kiln_store::Image>>,
    /// The context's `.dockerignore`.
    pub ignore: dockerignore::Ignore,
    /// Context file digests from earlier builds.
    pub memo: cache::FileMemo,
    /// The registry client, made when the first pull or download needs it.
    pub registry: std::sync::OnceLock<kiln_registry::Registry>,
    /// The clients pulling base images, one per platform.
    registries: images::Registries,
    /// ADD's downloads and git checkouts in this build.
    pub fetched: remote::Fetched,
    /// Which stages are still read, so the others' states are dropped.
    readers: release::Readers,
    /// The stages to build, with those base images' triggers read.
    triggers: onbuild::TriggerDeps,
    /// Base images that could not be read before the stages ran, with
    /// why: their stage reports it without trying (pulling) again.
    base_errors: Mutex<HashMap<String, String>>,
    /// Cache mount dirs this `--no-cache` build already started anew.
    fresh_caches: Mutex<std::collections::HashSet<PathBuf>>,
    /// `--cache-from`'s configs, and the keys `--cache-to` exports.
    rcache: remote_cache::Imported,
}

/// Builds the stages the target needs, up to `jobs` of them running steps
/// at once.
pub fn build(store: &Store, req: &Request, progress: &Progress, jobs: usize) -> Result<Built> {
    if req.isolation == Isolation::Chroot {
        say!("{CHROOT_WARNING}");
    }
    let scratch = store
        .scratch()
        .context("creating the build's scratch dir")?;
    let b = Builder {
        store,
        req,
        progress,
        lexer: Lexer::new(req.graph.file.directives.escape),
        contexts: context::Views::new(scratch.path()),
        scratch,
        stages: Mutex::new(HashMap::new()),
        early: Mutex::new(HashMap::new()),
        events: std::sync::OnceLock::new(),
        slots: schedule::Slots::new(jobs.max(1)),
        gate: schedule::Gate::new(req.siblings.clone(), req.platform.to_string()),
        used_args: Mutex::new(BTreeSet::new()),
        images: Mutex::new(HashMap::new()),
        ignore: dockerignore::Ignore::load(&req.context, req.dockerfile_path.as_deref())?,
        memo: cache::FileMemo::load(store, &req.context),
        registry: std::sync::OnceLock::new(),
        registries: Mutex::default(),
        fetched: remote::Fetched::default(),
        readers: release::Readers::default(),
        triggers: onbuild::TriggerDeps::default(),
        base_errors: Mutex::default(),
        fresh_caches: Mutex::default(),
        rcache: remote_cache::Imported::default(),
    };
    let mut b = b;
    b.check_foreign_runs()?;
    b.triggers = b.trigger_deps();
    b.check_foreign_triggers()?;
    b.readers = release::Readers::new(&req.graph, &b.triggers);
    b.load_remote_cache();
    // Layers a cache hit left in its cache come down before they are
    // stamped (and the image is stored).
    let result = b.run_stages().and_then(|()| {
        let target = b.built(req.graph.target)?;
        b.materialize(&target.layers()?)?;
        Ok((b.stamped(&target)?, target))
    });
    // The build's layers are synced once and enter `layers/` together,
    // failed build or not (its finished steps stay cached).
    let published = store.publish_layers().context("storing the build's layers");
    b.memo.save(store)?;
    let (mut config, target) = result?;
    published?;
    b.export_remote_cache(&target)?;
    config.created = created::fill(&mut config.history);
    Ok(Built { config })
}

/// A poisoned lock only means another stage's thread panicked; the data
/// (a map of finished stages) is still whole.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Builder<'_> {
    /// A finished stage's state.
    pub(crate) fn built(&self, index: usize) -> Result<StageState> {
        let state = lock(&self.stages)
            .get(&index)
            .cloned()
            .context("a stage this one reads was not built")?;
        state.check()?;
        Ok(state)
    }

    fn stage(&self, index: usize) -> Result<StageState> {
        let graph = &self.req.graph;
        let stage = &graph.file.stages[index];
        let total = stage.commands.len() + 1;
        let label = graph.stage_label(index);
        let from = &stage.from;
        let vertex = self.progress.start(&format!(
            "[{label} 1/{total}] FROM {}",
            graph_base(graph, index)
        ));
        let (mut state, triggers) = match self.base(index, &vertex) {
            Ok(s) => s,
            Err(e) => {
                vertex.error(&format!("{e:#}"));
                return Err(self.located(from.span, e));
            }
        };
        vertex.done();
        state.platform = self.stage_platform(index)?;
        state.no_cache = self
            .req
            .flags
            .no_cache(graph.stages[index].name.as_deref(), index);
        // The base's ONBUILD triggers run first, as if written after FROM.
        for trigger in &triggers {
            self.gate.stopped()?;
            let text = trigger.original.trim();
            let vertex = self
                .progress
                .start(&format!("[{label} 1/{total}] ONBUILD {text}"));
            match self.command(&mut state, trigger, &vertex, None) {
                Ok(true) => vertex.cached(),
                Ok(false) => vertex.done(),
                Err(e) => {
                    vertex.error(&format!("{e:#}"));
                    let e = e.context(format!("the base's ONBUILD {text}"));
                    return Err(self.located(from.span, e));
                }
            }
        }
        for (i, cmd) in stage.commands.iter().enumerate() {
            // Another stage failed: the build stops at this step.
            self.gate.stopped()?;
            let vertex = self.progress.start(&format!(
                "[{label} {}/{total}] {}",
                i + 2,
                cmd.original.trim()
            ));
            let last = i + 1 == stage.commands.len();
            match self.command(&mut state, cmd, &vertex, last.then_some(index)) {
                Ok(true) => vertex.cached(),
                Ok(false) => vertex.done(),
                Err(e) => {
                    vertex.error(&format!("{e:#}"));
                    return Err(self.located(cmd.span, e));
                }
            }
        }
        Ok(self.finished(index, state))
    }

    /// An error with the Dockerfile location and the offending lines.
    fn located(&self, span: kiln_dockerfile::Span, e: anyhow::Error) -> anyhow::Error {
        let err = kiln_dockerfile::Error {
            span,
            message: format!("{e:#}"),
        };
        anyhow!(
            "{}",
            render(&self.req.file, &self.req.text, &err).trim_end()
        )
    }

    /// The stage's starting state and its base's ONBUILD triggers.
    fn base(
        &self,
        index: usize,
        vertex: &progress::Vertex<'_>,
    ) -> Result<(StageState, Vec<Command>)> {
        let node = &self.req.graph.stages[index];
        let platform = self.stage_platform(index)?;
        match &node.base {
            Base::Scratch => Ok((
                StageState::from_config(
                    base::scratch(&platform),
                    canon::root_key(&platform.triple(), "scratch", ""),
                ),
                Vec::new(),
            )),
            Base::Stage(i) => {
                // A child stage inherits the parent's image and ARG values.
                let mut state = self.inherit(index, *i)?.child();
                // The parent's triggers are its own ONBUILD lines, as the
                // resolver read them (their `--from` edges are this
                // stage's); they run here and are not inherited.
                state.config.config.on_build = None;
                let triggers = self.req.graph.file.stages[*i]
                    .commands
                    .iter()
                    .filter_map(|c| match &c.instruction {
                        Instruction::Onbuild(o) => Some((*o.trigger).clone()),
                        _ => None,
                    })
                    .collect();
                Ok((state, triggers))
            }
            Base::Image(reference) => {
                if let Some(state) = self.context_base(reference, &platform, vertex) {
                    return Ok((state?, Vec::new()));
                }
                let image = self.base_image_of(reference, &platform)?;
                let mut config = base::config_of(self.store, &image)?;
                self.check_base_platform(index, reference, &config, &platform);
                // The triggers run in this build and are not inherited.
                let triggers = config.config.on_build.take().unwrap_or_default();
                let triggers = triggers
                    .iter()
                    .map(|t| onbuild::onbuild_command(t).with_context(|| format!("ONBUILD {t}")))
                    .collect::<Result<_>>()?;
                let digest = image.manifest_digest.to_string();
                let key = canon::root_key(&platform.triple(), "image", &digest);
                Ok((StageState::from_config(config, key), triggers))
            }
        }
    }

    /// Runs one instruction; true when its result came from the cache.
    /// `last_of`: the stage, when this is its last instruction (its layer
    /// is then announced early).
    fn command(
        &self,
        state: &mut StageState,
        cmd: &Command,
        vertex: &progress::Vertex<'_>,
        last_of: Option<usize>,
    ) -> Result<bool> {
        let inputs = &self.req.graph.inputs;
        let instruction = inputs.unexpanded_defaults_dropped(&cmd.instruction);
        let expanded = expand(&instruction, &self.lexer, &state.scope)
            .map_err(|e| anyhow!("{}", e.message))?;
        let instruction = expanded.instruction;
        if let Instruction::Arg(decls) = &instruction {
            state
                .scope
                .declare_args(decls, inputs, &mut lock(&self.used_args));
            // Recorded as BuildKit does (an empty layer with the values),
            // outside any cache entry: ARG has no step of its own.
            let words: Vec<String> = decls
                .iter()
                .map(|d| match state.scope.arg(&d.name) {
                    Some(v) => format!("{}={v}", d.name),
                    None => d.name.clone(),
                })
                .collect();
            self.record_history(state, format!("ARG {}", words.join(" ")), None);
            state.take_ops();
            return Ok(false);
        }
        let step_key::StepKey {
            key,
            link,
            parts,
            files,
        } = self.step_key(state, &instruction, cmd)?;
        // Only this step's changes go into its entry, made on these layers.
        state.take_ops();
        let below = state.chain().to_string();
        let no_cache = self.req.no_cache || state.no_cache;
        // Another platform's build (or stage) running this very step:
        // waited for, then a hit like any other.
        let mut claim = None;
        for _attempt in (0..2).filter(|_| !no_cache) {
            if let Some(ops) = self.cached(&key, state, vertex)? {
                self.used_key(&key);
                for op in &ops {
                    state.replay(op);
                }
                state.key = key;
                if let Instruction::Cmd(_) = instruction {
                    state.cmd_set = true;
                }
                return Ok(true);
            }
            if claim.is_none() {
                claim = Some(self.claim_step(&key)?);
            }
        }
        // Held until the step's cache entry is written (or it failed).
        let _claim = claim;
        // A --link layer made before over another stage is reused as is.
        let linked = match &link {
            Some(k) if !no_cache => self.linked(k)?,
            _ => None,
        };
        if self.req.explain_cache && !no_cache {
            self.explain(&state.key, &parts, &files, vertex);
        }
        let reused = linked.is_some();
        match linked {
            Some(layer) => self.history(state, cmd, Some(layer)),
            None => {
                state.early = last_of
                    .filter(|_| !state.no_cache)
                    .map(|i| (i, key.clone()));
                let executed = self.execute(state, &instruction, cmd, vertex, link.as_deref());
                state.early = None;
                executed?;
            }
        }
        let ops = state.take_ops();
        let entry = cache::Entry::new((&state.key, &below), ops, parts.0);
        self.store.cache_put(&key, &serde_json::to_vec(&entry)?)?;
        self.remember(&state.key, &key, &entry.parts, files)?;
        self.used_key(&key);
        state.key = flags::rerun_key(key, state);
        Ok(reused)
    }

    /// The registry (and HTTP) client, made on first use.
    fn registry(&self) -> Result<&kiln_registry::Registry> {
        if let Some(r) = self.registry.get() {
            return Ok(r);
        }
        let r = kiln_registry::Registry::new(self.req.registry.clone())?;
        Ok(self.registry.get_or_init(|| r))
    }

    /// The config changes a cache entry holds for the step on top of
    /// `parent`, if the entry exists and the layers it adds do (the
    /// parent's own layers are there: the stage stands on them).
    /// Else, a `--cache-from` entry (see `remote_cache`).
    fn cached(&self, key: &str, parent: &StageState, v: &Vertex) -> Result<Option<Vec<Op>>> {
        let Some(bytes) = self.store.cache_get(key)? else {
            return self.remote_hit(key, parent, v);
        };
        let Some(ops) = cache::Entry::decode(&bytes, (&parent.key, parent.chain())) else {
            return self.remote_hit(key, parent, v);
        };
        let complete = ops.iter().all(|op| match op {
            Op::Layer(d) => Digest::parse(d).is_ok_and(|d| self.store.has_layer(&d)),
            _ => true,
        });
        match complete {
            true => Ok(Some(ops)),
            false => self.remote_hit(key, parent, v),
        }
    }

    fn execute(
        &self,
        state: &mut StageState,
        instruction: &Instruction,
        cmd: &Command,
        vertex: &progress::Vertex<'_>,
        link: Option<&str>,
    ) -> Result<()> {
        match instruction {
            Instruction::Run(run) => self.run(state, run, vertex),
            Instruction::Copy(op) => self.copy(state, op, cmd, false, link),
            Instruction::Add(op) => self.copy(state, op, cmd, true, link),
            Instruction::Workdir(dir) => self.workdir(state, dir, cmd),
            other => {
                config_ops::apply(state, other)?;
                self.history(state, cmd, None);
                Ok(())
            }
        }
    }

    /// Records a history entry; `layer` is the new layer, if any.
    pub(crate) fn history(&self, state: &mut StageState, cmd: &Command, layer: Option<Digest>) {
        let created_by = format!("{} # buildkit", cmd.original.trim());
        self.record_history(state, created_by, layer);
    }

    /// Records a history entry with this `created_by`.
    pub(crate) fn record_history(
        &self,
        state: &mut StageState,
        created_by: String,
        layer: Option<Digest>,
    ) {
        if let Some(d) = &layer {
            state.apply(Op::Layer(d.to_string()));
        }
        // A step without a layer gets its time when the image is made
        // (see `created`; SOURCE_DATE_EPOCH: `stamp`).
        state.apply(Op::History(History {
            created: layer.is_some().then(|| self.req.created.clone()),
            created_by: Some(created_by),
            comment: Some("buildkit.dockerfile.v0".into()),
            empty_layer: layer.is_none(),
            ..History::default()
        }));
    }
}

fn graph_base(graph: &Graph, index: usize) -> String {
    match &graph.stages[index].base {
        Base::Scratch => "scratch".into(),
        Base::Stage(i) => graph.stage_label(*i),
        Base::Image(r) => r.clone(),
    }
}
