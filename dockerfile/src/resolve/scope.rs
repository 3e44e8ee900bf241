//! Variable scope of one stage: which ARG and ENV values `$NAME` sees, with
//! BuildKit's rules — ENV wins over ARG; a stage sees a global ARG only once
//! it re-declares it; `--build-arg` overrides defaults; the platform ARGs
//! have automatic values; ARGs and ENV carry into `FROM <stage>` children.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::instructions::{ArgDecl, Instruction};
use crate::shell::Env;

/// The proxy variables Docker passes to RUN from `--build-arg` without an
/// ARG line, and keeps out of the image history (pairs: upper, lower).
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What a stage's words are expanded against.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// ENV values in order of definition (the image's, then the stage's);
    /// setting a variable again replaces its value in place, as the image
    /// config does, so the two list the environment alike.
    env: Vec<(String, String)>,
    /// Where each variable is in `env`: setting and looking one up cost
    /// O(1), not a scan of every variable (quadratic over thousands of
    /// ENV lines).
    env_at: HashMap<String, usize>,
    /// ARGs declared in this stage (or its parent stages) with their values.
    pub args: Vec<(String, Option<String>)>,
}

impl Env for Scope {
    fn get(&self, name: &str) -> Option<String> {
        if let Some(&i) = self.env_at.get(name) {
            return Some(self.env[i].1.clone());
        }
        self.args
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
    }
}

/// Values that come from outside a stage: `--build-arg`, the global ARGs
/// and the automatic platform ARGs.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub build_args: BTreeMap<String, String>,
    /// Global (pre-FROM) ARGs after their own expansion; None = declared
    /// without a value.
    pub global: BTreeMap<String, Option<String>>,
    pub automatic: BTreeMap<String, String>,
}

impl Inputs {
    /// RUN's hostname from `--build-arg BUILDKIT_SANDBOX_HOSTNAME`; empty
    /// for the sandbox's default.
    pub fn sandbox_hostname(&self) -> &str {
        self.build_args
            .get(super::HOSTNAME_ARG)
            .map_or("", String::as_str)
    }

    /// SOURCE_DATE_EPOCH as given: `--build-arg`, else the global ARG's
    /// default (already checked to be a number by the resolver).
    pub fn source_date_epoch(&self) -> Option<&str> {
        let name = super::EPOCH_ARG;
        match self.build_args.get(name) {
            Some(v) => Some(v.as_str()),
            None => self.global.get(name)?.as_deref(),
        }
        .filter(|v| !v.is_empty())
    }

    /// The instruction to expand: an ARG line's defaults for names given
    /// by `--build-arg` are dropped, since BuildKit never evaluates them
    /// (`ARG BAR=${FOO:?}` with `--build-arg BAR=x` is not an error).
    pub fn unexpanded_defaults_dropped<'i>(
        &self,
        instruction: &'i Instruction,
    ) -> Cow<'i, Instruction> {
        match instruction {
            Instruction::Arg(decls)
                if decls
                    .iter()
                    .any(|d| d.default.is_some() && self.build_args.contains_key(&d.name)) =>
            {
                Cow::Owned(Instruction::Arg(
                    decls
                        .iter()
                        .map(|d| ArgDecl {
                            name: d.name.clone(),
                            default: d
                                .default
                                .clone()
                                .filter(|_| !self.build_args.contains_key(&d.name)),
                        })
                        .collect(),
                ))
            }
            _ => Cow::Borrowed(instruction),
        }
    }

    /// The value an `ARG NAME[=default]` line in a stage gets.
    fn arg_value(&self, name: &str, default: Option<String>) -> Option<String> {
        if let Some(v) = self.build_args.get(name) {
            return Some(v.clone());
        }
        if default.is_some() {
            return default;
        }
        if let Some(v) = self.global.get(name) {
            return v.clone();
        }
        self.automatic.get(name).cloned()
    }
}

impl Scope {
    /// A scope with these ENV values (a repeated name keeps its first
    /// place and its last value) and no ARGs.
    pub fn with_env(env: impl IntoIterator<Item = (String, String)>) -> Scope {
        let mut scope = Scope::default();
        for (k, v) in env {
            scope.set_env(&k, v);
        }
        scope
    }

    /// The ENV values in order.
    pub fn env(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn set_env(&mut self, key: &str, value: String) {
        match self.env_at.get(key) {
            Some(&i) => self.env[i].1 = value,
            None => {
                self.env_at.insert(key.to_string(), self.env.len());
                self.env.push((key.to_string(), value));
            }
        }
    }

    /// The value an ARG declared in this stage has (None: not declared,
    /// or declared without a value).
    pub fn arg(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The ARGs in scope as BuildKit's history of a RUN lists them:
    /// `NAME=value` in the order first declared, the value an ENV of the
    /// same name gives when it shadows the ARG, empty for none.
    pub fn args_for_history(&self) -> Vec<String> {
        self.args
            .iter()
            .map(|(k, _)| format!("{k}={}", self.get(k).unwrap_or_default()))
            .collect()
    }

    /// Applies one ARG line whose defaults are already expanded (against
    /// the scope from before the line).
    pub fn declare_args(
        &mut self,
        decls: &[ArgDecl],
        inputs: &Inputs,
        used: &mut BTreeSet<String>,
    ) {
        for decl in decls {
            used.insert(decl.name.clone());
            // An `ARG NAME` with nothing to give it keeps the value it has
            // (from an earlier line or the parent stage), as in BuildKit;
            // declared again, it keeps its first place (the order BuildKit
            // lists build args in a RUN's history).
            let slot = self.args.iter().position(|(k, _)| k == &decl.name);
            let before = slot.and_then(|i| self.args[i].1.clone());
            let value = inputs
                .arg_value(&decl.name, decl.default.clone())
                .or(before);
            match slot {
                Some(i) => self.args[i].1 = value,
                None => self.args.push((decl.name.clone(), value)),
            }
        }
    }

    /// The environment of a RUN step: the image env plus every ARG in
    /// scope that ENV does not shadow, plus proxy build args.
    pub fn run_env(&self, inputs: &Inputs) -> Vec<(String, String)> {
        let mut out = self.declared_env();
        let env_len = self.env.len();
        // Whether ENV (by the index) or an ARG added here has the name.
        let set = |out: &[(String, String)], name: &str| {
            self.env_at.contains_key(name) || out[env_len..].iter().any(|(k, _)| k == name)
        };
        // As BuildKit: either spelling of a proxy arg sets both (the
        // lowercase one wins when both are given), an empty one neither.
        for pair in PROXY_ARGS.chunks(2) {
            let value = pair
                .iter()
                .rev()
                .find_map(|name| inputs.build_args.get(*name))
                .filter(|v| !v.is_empty());
            let Some(v) = value else { continue };
            for name in pair {
                if !set(&out, name) {
                    out.push((name.to_string(), v.clone()));
                }
            }
        }
        out
    }

    /// The RUN environment the Dockerfile declares: ENV, then the ARGs ENV
    /// does not shadow. Without the implicit proxy args, which BuildKit
    /// leaves out of a step's cache key (a new proxy reuses the cache).
    pub fn declared_env(&self) -> Vec<(String, String)> {
        let mut out = self.env.clone();
        // `declare_args` keeps one entry per name: only ENV can shadow.
        out.extend(
            self.args
                .iter()
                .filter(|(k, _)| !self.env_at.contains_key(k))
                .filter_map(|(k, v)| Some((k.clone(), v.clone()?))),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instructions::ArgDecl;

    fn decl(name: &str, default: Option<&str>) -> ArgDecl {
        ArgDecl {
            name: name.into(),
            default: default.map(Into::into),
        }
    }

    #[test]
    fn a_run_lists_its_args_in_first_declared_order_with_their_last_values() {
        // BuildKit: testExportedHistoryFlattenArgs (`RUN |2 foo=bar2 bar=123`).
        let mut scope = Scope::default();
        let inputs = Inputs::default();
        let mut used = BTreeSet::new();
        for d in [
            decl("foo", Some("bar")),
            decl("bar", Some("123")),
            decl("foo", Some("bar2")),
            decl("none", None),
        ] {
            scope.declare_args(&[d], &inputs, &mut used);
        }
        assert_eq!(scope.args_for_history(), ["foo=bar2", "bar=123", "none="]);
        scope.set_env("bar", "env".into());
        assert_eq!(scope.args_for_history()[1], "bar=env", "ENV shadows");
        assert_eq!(scope.arg("bar"), Some("123"));
        assert_eq!(scope.arg("none"), None);
    }
}
