//! Dropping the state of a finished stage once every stage that reads it
//! (`FROM` it, `COPY --from` / `--mount from=` it) has finished. A chain
//! of N stages, each `FROM` the one before, otherwise keeps N configs of
//! up to N history and env entries each: O(N²) memory (6.8 GB for 5,000
//! stages). Only the key of a released stage stays, which is what the
//! scheduler's "is it done" needs.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Result;
use kiln_dockerfile::resolve::Source;
use kiln_dockerfile::Graph;

use super::onbuild::TriggerDeps;
use super::{lock, Builder, StageState};

/// How many stages still to finish read each stage.
#[derive(Default)]
pub(super) struct Readers {
    left: Mutex<HashMap<usize, usize>>,
}

impl Readers {
    pub fn new(graph: &Graph, triggers: &TriggerDeps) -> Readers {
        let mut left = HashMap::new();
        for &i in &triggers.order {
            for d in triggers.deps(graph, i) {
                *left.entry(d).or_insert(0) += 1;
            }
        }
        Readers {
            left: Mutex::new(left),
        }
    }
}

impl Builder<'_> {
    /// Stage `index` finished with `state`: the stages it read lose a
    /// reader (released at their last), and its own state is returned
    /// released already when no stage reads it (all its readers finished
    /// while it hashed its last layer).
    pub(super) fn finished(&self, index: usize, state: StageState) -> StageState {
        let graph = &self.req.graph;
        let mut left = lock(&self.readers.left);
        for d in self.triggers.deps(graph, index) {
            let Some(n) = left.get_mut(&d) else { continue };
            *n -= 1;
            if *n == 0 && d != graph.target {
                self.release(d);
            }
        }
        if index != graph.target && left.get(&index).is_none_or(|n| *n == 0) {
            return state.released();
        }
        state
    }

    /// The state of stage `parent` for stage `index` built `FROM` it:
    /// moved out when `index` is its last reader and reads nothing else
    /// of it (no `--from`), else a copy. A chain of stages then moves one
    /// config along instead of copying it at every stage.
    pub(super) fn inherit(&self, index: usize, parent: usize) -> Result<StageState> {
        let graph = &self.req.graph;
        let only_base = graph.stages[index].edges.iter().all(|e| match e.source {
            Source::Stage(s) => s != parent,
            Source::Image(_) => true,
        });
        let left = lock(&self.readers.left);
        if only_base && parent != graph.target && left.get(&parent) == Some(&1) {
            if let Some(state) = lock(&self.stages).get_mut(&parent) {
                state.check()?;
                let released = state.released();
                return Ok(std::mem::replace(state, released));
            }
        }
        drop(left);
        self.built(parent)
    }

    /// Drops a stage's config and early view. A stage still running (read
    /// early, through `--from`) is released by [`Builder::finished`].
    fn release(&self, index: usize) {
        if let Some(state) = lock(&self.stages).get_mut(&index) {
            *state = state.released();
        }
        lock(&self.early).remove(&index);
    }
}
