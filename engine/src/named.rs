//! `FROM NAME` where a `--build-context NAME=…` is not an image: BuildKit
//! starts such a stage from the empty image (`docker-image://scratch`) or
//! from the context dir's files as the rootfs, with an empty config.

use anyhow::Result;
use kiln_dockerfile::resolve::Platform;

use super::progress::Vertex;
use super::state::StageState;
use super::{base, onbuild, Builder, NamedContext};

impl Builder<'_> {
    /// Whether a `--build-context` gives `reference` something other than
    /// an image to look up (or pull): a dir, or scratch.
    pub(super) fn context_is_not_an_image(&self, reference: &str) -> bool {
        match self.req.contexts.get(reference) {
            Some(NamedContext::Dir(_)) => true,
            Some(NamedContext::Image(r)) => r.eq_ignore_ascii_case("scratch"),
            None => false,
        }
    }

    /// The starting state of `FROM reference` when a `--build-context`
    /// makes it a dir or scratch; None when it is an image (or no context).
    pub(super) fn context_base(
        &self,
        reference: &str,
        platform: &Platform,
        vertex: &Vertex<'_>,
    ) -> Option<Result<StageState>> {
        if !self.context_is_not_an_image(reference) {
            return None;
        }
        let mut state = StageState::from_config(
            base::scratch(platform),
            super::canon::root_key(&platform.triple(), "scratch", ""),
        );
        if let Some(NamedContext::Dir(_)) = self.req.contexts.get(reference) {
            // The dir's files (its .dockerignore applied) make the first
            // layer, as `COPY --from=NAME / /` would: same cache, same
            // ownership, same filtering.
            let copied = onbuild::onbuild_command(&format!("COPY --from={reference} / /"))
                .and_then(|cmd| self.command(&mut state, &cmd, vertex, None));
            if let Err(e) = copied {
                return Some(Err(e));
            }
        }
        Some(Ok(state))
    }
}
