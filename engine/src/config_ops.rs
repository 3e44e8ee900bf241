//! Instructions that change only the image config (no layer): ENV, LABEL,
//! EXPOSE, VOLUME, USER, CMD, ENTRYPOINT, STOPSIGNAL, HEALTHCHECK, SHELL,
//! ONBUILD, MAINTAINER. Their words arrive already expanded.

use anyhow::Result;
use kiln_dockerfile::instructions::{CommandLine, Healthcheck, Instruction};

use super::state::Op;
use super::StageState;
use crate::image_config::Healthcheck as ConfigHealthcheck;

const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// The SHELL in effect: the config's, else `/bin/sh -c`.
pub fn shell(state: &StageState) -> Vec<String> {
    state
        .config
        .config
        .shell
        .clone()
        .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect())
}

/// A command line as argv: exec form as written, shell form through SHELL.
pub fn argv(state: &StageState, line: &CommandLine) -> Vec<String> {
    match line {
        CommandLine::Exec(v) => v.clone(),
        CommandLine::Shell(s) => {
            let mut v = shell(state);
            v.push(s.clone());
            v
        }
    }
}

/// Applies a config-only instruction as the ops it makes (recorded for
/// the step's cache entry).
pub fn apply(state: &mut StageState, instruction: &Instruction) -> Result<()> {
    for op in ops(state, instruction) {
        state.apply(op);
    }
    if let Instruction::Cmd(_) = instruction {
        state.cmd_set = true;
    }
    Ok(())
}

fn ops(state: &StageState, instruction: &Instruction) -> Vec<Op> {
    match instruction {
        Instruction::Env(pairs) => pairs
            .iter()
            .map(|kv| Op::Env(kv.key.clone(), kv.value.clone()))
            .collect(),
        Instruction::Label(pairs) => pairs
            .iter()
            .map(|kv| Op::Label(kv.key.clone(), kv.value.clone()))
            .collect(),
        Instruction::Expose(ports) => ports
            .iter()
            .map(|p| {
                Op::Expose(if p.contains('/') {
                    p.to_lowercase()
                } else {
                    format!("{p}/tcp")
                })
            })
            .collect(),
        Instruction::Volume(paths) => paths.iter().map(|p| Op::Volume(p.clone())).collect(),
        Instruction::User(user) => vec![Op::User(user.clone())],
        Instruction::Cmd(line) => vec![Op::Cmd(Some(argv(state, line)))],
        Instruction::Entrypoint(line) => {
            let mut ops = vec![Op::Entrypoint(argv(state, line))];
            // An inherited CMD is meant for the old ENTRYPOINT.
            if !state.cmd_set {
                ops.push(Op::Cmd(None));
            }
            ops
        }
        Instruction::StopSignal(sig) => vec![Op::StopSignal(sig.clone())],
        Instruction::Healthcheck(Healthcheck::None) => {
            vec![Op::Healthcheck(ConfigHealthcheck {
                test: vec!["NONE".into()],
                ..Default::default()
            })]
        }
        Instruction::Healthcheck(Healthcheck::Cmd(h)) => {
            let test = match &h.test {
                CommandLine::Exec(v) => [vec!["CMD".to_string()], v.clone()].concat(),
                CommandLine::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
            };
            vec![Op::Healthcheck(ConfigHealthcheck {
                test,
                interval: h.interval.unwrap_or(0),
                timeout: h.timeout.unwrap_or(0),
                start_period: h.start_period.unwrap_or(0),
                start_interval: h.start_interval.unwrap_or(0),
                retries: h.retries.map_or(0, i64::from),
            })]
        }
        Instruction::Shell(argv) => vec![Op::Shell(argv.clone())],
        Instruction::Onbuild(o) => vec![Op::OnBuild(o.expression.clone())],
        Instruction::Maintainer(m) => vec![Op::Author(m.clone())],
        // Layer-producing and scope instructions are handled by the engine.
        Instruction::Run(_)
        | Instruction::Copy(_)
        | Instruction::Add(_)
        | Instruction::Workdir(_)
        | Instruction::Arg(_) => Vec::new(),
    }
}
