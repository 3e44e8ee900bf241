//! What builds sharing one store handle (a multi-platform build's
//! platforms, run at once) coordinate through: a hold that keeps the
//! handle's pending layers where they are until every build is done, and
//! claims that make a step every build needs run once.
//!
//! Pending layers are the handle's, not one build's: any build may have a
//! pending (or doomed) dir of another mounted as a lower, so none of them
//! may move before the last build ends ([`Store::hold_layers`]). And
//! while a step runs, the other builds cannot see its key in the cache: a
//! build about to run a step first claims its key ([`Store::claim_step`]),
//! waiting for the build running it, then finds it in the cache.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::Store;

#[derive(Debug, Default)]
pub(crate) struct Builds {
    /// Holds on the pending layers ([`Store::hold_layers`]).
    holds: Mutex<usize>,
    /// Step keys being run.
    running: Mutex<HashSet<String>>,
    ended: Condvar,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Builds {
    pub(crate) fn held(&self) -> bool {
        *guard(&self.holds) > 0
    }
}

/// While alive, [`Store::publish_layers`] leaves the pending layers in
/// place (the builds still running may have them mounted); the holder
/// publishes them once every build is done.
#[must_use]
#[derive(Debug)]
pub struct LayerHold<'a> {
    builds: &'a Builds,
}

impl Drop for LayerHold<'_> {
    fn drop(&mut self) {
        *guard(&self.builds.holds) -= 1;
    }
}

/// The right to run a step; others wanting the same key wait until it is
/// dropped (after the step's cache entry is written, or it failed).
#[must_use]
#[derive(Debug)]
pub struct StepClaim<'a> {
    builds: &'a Builds,
    key: String,
}

impl Drop for StepClaim<'_> {
    fn drop(&mut self) {
        guard(&self.builds.running).remove(&self.key);
        self.builds.ended.notify_all();
    }
}

impl Store {
    /// Keeps the pending layers where they are until the hold is dropped;
    /// then call [`Store::publish_layers`].
    pub fn hold_layers(&self) -> LayerHold<'_> {
        *guard(&self.builds.holds) += 1;
        LayerHold {
            builds: &self.builds,
        }
    }

    /// The claim on step `key`, if no build through this handle runs it.
    pub fn try_claim_step(&self, key: &str) -> Option<StepClaim<'_>> {
        let mut running = guard(&self.builds.running);
        running.insert(key.to_string()).then(|| StepClaim {
            builds: &self.builds,
            key: key.to_string(),
        })
    }

    /// The claim on step `key`, once the build running it (if any) is done
    /// with it: the caller then looks for its cache entry again.
    pub fn claim_step(&self, key: &str) -> StepClaim<'_> {
        let mut running = guard(&self.builds.running);
        while running.contains(key) {
            running = self
                .builds
                .ended
                .wait(running)
                .unwrap_or_else(PoisonError::into_inner);
        }
        running.insert(key.to_string());
        StepClaim {
            builds: &self.builds,
            key: key.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_step_waits_for_its_runner() {
        let dir = std::env::temp_dir().join(format!("kiln-claims-{}", std::process::id()));
        let store = Store::open(&dir).unwrap();
        let first = store.try_claim_step("k").unwrap();
        assert!(store.try_claim_step("k").is_none());
        assert!(store.try_claim_step("other").is_some());
        let order = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            s.spawn(|| {
                let _second = store.claim_step("k");
                guard(&order).push("second");
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            guard(&order).push("first done");
            drop(first);
        });
        assert_eq!(*guard(&order), ["first done", "second"]);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn held_layers_stay_pending() {
        let dir = std::env::temp_dir().join(format!("kiln-holds-{}", std::process::id()));
        let store = Store::open(&dir).unwrap();
        let hold = store.hold_layers();
        assert!(store.builds.held());
        drop(hold);
        assert!(!store.builds.held());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
