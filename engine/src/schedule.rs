//! The step scheduler: every stage the build needs gets its own thread
//! as soon as its base is ready, and at most `jobs` of them run steps at
//! once (a job slot is held while running, not while waiting). A stage
//! built FROM another starts once that stage is done (its config lists
//! that stage's layers); any other read of a stage (`COPY --from`,
//! `--mount from=`, an ONBUILD trigger's) blocks only the step that reads
//! it, until the source's last step's upper dir is in the store's tmp
//! dir: its key and lower dirs (the "early view") are all a reader needs,
//! and the source's own thread hashes that layer meanwhile. So a final
//! stage's own slow RUN runs beside its builder's.

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex};

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
    /// A job slot was given back by a stage now waiting for another one.
    Wake,
    Done(usize, Box<Result<StageState>>),
}

thread_local! {
    /// The stage this thread runs, and whether it holds a job slot.
    static RUNNING: Cell<Option<(usize, bool)>> = const { Cell::new(None) };
}

/// The `jobs` slots: a stage's thread holds one while it runs steps.
pub(super) struct Slots {
    free: Mutex<usize>,
    given: Condvar,
}

impl Slots {
    pub fn new(jobs: usize) -> Slots {
        Slots {
            free: Mutex::new(jobs),
            given: Condvar::new(),
        }
    }

    fn try_take(&self) -> bool {
        let mut free = lock(&self.free);
        let took = *free > 0;
        if took {
            *free -= 1;
        }
        took
    }

    fn take(&self) {
        let mut free = lock(&self.free);
        while *free == 0 {
            free = self
                .given
                .wait(free)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *free -= 1;
    }

    fn give(&self) {
        *lock(&self.free) += 1;
        self.given.notify_one();
    }
}

/// What the builds of one multi-platform build share: the first to fail
/// stops the others at their next step, as a failed stage stops the other
/// stages of its build (BuildKit cancels the whole solve).
#[derive(Debug, Default)]
pub struct Siblings {
    /// The platform whose build failed first.
    failed: Mutex<Option<String>>,
}

impl Siblings {
    fn fail(&self, platform: String) {
        lock(&self.failed).get_or_insert(platform);
    }

    fn failed(&self) -> Option<String> {
        lock(&self.failed).clone()
    }
}

/// Where stage threads wait for another stage: woken when a stage is
/// done, when its early view goes out, and when the build fails.
#[derive(Default)]
pub(super) struct Gate {
    /// The label of the stage whose failure stopped the build.
    failed: Mutex<Option<String>>,
    changed: Condvar,
    /// The other platforms' builds, and this build's platform.
    siblings: Option<(std::sync::Arc<Siblings>, String)>,
}

impl Gate {
    pub fn new(siblings: Option<std::sync::Arc<Siblings>>, platform: String) -> Gate {
        Gate {
            siblings: siblings.map(|s| (s, platform)),
            ..Gate::default()
        }
    }

    fn notify(&self) {
        // Taken so that a waiter between its check and its wait cannot
        // miss this.
        drop(lock(&self.failed));
        self.changed.notify_all();
    }

    fn fail(&self, label: String) {
        lock(&self.failed).get_or_insert(label);
        if let Some((siblings, platform)) = &self.siblings {
            siblings.fail(platform.clone());
        }
        self.changed.notify_all();
    }

    /// Why no new step should start: another stage failed, or another
    /// platform's build.
    pub fn stopped(&self) -> Result<()> {
        if let Some(label) = &*lock(&self.failed) {
            anyhow::bail!("stopped: stage {label} failed");
        }
        match self.siblings.as_ref().and_then(|(s, _)| s.failed()) {
            Some(platform) => anyhow::bail!("stopped: the build for {platform} failed"),
            None => Ok(()),
        }
    }
}

impl Builder<'_> {
    /// The claim on running step `key` (see `kiln_store::StepClaim`):
    /// when another build (or stage) runs that step, this stage waits for
    /// it without its job slot, which that step's stage may need.
    pub(super) fn claim_step(&self, key: &str) -> Result<kiln_store::StepClaim<'_>> {
        if let Some(claim) = self.store.try_claim_step(key) {
            return Ok(claim);
        }
        let running = RUNNING.get();
        if let Some((me, true)) = running {
            RUNNING.set(Some((me, false)));
            self.slots.give();
            if let Some(tx) = self.events.get() {
                let _ = tx.send(Event::Wake);
            }
        }
        let claim = self.store.claim_step(key);
        if let Some((me, true)) = running {
            self.slots.take();
            RUNNING.set(Some((me, true)));
        }
        // Another stage of this build failed meanwhile (perhaps the one
        // that ran this step): no new step starts.
        self.gate.stopped()?;
        Ok(claim)
    }

    /// A stage's key, as [`Builder::view`] has it, without making its
    /// layers ready (those of cache hits may stay in their cache).
    pub(super) fn view_key(&self, index: usize) -> Result<String> {
        self.wait_readable(index)?;
        if let Some(state) = lock(&self.stages).get(&index) {
            state.check()?;
            return Ok(state.key.clone());
        }
        let early = lock(&self.early).get(&index).map(|v| v.key.clone());
        early.context("a stage this one reads was not built")
    }

    /// A stage's files as `--from` reads them: the finished stage, or its
    /// early view.
    pub(super) fn view(&self, index: usize) -> Result<StageView> {
        self.wait_readable(index)?;
        // Cloned: its cached layers may be downloaded now, not under the lock.
        let state = lock(&self.stages).get(&index).cloned();
        if let Some(state) = &state {
            // A released stage has no layers left to list: reading it
            // would see an empty rootfs.
            state.check()?;
            return Ok(StageView {
                key: state.key.clone(),
                lowers: self.lowers(state)?,
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
        self.gate.notify();
    }

    fn readable(&self, index: usize) -> bool {
        lock(&self.stages).contains_key(&index) || lock(&self.early).contains_key(&index)
    }

    /// Blocks the running stage until stage `index`, which it reads, is
    /// done or has its early view out, giving its job slot back
    /// meanwhile (with `--jobs 1` the stage read needs it). A read the
    /// resolver did not count (a trigger's `--from=$VAR`) does not wait:
    /// it might be a stage that waits for this one.
    fn wait_readable(&self, index: usize) -> Result<()> {
        let Some((me, holding)) = RUNNING.get() else {
            return Ok(());
        };
        if self.readable(index) || !self.triggers.deps(&self.req.graph, me).contains(&index) {
            return Ok(());
        }
        if holding {
            RUNNING.set(Some((me, false)));
            self.slots.give();
            if let Some(tx) = self.events.get() {
                let _ = tx.send(Event::Wake);
            }
        }
        let mut failed = lock(&self.gate.failed);
        while failed.is_none() && !self.readable(index) {
            failed = self
                .gate
                .changed
                .wait(failed)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        drop(failed);
        self.gate.stopped()?;
        self.slots.take();
        RUNNING.set(Some((me, true)));
        Ok(())
    }

    /// Runs a stage, a panic in it (or in a thread it joined) becoming its
    /// error: the scheduler waits for every stage's `Done`, and a thread
    /// that died without sending it would leave the build waiting forever.
    fn stage_caught(&self, index: usize) -> Result<StageState> {
        RUNNING.set(Some((index, true)));
        let run = std::panic::AssertUnwindSafe(|| self.stage(index));
        let result = std::panic::catch_unwind(run);
        if let Some((_, true)) = RUNNING.take() {
            self.slots.give();
        }
        result.unwrap_or_else(|panic| {
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

    /// Whether stage `index` can start: its base stage, if any, is done.
    /// The stages it reads otherwise are waited for by the steps reading
    /// them (see [`Builder::view`]).
    fn ready(&self, index: usize) -> bool {
        match self.req.graph.stages[index].base {
            Base::Stage(i) => lock(&self.stages).contains_key(&i),
            _ => true,
        }
    }

    /// Runs every stage once its base is ready, on a thread of its own,
    /// while a job slot is free; after a failure no new stage or step
    /// starts, stages waiting for another one stop, and the first error
    /// wins.
    pub(super) fn run_stages(&self) -> Result<()> {
        let mut pending: Vec<usize> = self.triggers.order.clone();
        let mut failed: Option<anyhow::Error> = None;
        let (tx, rx) = std::sync::mpsc::channel();
        let _ = self.events.set(tx.clone());
        std::thread::scope(|scope| {
            let mut running = 0;
            loop {
                while failed.is_none() {
                    let Some(pos) = pending.iter().position(|&i| self.ready(i)) else {
                        break;
                    };
                    if !self.slots.try_take() {
                        break;
                    }
                    let index = pending.remove(pos);
                    let tx = tx.clone();
                    let spawned = std::thread::Builder::new()
                        .stack_size(STAGE_STACK)
                        .spawn_scoped(scope, move || {
                            let result = self.stage_caught(index);
                            let _ = tx.send(Event::Done(index, Box::new(result)));
                        });
                    if let Err(e) = spawned {
                        self.slots.give();
                        self.gate.fail(self.req.graph.stage_label(index));
                        failed.get_or_insert(anyhow::Error::new(e).context("starting a stage"));
                        break;
                    }
                    running += 1;
                }
                if running == 0 {
                    break;
                }
                let (index, result) = match rx.recv() {
                    Ok(Event::Wake) => continue,
                    Ok(Event::Done(index, result)) => (index, *result),
                    Err(_) => break,
                };
                running -= 1;
                match result {
                    Ok(state) => {
                        lock(&self.stages).insert(index, state);
                        self.gate.notify();
                    }
                    Err(e) => {
                        if failed.is_none() {
                            self.gate.fail(self.req.graph.stage_label(index));
                        }
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
