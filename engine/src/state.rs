//! A stage's state while it is built, and the journal of config changes
//! its steps make. Every change a step makes to the image config goes
//! through [`StageState::apply`] as an [`Op`]: the ops a step made are
//! what its cache entry stores (see `cache`), and a hit replays them on
//! the parent's config through the same function. So an entry costs what
//! its step changed, not the whole config: N steps cost O(N) on disk,
//! where storing each step's whole config (env and history grow by a step
//! each) cost O(N²).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{anyhow, Result};
use kiln_dockerfile::resolve::{Platform, Scope};
use kiln_layer::Digest;
use kiln_store::Store;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::image_config::{Empty, Healthcheck, History, ImageConfig};

/// One change to an image config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Sets (or replaces in place) an environment variable.
    Env(String, String),
    Label(String, String),
    Expose(String),
    Volume(String),
    OnBuild(String),
    User(String),
    Cmd(Option<Vec<String>>),
    Entrypoint(Vec<String>),
    StopSignal(String),
    Healthcheck(Healthcheck),
    Shell(Vec<String>),
    Author(String),
    Workdir(String),
    /// A layer on top of the rootfs (its diffID).
    Layer(String),
    History(History),
}

impl Op {
    /// Applies all but `Op::Env` (see [`StageState::set_env`]).
    fn apply_to(&self, config: &mut ImageConfig) {
        let run = &mut config.config;
        match self {
            Op::Env(..) => {}
            Op::Label(k, v) => {
                let labels = run.labels.get_or_insert_with(Default::default);
                labels.insert(k.clone(), v.clone());
            }
            Op::Expose(p) => {
                let set = run.exposed_ports.get_or_insert_with(Default::default);
                set.insert(p.clone(), Empty {});
            }
            Op::Volume(p) => {
                let set = run.volumes.get_or_insert_with(Default::default);
                set.insert(p.clone(), Empty {});
            }
            Op::OnBuild(e) => run.on_build.get_or_insert_with(Vec::new).push(e.clone()),
            Op::User(u) => run.user = Some(u.clone()),
            Op::Cmd(c) => run.cmd = c.clone(),
            Op::Entrypoint(e) => run.entrypoint = Some(e.clone()),
            Op::StopSignal(s) => run.stop_signal = Some(s.clone()),
            Op::Healthcheck(h) => run.healthcheck = Some(h.clone()),
            Op::Shell(s) => run.shell = Some(s.clone()),
            Op::Author(a) => config.author = Some(a.clone()),
            Op::Workdir(w) => run.working_dir = Some(w.clone()),
            Op::Layer(d) => config.rootfs.diff_ids.push(d.clone()),
            Op::History(h) => config.history.push(h.clone()),
        }
    }
}

/// A stage being built.
#[derive(Clone)]
pub(crate) struct StageState {
    pub config: ImageConfig,
    pub scope: Scope,
    /// CMD set by this stage (an ENTRYPOINT then keeps it).
    pub cmd_set: bool,
    /// The cache key of the state so far.
    pub key: String,
    /// Set while the stage's last step runs: the stage and the key its
    /// early view gets (see `Builder::announce`).
    pub early: Option<(usize, String)>,
    /// The config changes of the step running now (its cache entry).
    ops: Vec<Op>,
    /// The OCI ChainID of the rootfs (empty for no layers), kept up to
    /// date as layers are added: a cache entry holds its parent's, and a
    /// hit needs it to match, so a layer diffed against other content
    /// below (the step below ran again after a crash lost its entry) is
    /// never stacked on a different parent.
    chain: String,
    /// Where each variable is in `config.config.env` (its first entry,
    /// the one `ImageConfig::set_env` replaces): an ENV line costs O(1),
    /// not a scan of every variable.
    env_at: HashMap<String, usize>,
    /// Dropped: no stage reads this state any more (see `release`).
    released: bool,
    /// `--no-cache-filter` names this stage: its steps all run.
    pub no_cache: bool,
    /// What of the config is the base image's: SOURCE_DATE_EPOCH applies
    /// to the rest (`stamp`). A `FROM <stage>` child keeps its parent's.
    pub base: BaseCounts,
    /// `--isolation chroot`: the stage's rootfs dir, if made.
    pub rootfs: Option<std::sync::Arc<crate::isolation::RootfsDir>>,
    /// The platform the stage is built for (`Builder::stage_platform`,
    /// set when the stage starts): a `--from` image is read for it.
    pub platform: Platform,
}

/// How many layers and history entries an image config starts with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BaseCounts {
    pub layers: usize,
    pub history: usize,
}

impl StageState {
    pub fn from_config(config: ImageConfig, key: String) -> StageState {
        let scope = Scope::with_env(config.env_pairs());
        let mut env_at = HashMap::new();
        for (i, e) in config.config.env.iter().flatten().enumerate() {
            let name = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
            env_at.entry(name.to_string()).or_insert(i);
        }
        let chain = config
            .rootfs
            .diff_ids
            .iter()
            .fold(String::new(), |c, d| chain_id(&c, d));
        let base = BaseCounts {
            layers: config.rootfs.diff_ids.len(),
            history: config.history.len(),
        };
        StageState {
            config,
            scope,
            cmd_set: false,
            key,
            early: None,
            ops: Vec::new(),
            chain,
            env_at,
            released: false,
            no_cache: false,
            base,
            rootfs: None,
            platform: Platform::host(),
        }
    }

    /// The start of a stage built `FROM` this one: the same config, env
    /// and layers (nothing rebuilt from the config: a long chain would pay
    /// for every variable at every stage). The ARGs in scope carry over,
    /// as in BuildKit: the child's `ARG NAME` lines see the parent's values.
    pub fn child(mut self) -> StageState {
        self.cmd_set = false;
        self.early = None;
        self.ops.clear();
        // The parent's dir, unless no one else holds it: another reader
        // must not see this stage's changes.
        if self
            .rootfs
            .as_ref()
            .is_some_and(|r| std::sync::Arc::strong_count(r) > 1)
        {
            self.rootfs = None;
        }
        self
    }

    /// Changes the config (and, for ENV, the scope) and records the
    /// change for the step's cache entry.
    pub fn apply(&mut self, op: Op) {
        self.replay(&op);
        self.ops.push(op);
    }

    /// Applies a change recorded earlier (a cache hit), without recording
    /// it again.
    pub fn replay(&mut self, op: &Op) {
        op.apply_to(&mut self.config);
        match op {
            Op::Env(k, v) => {
                self.set_env(k, v);
                self.scope.set_env(k, v.clone());
            }
            Op::Layer(d) => self.chain = chain_id(&self.chain, d),
            _ => {}
        }
    }

    /// `ImageConfig::set_env` through the index.
    fn set_env(&mut self, key: &str, value: &str) {
        let env = self.config.config.env.get_or_insert_with(Vec::new);
        let entry = format!("{key}={value}");
        match self.env_at.get(key) {
            Some(&i) => env[i] = entry,
            None => {
                self.env_at.insert(key.to_string(), env.len());
                env.push(entry);
            }
        }
    }

    /// The ChainID of the rootfs so far.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// The changes recorded since the last call: one step's.
    pub fn take_ops(&mut self) -> Vec<Op> {
        std::mem::take(&mut self.ops)
    }

    /// This state with its config and scope dropped, once no stage reads
    /// it any more: a long `FROM` chain then keeps one config per live
    /// stage, not one per stage. Only its key is left.
    pub fn released(&self) -> StageState {
        StageState {
            released: true,
            ..StageState::from_config(ImageConfig::default(), self.key.clone())
        }
    }

    /// Fails for a released state: a reader the build did not count (the
    /// resolver knows every `FROM` and `--from`, not those of a base
    /// image's ONBUILD triggers) gets an error, not an empty stage.
    pub fn check(&self) -> Result<()> {
        if self.released {
            anyhow::bail!(
                "a stage read after the stages counted as its readers finished (from an ONBUILD trigger?) is no longer available"
            );
        }
        Ok(())
    }

    pub fn layers(&self) -> Result<Vec<Digest>> {
        self.check()?;
        self.config
            .rootfs
            .diff_ids
            .iter()
            .map(|d| {
                Digest::parse(d).map_err(|e| anyhow!("bad diff_id {d:?} in the image config: {e}"))
            })
            .collect()
    }

    /// Overlay lower dirs for this stage's rootfs, top layer first, each
    /// layer once (see [`Store::overlay_lowers`]).
    pub fn lowers(&self, store: &Store) -> Result<Vec<PathBuf>> {
        Ok(store.overlay_lowers(self.layers()?.iter()))
    }

    pub fn workdir(&self) -> String {
        self.config
            .config
            .working_dir
            .clone()
            .unwrap_or_else(|| "/".into())
    }
}

/// The OCI image spec's ChainID of `below` (a ChainID, empty for none)
/// with `diff_id` on top.
fn chain_id(below: &str, diff_id: &str) -> String {
    if below.is_empty() {
        return diff_id.to_string();
    }
    let digest = Sha256::digest(format!("{below} {diff_id}"));
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(by: &str) -> History {
        History {
            created_by: Some(by.into()),
            empty_layer: true,
            ..History::default()
        }
    }

    #[test]
    fn replaying_the_recorded_ops_gives_the_same_config_and_scope() {
        let mut base = ImageConfig::default();
        base.set_env("PATH", "/bin");
        let mut built = StageState::from_config(base.clone(), "k".into());
        let ops = [
            Op::Env("A".into(), "1".into()),
            Op::Env("PATH".into(), "/usr/bin".into()),
            Op::Label("l".into(), "v".into()),
            Op::Expose("80/tcp".into()),
            Op::Cmd(None),
            Op::Workdir("/w".into()),
            Op::Layer("sha256:00".into()),
            Op::History(history("ENV A=1")),
        ];
        for op in ops.clone() {
            built.apply(op);
        }
        let recorded = built.take_ops();
        assert_eq!(recorded, ops);
        assert!(built.take_ops().is_empty(), "taken once");
        let mut hit = StageState::from_config(base, "k".into());
        for op in &recorded {
            hit.replay(op);
        }
        assert_eq!(hit.config, built.config);
        assert_eq!(hit.chain(), built.chain());
        let again = StageState::from_config(built.config.clone(), "k".into());
        assert_eq!(again.chain(), built.chain(), "as computed from a config");
        assert!(hit.scope.env().eq(built.scope.env()));
        assert_eq!(
            hit.config.config.env.as_deref().unwrap(),
            ["PATH=/usr/bin", "A=1"]
        );
    }

    #[test]
    fn env_ops_replace_as_image_config_set_env_does() {
        let mut base = ImageConfig::default();
        base.config.env = Some(vec!["A=1".into(), "B".into(), "A=2".into()]);
        let mut state = StageState::from_config(base.clone(), "k".into());
        let mut expected = base;
        for (k, v) in [("A", "3"), ("B", "4"), ("C", "5"), ("C", "6")] {
            state.apply(Op::Env(k.into(), v.into()));
            expected.set_env(k, v);
        }
        assert_eq!(state.config, expected);
        assert_eq!(expected.config.env.unwrap(), ["A=3", "B=4", "A=2", "C=6"]);
    }

    #[test]
    fn a_released_state_keeps_its_key_and_refuses_its_layers() {
        let mut config = ImageConfig::default();
        config
            .rootfs
            .diff_ids
            .push(format!("sha256:{}", "ab".repeat(32)));
        let state = StageState::from_config(config, "k".into());
        assert_eq!(state.layers().unwrap().len(), 1);
        let released = state.released();
        assert_eq!(released.key, "k");
        assert!(released.config.rootfs.diff_ids.is_empty());
        let err = released.layers().unwrap_err().to_string();
        assert!(err.contains("no longer available"), "{err}");
    }
}
