//! Instructions that change only the image config (no layer): ENV, LABEL,
//! EXPOSE, VOLUME, USER, CMD, ENTRYPOINT, STOPSIGNAL, HEALTHCHECK, SHELL,
//! ONBUILD, MAINTAINER. Their words arrive already expanded.

use anyhow::Result;
use kiln_dockerfile::instructions::{CommandLine, Healthcheck, Instruction};

use super::StageState;
use crate::image_config::{Empty, Healthcheck as ConfigHealthcheck};

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

pub fn apply(state: &mut StageState, instruction: &Instruction) -> Result<()> {
    let config = &mut state.config.config;
    match instruction {
        Instruction::Env(pairs) => {
            for kv in pairs {
                state.config.set_env(&kv.key, &kv.value);
                state.scope.set_env(&kv.key, kv.value.clone());
            }
        }
        Instruction::Label(pairs) => {
            let labels = config.labels.get_or_insert_with(Default::default);
            for kv in pairs {
                labels.insert(kv.key.clone(), kv.value.clone());
            }
        }
        Instruction::Expose(ports) => {
            let set = config.exposed_ports.get_or_insert_with(Default::default);
            for p in ports {
                let p = if p.contains('/') {
                    p.to_lowercase()
                } else {
                    format!("{p}/tcp")
                };
                set.insert(p, Empty {});
            }
        }
        Instruction::Volume(paths) => {
            let set = config.volumes.get_or_insert_with(Default::default);
            for p in paths {
                set.insert(p.clone(), Empty {});
            }
        }
        Instruction::User(user) => config.user = Some(user.clone()),
        Instruction::Cmd(line) => {
            let argv = argv(state, line);
            state.config.config.cmd = Some(argv);
            state.cmd_set = true;
        }
        Instruction::Entrypoint(line) => {
            let argv = argv(state, line);
            state.config.config.entrypoint = Some(argv);
            // An inherited CMD is meant for the old ENTRYPOINT.
            if !state.cmd_set {
                state.config.config.cmd = None;
            }
        }
        Instruction::StopSignal(sig) => config.stop_signal = Some(sig.clone()),
        Instruction::Healthcheck(Healthcheck::None) => {
            config.healthcheck = Some(ConfigHealthcheck {
                test: vec!["NONE".into()],
                ..Default::default()
            });
        }
        Instruction::Healthcheck(Healthcheck::Cmd(h)) => {
            let test = match &h.test {
                CommandLine::Exec(v) => [vec!["CMD".to_string()], v.clone()].concat(),
                CommandLine::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
            };
            config.healthcheck = Some(ConfigHealthcheck {
                test,
                interval: h.interval.unwrap_or(0),
                timeout: h.timeout.unwrap_or(0),
                start_period: h.start_period.unwrap_or(0),
                start_interval: h.start_interval.unwrap_or(0),
                retries: h.retries.map_or(0, i64::from),
            });
        }
        Instruction::Shell(argv) => config.shell = Some(argv.clone()),
        Instruction::Onbuild(o) => {
            config
                .on_build
                .get_or_insert_with(Vec::new)
                .push(o.expression.clone());
        }
        Instruction::Maintainer(m) => state.config.author = Some(m.clone()),
        // Layer-producing and scope instructions are handled by the engine.
        Instruction::Run(_)
        | Instruction::Copy(_)
        | Instruction::Add(_)
        | Instruction::Workdir(_)
        | Instruction::Arg(_) => {}
    }
    Ok(())
}
