//! A step's cache key: the parts its result depends on (`canon` encodes
//! each), chained to the parent key.

use std::sync::Mutex;

use anyhow::Result;
use kiln_dockerfile::instructions::{Command, Instruction};

use super::canon::{self, Enc, Parts};
use super::{add, config_ops, Builder, StageState};

/// A step's cache key, its parts, and for `COPY --link` the key of its
/// layer alone.
pub(super) struct StepKey {
    pub key: String,
    pub link: Option<String>,
    pub parts: Parts,
    /// The context files a COPY/ADD reads, with their digests.
    pub files: Vec<(String, String)>,
}

impl Builder<'_> {
    /// Everything the step's result depends on, chained to the parent key.
    pub(super) fn step_key(
        &self,
        state: &StageState,
        instruction: &Instruction,
        cmd: &Command,
    ) -> Result<StepKey> {
        let mut parts = Parts::default();
        // No SOURCE_DATE_EPOCH part: the epoch is applied to the image, not
        // to the steps' layers (`stamp`); a RUN that declares it sees it
        // through its arg and env parts.
        canon::instruction_parts(&add::keyed(instruction), &mut parts);
        let mut link = None;
        let files = Mutex::new(Vec::new());
        match instruction {
            Instruction::Run(run) => self.run_parts(state, run, &mut parts)?,
            Instruction::Copy(op) | Instruction::Add(op) => {
                let add = matches!(instruction, Instruction::Add(_));
                let sources = self.sources_key(op, cmd, add, &state.platform, &files)?;
                parts.add("sources", sources.as_bytes());
                parts.add("workdir", state.workdir().as_bytes());
                // A --link layer does not depend on the stage below: its
                // own key leaves the parent out (names in --chown are
                // looked up in the stage, so only numbers qualify).
                if op.link && op.chown.as_deref().is_none_or(add::numeric_owner) {
                    let platform = super::platform::of_config(&state.config);
                    link = Some(parts.key(&canon::root_key(&platform, "link", "")));
                }
            }
            Instruction::Workdir(_) => {
                let user = state.config.config.user.as_deref();
                parts.add("user", &Enc::new("user").opt(user).bytes());
            }
            _ => {}
        }
        Ok(StepKey {
            key: parts.key(&state.key),
            link,
            parts,
            files: files.into_inner().unwrap_or_else(|e| e.into_inner()),
        })
    }

    /// What a RUN's result depends on besides its instruction.
    fn run_parts(
        &self,
        state: &StageState,
        run: &kiln_dockerfile::instructions::Run,
        parts: &mut Parts,
    ) -> Result<()> {
        // One part per variable, so a miss can name it.
        for (name, value) in state.scope.declared_env() {
            parts.add(format!("env:{name}"), value.as_bytes());
        }
        // The build args are in the step's history too, those without a
        // value (not in its environment) included.
        for arg in state.scope.args_for_history() {
            let (name, value) = arg.split_once('=').unwrap_or((&arg, ""));
            parts.add(format!("arg:{name}"), value.as_bytes());
        }
        let user = state.config.config.user.as_deref();
        parts.add("user", &Enc::new("user").opt(user).bytes());
        parts.add("workdir", state.workdir().as_bytes());
        let build_network = match self.req.network {
            kiln_sandbox::Network::Host => "host",
            kiln_sandbox::Network::None => "none",
            kiln_sandbox::Network::Private => "private",
        };
        let network = run.network.map(canon::network);
        let network = Enc::new("network").opt(network).str(build_network).bytes();
        parts.add("network", &network);
        parts.add(
            "shell",
            &Enc::new("shell").strs(&config_ops::shell(state)).bytes(),
        );
        parts.add("mounts", self.mounts_key(run, &state.platform)?.as_bytes());
        parts.add(
            "hostname",
            self.req.graph.inputs.sandbox_hostname().as_bytes(),
        );
        // --add-host, --shm-size, --ulimit; not the ssh agents (BuildKit
        // leaves them out of the key too).
        let flags = &self.req.flags;
        let mut e = Enc::new("run-flags");
        e.strs(&flags.extra_hosts)
            .num(flags.shm_size.map(|s| s as i64))
            .list(&flags.rlimits, |e, r| {
                // as i64: a bijection, RLIM_INFINITY included.
                e.num(Some(i64::from(r.resource)))
                    .num(Some(r.soft as i64))
                    .num(Some(r.hard as i64));
            });
        parts.add("run-flags", &e.bytes());
        parts.add("security", self.req.security.cache_key().as_bytes());
        Ok(())
    }
}
