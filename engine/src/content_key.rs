//! Cache keys from what a step reads of a stage, not from the stage's own
//! key: BuildKit keys `COPY --from=STAGE` and `RUN --mount=from=STAGE` by
//! the content they read, so a stage rebuilt to the same files (a changed
//! file it does not keep, a cache-busting COPY) leaves the steps reading it
//! cached. A stage's key always gives the same layers, so each digest is
//! kept in the store per stage key and what was read, and a cached stage
//! is hashed once; `--no-cache` recomputes it (a rebuilt stage may differ).

use anyhow::{Context, Result};
use kiln_dockerfile::resolve::Source;

use super::fsops::Root;
use super::steps::StepDirs;
use super::{cache, Builder};

impl Builder<'_> {
    /// The digest `hash` makes of stage `stage`'s rootfs (its layers
    /// mounted read-only); `what` names what it reads (the paths, and the
    /// rules it reads them by), for the store's record.
    pub(super) fn stage_content_digest(
        &self,
        from: &str,
        stage: usize,
        what: &[&[u8]],
        hash: impl FnOnce(&Root, &cache::FileMemo) -> Result<String>,
    ) -> Result<String> {
        // A stage is read, not an image: no platform picks anything.
        let platform = &self.req.platform;
        let stage_key = self.key_of_source(from, Some(Source::Stage(stage)), platform)?;
        let mut parts = vec![stage_key.as_bytes()];
        parts.extend_from_slice(what);
        let record = cache::key("stage-content", &parts);
        if !self.req.no_cache {
            let known = self.store.cache_get(&record).ok().flatten();
            if let Some(known) = known.or_else(|| self.remote_content(&record)) {
                let known = String::from_utf8_lossy(&known).into_owned();
                self.used_content(&record, &known);
                return Ok(known);
            }
        }
        let dirs = StepDirs::new(self)?;
        let target = dirs.mount_point("source")?;
        let source = self.root_of_from(from, Some(Source::Stage(stage)), platform, &target)?;
        // A memo of its own: the context's is keyed by context paths.
        let digest = hash(&Root::open(&source.dir)?, &cache::FileMemo::default())?;
        drop(source);
        self.store
            .cache_put(&record, digest.as_bytes())
            .context("recording what a step read of a stage")?;
        self.used_content(&record, &digest);
        Ok(digest)
    }
}
