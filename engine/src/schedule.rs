//! The stage scheduler: stages run on up to `jobs` threads, each once the
//! stages it needs are ready. A stage another one is built FROM must be
//! done (its config lists that stage's layers); a stage only read through
//! `COPY --from` / `--mount from=` is ready as soon as its last step's
//! upper dir is in the store's tmp dir: its key and lower dirs (the
//! "early view") are all a reader needs, and the stage's own thread hashes
//! that layer meanwhile, on the other core.

use std::path::PathBuf;

use anyhow::{Context, Result};
use kiln_dockerfile::resolve::Base;

use super::{lock, Builder, StageState};

/// A stage thread's stack: layer capture recurses once per directory
/// level (up to 1024; ~0.5 KiB a level optimized, several unoptimized).
/// Only what is touched is committed.
const STAGE_STACK: usize = 16 << 20;

/// What a stage's dependents that only read its files need, known as soon
/// as its last step's upper dir is in place, before that layer is hashed:
/// its cache key and its lower dirs, top first.
#[derive(Clone)]
pub(super) struct StageView {
    pub key: String,
    pub lowers: Vec<PathBuf>,
}

/// What a stage's thread tells the scheduler.
pub(super) enum Event {
    /// The stage's early view is in `Builder::early`.
    Early,
    Done(usize, Box<Result<StageState>>),
}

impl Builder<'_> {
    /// A stage's files as `--from` reads them: the finished stage, or its
    /// early view.
    pub(super) fn view(&self, index: usize) -> Result<StageView> {
        if let Some(state) = lock(&self.stages).get(&index) {
            // A released stage has no layers left to list: reading it
            // would see an empty rootfs.
            state.check()?;
            return Ok(StageView {
                key: state.key.clone(),
                lowers: state.lowers(self.store)?,
            });
        }
        lock(&self.early)
            .get(&index)
            .cloned()
            .context("a stage this one reads was not built")
    }

    /// Publishes a stage's early view and wakes the scheduler: stages that
    /// read it only through `--from` may start while its thread hashes
    /// the last layer.
    pub(super) fn announce(&self, index: usize, view: StageView) {
        lock(&self.early).insert(index, view);
        if let Some(tx) = self.events.get() {
            let _ = tx.send(Event::Early);
        }
    }

    /// Runs a stage, a panic in it (or in a thread it joined) becoming its
    /// error: the scheduler waits for every stage's `Done`, and a thread
    /// that died without sending it would leave the build waiting forever.
    fn stage_caught(&self, index: usize) -> Result<StageState> {
        let run = std::panic::AssertUnwindSafe(|| self.stage(index));
        std::panic::catch_unwind(run).unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            Err(anyhow::anyhow!(
                "internal error: the thread building stage {} panicked: {what}",
                self.req.graph.stage_label(index)
            ))
        })
    }

    /// Whether stage `index` can start: its base stage is done, and every
    /// stage it reads is done or has its early view out.
    fn ready(&self, index: usize) -> bool {
        let node = &self.req.graph.stages[index];
        let base = match node.base {
            Base::Stage(i) => Some(i),
            _ => None,
        };
        let done = lock(&self.stages);
        let early = lock(&self.early);
        self.triggers
            .deps(&self.req.graph, index)
            .into_iter()
            .all(|d| done.contains_key(&d) || (Some(d) != base && early.contains_key(&d)))
    }

    /// Runs every stage once the stages it reads are done (or readable,
    /// see [`Builder::ready`]), several at a time; after a failure no new
    /// stage starts and the first error wins.
    pub(super) fn run_stages(&self, jobs: usize) -> Result<()> {
        let mut pending: Vec<usize> = self.triggers.order.clone();
        let mut failed: Option<anyhow::Error> = None;
        let (tx, rx) = std::sync::mpsc::channel();
        let _ = self.events.set(tx.clone());
        std::thread::scope(|scope| {
            let mut running = 0;
            loop {
                while failed.is_none() && running < jobs {
                    let Some(pos) = pending.iter().position(|&i| self.ready(i)) else {
                        break;
                    };
                    let index = pending.remove(pos);
                    let tx = tx.clone();
                    let spawned = std::thread::Builder::new()
                        .stack_size(STAGE_STACK)
                        .spawn_scoped(scope, move || {
                            let result = self.stage_caught(index);
                            let _ = tx.send(Event::Done(index, Box::new(result)));
                        });
                    if let Err(e) = spawned {
                        failed.get_or_insert(anyhow::Error::new(e).context("starting a stage"));
                        break;
                    }
                    running += 1;
                }
                if running == 0 {
                    break;
                }
                let (index, result) = match rx.recv() {
                    Ok(Event::Early) => continue,
                    Ok(Event::Done(index, result)) => (index, *result),
                    Err(_) => break,
                };
                running -= 1;
                match result {
                    Ok(state) => {
                        lock(&self.stages).insert(index, state);
                    }
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
        });
        match failed {
            Some(e) => Err(e),
            None if pending.is_empty() => Ok(()),
            None => anyhow::bail!("stages {pending:?} could not be scheduled"),
        }
    }
}
