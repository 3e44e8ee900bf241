//! A seccomp profile in the model of Docker's JSON profiles: an ordered list
//! of rules, each a set of syscall names with an action, optional argument
//! comparisons and include/exclude conditions on the step's capabilities,
//! the host architecture and the kernel version. [`Profile::resolve`] turns
//! it into per-syscall-number rules for one architecture's table.

use std::collections::BTreeMap;

use super::docker_default;

/// What happens to a matching system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    /// Fail with this errno, without running the call.
    Errno(u32),
    KillThread,
    KillProcess,
    /// SIGSYS to the thread.
    Trap,
    /// Allow and log.
    Log,
}

/// A comparison of one 64-bit system call argument, libseccomp's operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `(arg & value) == value_two`.
    MaskedEq,
}

/// One argument comparison: `arg[index] OP value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arg {
    /// 0..=5.
    pub index: u8,
    pub value: u64,
    /// The datum of [`Op::MaskedEq`] (`value` is the mask); unused otherwise.
    pub value_two: u64,
    pub op: Op,
}

/// When a rule applies (Docker's `includes` / `excludes`). Capability names
/// as in Docker (`CAP_SYS_ADMIN`), architectures as Go names (`amd64`, `arm64`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cond {
    pub caps: Vec<String>,
    pub arches: Vec<String>,
    /// (major, minor).
    pub min_kernel: Option<(u32, u32)>,
}

/// One rule: these names, when every `args` comparison holds, get `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub names: Vec<String>,
    pub action: Action,
    pub args: Vec<Arg>,
    pub includes: Cond,
    pub excludes: Cond,
}

/// A whole profile: rules in order, and the action for every call that no
/// rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub default_action: Action,
    pub rules: Vec<Rule>,
}

/// What the profile is evaluated against: the step's capability set, the
/// host's architecture and kernel.
#[derive(Debug, Clone)]
pub struct Context {
    pub caps: Vec<String>,
    /// Go architecture name of the host (`amd64`, `arm64`).
    pub arch: &'static str,
    pub kernel: (u32, u32),
}

// Static mirror of the model, so the built-in profile is plain data.
pub(super) enum StaticAction {
    Allow,
    Errno(u32),
}
pub(super) struct StaticArg {
    pub index: u8,
    pub value: u64,
    pub value_two: u64,
    pub op: Op,
}
pub(super) struct StaticCond {
    pub caps: &'static [&'static str],
    pub arches: &'static [&'static str],
    pub min_kernel: Option<(u32, u32)>,
}
pub(super) struct StaticRule {
    pub names: &'static [&'static str],
    pub action: StaticAction,
    pub args: &'static [StaticArg],
    pub includes: StaticCond,
    pub excludes: StaticCond,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl From<&StaticCond> for Cond {
    fn from(c: &StaticCond) -> Cond {
        Cond {
            caps: strings(c.caps),
            arches: strings(c.arches),
            min_kernel: c.min_kernel,
        }
    }
}

/// The per-number result of [`Profile::resolve`]: the rules of one syscall
/// in profile order, each a conjunction of comparisons.
pub(super) type Resolved = BTreeMap<u32, Vec<(Vec<Arg>, Action)>>;

impl Profile {
    /// Docker's default profile (see `docker_default.rs`).
    pub fn docker_default() -> Profile {
        let rules = docker_default::RULES
            .iter()
            .map(|r| Rule {
                names: strings(r.names),
                action: match r.action {
                    StaticAction::Allow => Action::Allow,
                    StaticAction::Errno(e) => Action::Errno(e),
                },
                args: r
                    .args
                    .iter()
                    .map(|a| Arg {
                        index: a.index,
                        value: a.value,
                        value_two: a.value_two,
                        op: a.op,
                    })
                    .collect(),
                includes: (&r.includes).into(),
                excludes: (&r.excludes).into(),
            })
            .collect();
        Profile {
            default_action: Action::Errno(docker_default::DEFAULT_ERRNO),
            rules,
        }
    }

    /// The rules that apply in `ctx`, by syscall number of `table`. Names the
    /// table does not have are skipped (as runc skips names its libseccomp
    /// does not know).
    pub(super) fn resolve(&self, ctx: &Context, table: &[(&str, u32)]) -> Resolved {
        let mut out = Resolved::new();
        for rule in self.rules.iter().filter(|r| r.applies(ctx)) {
            for name in &rule.names {
                if let Some((_, nr)) = table.iter().find(|(n, _)| n == name) {
                    out.entry(*nr)
                        .or_default()
                        .push((rule.args.clone(), rule.action));
                }
            }
        }
        out
    }
}

impl Rule {
    /// Docker's semantics: every included cap present, the host arch among
    /// the included ones, the kernel new enough; no excluded cap present and
    /// the host arch not excluded.
    fn applies(&self, ctx: &Context) -> bool {
        let has = |c: &String| ctx.caps.contains(c);
        let inc = &self.includes;
        let exc = &self.excludes;
        inc.caps.iter().all(has)
            && (inc.arches.is_empty() || inc.arches.iter().any(|a| a == ctx.arch))
            && inc.min_kernel.is_none_or(|k| ctx.kernel >= k)
            && !exc.caps.iter().any(has)
            && !exc.arches.iter().any(|a| a == ctx.arch)
    }
}
