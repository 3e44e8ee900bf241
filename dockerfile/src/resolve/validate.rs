//! One pass over every stage with its statically known scope: finds the
//! `--from` edges and expands each word BuildKit expands, so undefined
//! variables, bad ports, signals and modes are reported with their line.
//! Errors are kept per stage and only reported for stages the target needs.

use std::collections::{BTreeMap, BTreeSet};

use super::lints::StageLint;
use super::{Base, ContextSource, Edge, Inputs, Scope, Source, StageNode, DEFAULT_PATH};
use crate::error::{Error, Span};
use crate::instructions::{expand, Command, Dockerfile, FileOp, Instruction, Security};
use crate::parser::Warning;
use crate::shell::Lexer;

#[derive(Clone, Debug, Default)]
pub struct StageScan {
    pub error: Option<Error>,
    pub warnings: Vec<Warning>,
    pub used_args: BTreeSet<String>,
    /// The scope at the end of the stage, inherited by `FROM <stage>`;
    /// moved into the last stage built on it.
    pub scope: Scope,
    /// Whether the whole environment is known (no image base anywhere in
    /// the chain), so an unset variable is really undefined.
    pub env_known: bool,
    /// The lint state carried into `FROM <stage>` children.
    pub lint: StageLint,
    /// What COPY and ADD read from the build context.
    pub context_sources: Vec<ContextSource>,
}

struct Ctx<'a> {
    names: &'a BTreeMap<String, usize>,
    inputs: &'a Inputs,
    lexer: &'a Lexer,
    index: usize,
    stage_count: usize,
}

pub fn scan_stages(
    file: &Dockerfile,
    stages: &mut [StageNode],
    names: &BTreeMap<String, usize>,
    inputs: &Inputs,
    lexer: &Lexer,
) -> Vec<StageScan> {
    let mut scans: Vec<StageScan> = Vec::with_capacity(stages.len());
    // The last child takes its parent's scope instead of a copy: a chain
    // of N stages would otherwise keep N scopes of up to N variables.
    let mut children = vec![0usize; stages.len()];
    for node in stages.iter() {
        if let Base::Stage(j) = node.base {
            children[j] += 1;
        }
    }
    for (index, stage) in file.stages.iter().enumerate() {
        let mut scan = match &stages[index].base {
            Base::Stage(j) => StageScan {
                scope: {
                    children[*j] -= 1;
                    if children[*j] == 0 {
                        std::mem::take(&mut scans[*j].scope)
                    } else {
                        scans[*j].scope.clone()
                    }
                },
                env_known: scans[*j].env_known,
                lint: scans[*j].lint,
                ..StageScan::default()
            },
            // BuildKit's empty image has the default PATH, as kiln's.
            Base::Scratch => StageScan {
                scope: Scope::with_env([("PATH".to_string(), DEFAULT_PATH.to_string())]),
                env_known: true,
                ..StageScan::default()
            },
            Base::Image(_) => StageScan::default(),
        };
        let ctx = Ctx {
            names,
            inputs,
            lexer,
            index,
            stage_count: stages.len(),
        };
        // A parent stage's ONBUILD triggers run first in this stage: their
        // `--from` stages are this stage's to read (and to wait for).
        let triggers = match stages[index].base {
            Base::Stage(j) => onbuild_triggers(&file.stages[j].commands),
            _ => Vec::new(),
        };
        for command in triggers.into_iter().chain(&stage.commands) {
            if let Err(message) = scan_command(&ctx, command, &mut scan, &mut stages[index].edges) {
                scan.error = Some(Error::new(command.span, message));
                break;
            }
        }
        scans.push(scan);
    }
    scans
}

/// The triggers a stage's ONBUILD lines declare, in order.
fn onbuild_triggers(commands: &[Command]) -> Vec<&Command> {
    commands
        .iter()
        .filter_map(|c| match &c.instruction {
            Instruction::Onbuild(o) => Some(&*o.trigger),
            _ => None,
        })
        .collect()
}

fn scan_command(
    ctx: &Ctx,
    command: &Command,
    scan: &mut StageScan,
    edges: &mut Vec<Edge>,
) -> Result<(), String> {
    let instruction = ctx.inputs.unexpanded_defaults_dropped(&command.instruction);
    let expanded = match expand(&instruction, ctx.lexer, &scan.scope) {
        Ok(e) => e,
        // An image's ENV is unknown before it is pulled: a required
        // variable may come from there. The build engine checks again.
        Err(e) if e.unset_variable && !scan.env_known => return Ok(()),
        Err(e) => return Err(e.message),
    };
    if scan.env_known {
        undefined_vars(&expanded.unmatched, scan, command.span);
    }
    scan.lint
        .command(&expanded.instruction, command.span, &mut scan.warnings);
    match &expanded.instruction {
        Instruction::Arg(decls) => scan
            .scope
            .declare_args(decls, ctx.inputs, &mut scan.used_args),
        Instruction::Env(pairs) => {
            for kv in pairs {
                scan.scope.set_env(&kv.key, kv.value.clone());
            }
        }
        Instruction::Copy(op) | Instruction::Add(op) => {
            check_file_op(ctx, op, command.span, edges)?;
            if op.from.is_none() {
                let add = matches!(expanded.instruction, Instruction::Add(_));
                scan.context_sources
                    .extend(op.sources.iter().map(|s| ContextSource {
                        add,
                        source: s.clone(),
                        span: command.span,
                    }));
            }
        }
        Instruction::Run(run) => {
            if run.security == Some(Security::Insecure) {
                return Err("RUN --security=insecure is not supported: kiln builds rootless and never grants extra privileges".into());
            }
            for from in run.mounts.iter().filter_map(|m| m.from.as_deref()) {
                edges.push(Edge {
                    source: source_of(ctx, from, "RUN --mount from")?,
                    span: command.span,
                });
            }
        }
        Instruction::Workdir(w) => non_empty("WORKDIR", w)?,
        Instruction::User(u) => non_empty("USER", u)?,
        Instruction::StopSignal(s) => check_signal(s)?,
        Instruction::Expose(ports) => ports.iter().try_for_each(|p| check_port(p))?,
        Instruction::Volume(vols) => vols.iter().try_for_each(|v| non_empty("VOLUME", v))?,
        _ => {}
    }
    Ok(())
}

/// BuildKit's UndefinedVar: a variable neither ENV nor an ARG of the
/// stage defines. An `ARG X` without a value defines X (empty).
fn undefined_vars(unmatched: &BTreeSet<String>, scan: &mut StageScan, span: Span) {
    let declared = |v: &str| scan.scope.args.iter().any(|(k, _)| k == v);
    let undefined: Vec<&String> = unmatched.iter().filter(|v| !declared(v)).collect();
    for var in undefined {
        let known = scan
            .scope
            .env()
            .map(|(k, _)| k)
            .chain(scan.scope.args.iter().map(|(k, _)| k.as_str()));
        let mut message = format!("Usage of undefined variable '${var}'");
        if let Some(best) = crate::suggest::closest(var, known) {
            message.push_str(&format!(" (did you mean ${best}?)"));
        }
        scan.warnings.push(Warning {
            rule: "UndefinedVar",
            message,
            span,
        });
    }
}

fn check_file_op(ctx: &Ctx, op: &FileOp, span: Span, edges: &mut Vec<Edge>) -> Result<(), String> {
    if let Some(from) = &op.from {
        edges.push(Edge {
            source: source_of(ctx, from, "COPY --from")?,
            span,
        });
    }
    if let Some(chown) = &op.chown {
        non_empty("--chown", chown)?;
    }
    if let Some(sum) = &op.checksum {
        // A URL's digest, or (a git source) a commit hash or its prefix;
        // which one the source needs is checked when it is known.
        let is_hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
        let digest = sum
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && is_hex(h));
        if !digest && !is_hex(sum) {
            return Err(format!(
                "invalid checksum {sum:?}: expected sha256:<64 hex digits> (a URL) or expected hex commit hash (a git repository)"
            ));
        }
    }
    Ok(())
}

/// Resolves a `--from` value: a stage name, a stage index, or an image.
fn source_of(ctx: &Ctx, from: &str, what: &str) -> Result<Source, String> {
    if from.is_empty() {
        return Err(format!("{what}: the stage or image name is empty"));
    }
    if let Some(&i) = ctx.names.get(&from.to_ascii_lowercase()) {
        if i == ctx.index {
            return Err(format!("{what}={from} refers to the stage it is in"));
        }
        // BuildKit builds stages in file order and refuses a forward read.
        if i > ctx.index {
            return Err(format!(
                "{what}={from}: stage {from:?} needs to be defined before current stage (it is stage {i}, this is stage {})",
                ctx.index
            ));
        }
        return Ok(Source::Stage(i));
    }
    if let Ok(i) = from.parse::<usize>() {
        if i >= ctx.index {
            return Err(format!(
                "{what}={from}: stage index {i} is not an earlier stage (this is stage {} of {})",
                ctx.index, ctx.stage_count
            ));
        }
        return Ok(Source::Stage(i));
    }
    Ok(Source::Image(from.to_string()))
}

fn non_empty(what: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        Err(format!("{what} is empty after variable expansion"))
    } else {
        Ok(())
    }
}

/// `[ip:]port[-port][/tcp|udp|sctp]`, as Docker's `nat.ParsePortSpecs`.
pub fn check_port(spec: &str) -> Result<(), String> {
    let bad =
        || format!("invalid port specification: {spec:?} (expected PORT[-PORT][/tcp|udp|sctp])");
    let (ports, proto) = match spec.rsplit_once('/') {
        Some((p, proto)) => (p, proto),
        None => (spec, "tcp"),
    };
    if !matches!(proto.to_ascii_lowercase().as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad());
    }
    let ports = ports.rsplit_once(':').map_or(ports, |(_, p)| p);
    let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
    let parse = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|_| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    };
    match (parse(lo), parse(hi)) {
        (Some(a), Some(b)) if a <= b => Ok(()),
        _ => Err(bad()),
    }
}

const SIGNALS: [&str; 31] = [
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
    "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
    "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR",
];

/// A signal name (`SIGTERM`, `term`, `RTMIN+3`) or number.
pub fn check_signal(sig: &str) -> Result<(), String> {
    if let Ok(n) = sig.parse::<u32>() {
        return if (1..=64).contains(&n) {
            Ok(())
        } else {
            Err(format!("invalid signal: {sig}"))
        };
    }
    let upper = sig.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let rt = ["RTMIN+", "RTMAX-"].iter().any(|p| {
        name.strip_prefix(p)
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n <= 30)
    });
    if SIGNALS.contains(&name) || name == "RTMIN" || name == "RTMAX" || rt {
        Ok(())
    } else {
        Err(format!("invalid signal: {sig}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        for ok in [
            "80",
            "8080/tcp",
            "53/udp",
            "1000-2000",
            "9000-9001/UDP",
            "127.0.0.1:80",
        ] {
            assert!(check_port(ok).is_ok(), "{ok}");
        }
        for bad in ["", "http", "80/icmp", "70000", "20-10", "-1", "8o"] {
            assert!(check_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signals() {
        for ok in ["SIGTERM", "term", "9", "SIGRTMIN+3", "RTMAX"] {
            assert!(check_signal(ok).is_ok(), "{ok}");
        }
        for bad in ["SIGFOO", "0", "65", "", "RTMIN+99"] {
            assert!(check_signal(bad).is_err(), "{bad}");
        }
    }
}
