//! BuildKit's build checks that depend on a stage's state as it is
//! dispatched (SHELL and WORKDIR set here or in a parent stage) or on
//! expanded words (EXPOSE ports): run with the static scan of each stage.
//! Names and texts are BuildKit's, so `# check=skip=` lists carry over.

use crate::error::Span;
use crate::instructions::{CommandLine, Instruction};
use crate::parser::Warning;
use crate::shell::Expansion;

/// What a stage inherits from the stage it is built `FROM`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StageLint {
    /// A SHELL instruction ran: shell-form CMD/ENTRYPOINT use it on purpose.
    shell_set: bool,
    /// A WORKDIR ran: later relative ones are relative to a known path.
    workdir_set: bool,
}

impl StageLint {
    /// Lints one instruction (its words expanded) and records its effect.
    pub fn command(&mut self, instruction: &Instruction, span: Span, out: &mut Vec<Warning>) {
        let mut warn = |rule, message| {
            out.push(Warning {
                rule,
                message,
                span,
            })
        };
        match instruction {
            Instruction::Shell(_) => self.shell_set = true,
            // BuildKit's condition: the image config has no Shell yet. A
            // base image's own SHELL is unknown here; kiln assumes none.
            Instruction::Cmd(CommandLine::Shell(_))
            | Instruction::Entrypoint(CommandLine::Shell(_))
                if !self.shell_set =>
            {
                warn(
                    "JSONArgsRecommended",
                    format!(
                        "JSON arguments recommended for {} to prevent unintended behavior related to OS signals",
                        instruction.keyword()
                    ),
                )
            }
            Instruction::Workdir(path) => {
                if !self.workdir_set && !path.starts_with('/') {
                    warn(
                        "WorkdirRelativePath",
                        format!(
                            "Relative workdir {path:?} can have unexpected results if the base image changes"
                        ),
                    );
                }
                self.workdir_set = true;
            }
            Instruction::Expose(ports) => {
                for port in ports {
                    expose(port, &mut warn);
                }
            }
            Instruction::Arg(decls) => {
                for d in decls.iter().filter(|d| is_secret_name(&d.name)) {
                    warn("SecretsUsedInArgOrEnv", secret_message("ARG", &d.name));
                }
            }
            Instruction::Env(pairs) => {
                for kv in pairs.iter().filter(|kv| is_secret_name(&kv.key)) {
                    warn("SecretsUsedInArgOrEnv", secret_message("ENV", &kv.key));
                }
            }
            _ => {}
        }
    }
}

/// `[[ip:]hostport:]port[/proto]`: a protocol in capitals, or a host part
/// (which a Dockerfile cannot publish).
fn expose(spec: &str, warn: &mut impl FnMut(&'static str, String)) {
    let container = spec.rsplit(':').next().unwrap_or(spec);
    let proto = container.split_once('/').map_or("", |(_, p)| p);
    if proto != proto.to_ascii_lowercase() {
        warn(
            "ExposeProtoCasing",
            format!("Defined protocol '{spec}' in EXPOSE instruction should be lowercase"),
        );
    }
    if spec.contains(':') {
        warn(
            "ExposeInvalidFormat",
            format!(
                "EXPOSE instruction should not define an IP address or host-port mapping, found '{spec}'"
            ),
        );
    }
}

/// Words that make a variable name look like it holds a secret, matched
/// against its `_`-separated parts, case-insensitively (BuildKit's list).
const SECRET_WORDS: [&str; 10] = [
    "apikey",
    "auth",
    "credential",
    "credentials",
    "key",
    "password",
    "pword",
    "passwd",
    "secret",
    "token",
];
/// Parts that say the value is not the secret itself (`PUBLIC_KEY`,
/// `PASSWORD_FILE`, `AUTH_VERSION`).
const NOT_SECRET_WORDS: [&str; 3] = ["public", "file", "version"];

fn is_secret_name(name: &str) -> bool {
    let has = |words: &[&str]| {
        name.split('_')
            .any(|part| words.iter().any(|w| part.eq_ignore_ascii_case(w)))
    };
    has(&SECRET_WORDS) && !has(&NOT_SECRET_WORDS)
}

fn secret_message(instruction: &str, key: &str) -> String {
    format!("Do not use ARG or ENV instructions for sensitive data ({instruction} {key:?})")
}

/// The `FROM --platform=` checks: `$TARGETPLATFORM` is the default anyway,
/// and a constant platform pins the stage unless its name says so
/// (`AS build-amd64`).
pub fn from_platform(
    written: &str,
    expanded: &Expansion,
    stage_name: Option<&str>,
    target_platform: Option<&str>,
    span: Span,
    out: &mut Vec<Warning>,
) {
    let only_target = expanded.unmatched.is_empty()
        && expanded.matched.len() == 1
        && expanded.matched.contains("TARGETPLATFORM");
    if only_target && target_platform == Some(expanded.value.as_str()) {
        out.push(Warning {
            rule: "RedundantTargetPlatform",
            message: format!(
                "Setting platform to predefined {written} in FROM is redundant as this is the default behavior"
            ),
            span,
        });
    }
    if !expanded.matched.is_empty() || !expanded.unmatched.is_empty() {
        return;
    }
    let Some((os, arch)) = os_and_arch(&expanded.value) else {
        return;
    };
    let name = stage_name.unwrap_or("");
    if name.contains(&os) || name.contains(&arch) {
        return;
    }
    out.push(Warning {
        rule: "FromPlatformFlagConstDisallowed",
        message: format!(
            "FROM --platform flag should not use constant value {:?}",
            expanded.value
        ),
        span,
    });
}

/// `os[/arch[/variant]]` or a bare os or arch, normalised as containerd
/// does for the common names; None when it is not a platform at all (the
/// build reports that).
fn os_and_arch(platform: &str) -> Option<(String, String)> {
    let parts: Vec<String> = platform
        .split('/')
        .map(|p| p.to_ascii_lowercase())
        .collect();
    let valid = |p: &String| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if parts.len() > 3 || !parts.iter().all(valid) {
        return None;
    }
    let arch = |a: &str| match a {
        "x86_64" | "x86-64" => "amd64".to_string(),
        "aarch64" => "arm64".to_string(),
        "i386" | "i686" => "386".to_string(),
        other => other.to_string(),
    };
    const OSES: [&str; 6] = ["linux", "windows", "darwin", "freebsd", "netbsd", "openbsd"];
    match parts.as_slice() {
        [one] if OSES.contains(&one.as_str()) => Some((one.clone(), arch(std::env::consts::ARCH))),
        [one] => Some(("linux".into(), arch(one))),
        [os, a, ..] => Some((os.clone(), arch(a))),
        [] => None,
    }
}
