//! Node → [`Command`], and the file → stages grouping.

use std::collections::BTreeMap;

use super::args::{
    maybe_json, maybe_json_list, name_values, quoted_words, whitespace_words, CommandLine,
};
use super::mount::Mount;
use super::*;

use crate::error::{Error, Result};
use crate::flags::{Flags, Kind};
use crate::parser::{self, Directives, Node, Warning};
use crate::shell::Lexer;
use crate::suggest::closest;

/// A whole Dockerfile: the ARGs before the first FROM, then the stages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dockerfile {
    pub directives: Directives,
    pub meta_args: Vec<(ArgDecl, Span)>,
    pub stages: Vec<Stage>,
    pub warnings: Vec<Warning>,
    /// The comment right above an instruction, by the instruction's line.
    pub comments: BTreeMap<usize, String>,
    /// The `# check=` comment above an instruction, by its line.
    pub checks: BTreeMap<usize, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    pub from: From,
    pub commands: Vec<Command>,
}

/// `FROM [--platform=P] IMAGE [AS NAME]`, unexpanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct From {
    pub image: String,
    /// The stage name, lower-cased as BuildKit compares them.
    pub name: Option<String>,
    /// The name as written, for the casing check.
    pub name_as_written: Option<String>,
    /// The `AS` word as written, for the casing check.
    pub as_word: Option<String>,
    pub platform: Option<String>,
    pub span: Span,
    pub keyword: String,
}

const KEYWORDS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Parses text into stages.
pub fn parse_dockerfile(text: &str) -> Result<Dockerfile> {
    let parsed = parser::parse(text)?;
    let escape = parsed.directives.escape;
    let mut file = Dockerfile {
        directives: parsed.directives,
        meta_args: Vec::new(),
        stages: Vec::new(),
        warnings: parsed.warnings,
        comments: parsed.comments,
        checks: parsed.checks,
    };
    for node in &parsed.nodes {
        if node.keyword.eq_ignore_ascii_case("FROM") {
            file.stages.push(Stage {
                from: parse_from(node)?,
                commands: Vec::new(),
            });
            continue;
        }
        let command = parse_node(node, escape)?;
        match (file.stages.last_mut(), &command.instruction) {
            (Some(stage), _) => stage.commands.push(command),
            (None, Instruction::Arg(decls)) => {
                file.meta_args.extend(decls.iter().map(|d| (d.clone(), command.span)));
            }
            (None, other) => {
                return Err(Error::new(
                    command.span,
                    format!(
                        "{} before the first FROM: only ARG may come before FROM (no build stage in current context)",
                        other.keyword()
                    ),
                ))
            }
        }
    }
    if file.stages.is_empty() {
        let span = parsed.nodes.last().map_or(Span::line(1), |n| n.span);
        return Err(Error::new(
            span,
            "dockerfile contains no stages to build: it has no FROM instruction",
        ));
    }
    Ok(file)
}

fn parse_from(node: &Node) -> Result<From> {
    let err = |m: String| Error::new(node.span, m);
    let mut flags = Flags::new(&[("platform", Kind::String)]);
    flags.parse(&node.flags, "FROM").map_err(err)?;
    let words = whitespace_words(&node.rest);
    let (image, as_word, name) = match words.as_slice() {
        [image] => (image.clone(), None, None),
        [image, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
            (image.clone(), Some(as_word.clone()), Some(name.clone()))
        }
        [] => {
            return Err(err(
                "FROM requires an image: FROM [--platform=P] IMAGE [AS NAME]".into(),
            ))
        }
        _ => {
            return Err(err(format!(
                "FROM requires either one or three arguments (FROM IMAGE [AS NAME]), got {}",
                words.len()
            )))
        }
    };
    if let Some(n) = &name {
        if !valid_stage_name(n) {
            return Err(err(format!(
                "invalid name for build stage: {n:?}, name can't start with a number or contain symbols"
            )));
        }
    }
    Ok(From {
        image,
        name: name.as_ref().map(|n| n.to_ascii_lowercase()),
        name_as_written: name,
        as_word,
        platform: flags.string("platform"),
        span: node.span,
        keyword: node.keyword.clone(),
    })
}

/// BuildKit's `^[a-z][a-z0-9-_\.]*$`, compared case-insensitively.
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Parses one non-FROM node.
pub fn parse_node(node: &Node, escape: char) -> Result<Command> {
    let instruction = instruction(node, escape).map_err(|m| Error::new(node.span, m))?;
    Ok(Command {
        instruction,
        span: node.span,
        keyword: node.keyword.clone(),
        original: node.original.clone(),
    })
}

fn instruction(node: &Node, escape: char) -> std::result::Result<Instruction, String> {
    let upper = node.keyword.to_ascii_uppercase();
    let rest = node.rest.as_str();
    let known: &[(&'static str, Kind)] = match upper.as_str() {
        "RUN" => &[
            ("mount", Kind::Strings),
            ("network", Kind::String),
            ("security", Kind::String),
        ],
        "COPY" => &[
            ("from", Kind::String),
            ("chown", Kind::String),
            ("chmod", Kind::String),
            ("link", Kind::Bool),
            ("parents", Kind::Bool),
            ("exclude", Kind::Strings),
        ],
        "ADD" => &[
            ("chown", Kind::String),
            ("chmod", Kind::String),
            ("link", Kind::Bool),
            ("keep-git-dir", Kind::Bool),
            ("checksum", Kind::String),
            ("unpack", Kind::Bool),
            ("exclude", Kind::Strings),
        ],
        "HEALTHCHECK" => &[
            ("interval", Kind::String),
            ("timeout", Kind::String),
            ("start-period", Kind::String),
            ("start-interval", Kind::String),
            ("retries", Kind::String),
        ],
        _ => &[],
    };
    if !KEYWORDS.contains(&upper.as_str()) {
        return Err(unknown_instruction(&node.keyword));
    }
    let mut flags = Flags::new(known);
    flags.parse(&node.flags, &upper)?;
    let need = |what: &str| -> std::result::Result<(), String> {
        if rest.is_empty() {
            Err(format!("{upper} requires {what}"))
        } else {
            Ok(())
        }
    };
    Ok(match upper.as_str() {
        "RUN" => {
            need("at least one argument")?;
            Instruction::Run(parse_run(node, &flags)?)
        }
        "CMD" => Instruction::Cmd(maybe_json(rest)?),
        "ENTRYPOINT" => Instruction::Entrypoint(maybe_json(rest)?),
        "SHELL" => match maybe_json(rest)? {
            CommandLine::Exec(v) if !v.is_empty() => Instruction::Shell(v),
            CommandLine::Exec(_) => return Err("SHELL requires at least one argument".into()),
            CommandLine::Shell(_) => {
                return Err("SHELL requires the arguments to be in JSON form".into())
            }
        },
        "LABEL" => Instruction::Label(name_values(rest, "LABEL", escape)?.0),
        "ENV" => Instruction::Env(name_values(rest, "ENV", escape)?.0),
        "MAINTAINER" => {
            need("exactly one argument")?;
            Instruction::Maintainer(rest.to_string())
        }
        "EXPOSE" => {
            need("at least one argument")?;
            Instruction::Expose(whitespace_words(rest))
        }
        "COPY" | "ADD" => file_op(node, &flags, &upper, escape)?,
        "VOLUME" => {
            let (list, _) = maybe_json_list(rest)?;
            if list.iter().all(|v| v.trim().is_empty()) {
                return Err("VOLUME requires at least one argument".into());
            }
            Instruction::Volume(list)
        }
        "USER" => {
            need("exactly one argument")?;
            Instruction::User(rest.to_string())
        }
        "WORKDIR" => {
            need("exactly one argument")?;
            Instruction::Workdir(rest.to_string())
        }
        "STOPSIGNAL" => {
            need("exactly one argument")?;
            Instruction::StopSignal(rest.to_string())
        }
        "ARG" => Instruction::Arg(parse_arg(rest, escape)?),
        "ONBUILD" => Instruction::Onbuild(parse_onbuild(node, escape)?),
        "HEALTHCHECK" => Instruction::Healthcheck(parse_healthcheck(rest, &flags)?),
        _ => unreachable!("keyword list and match agree"),
    })
}

fn unknown_instruction(keyword: &str) -> String {
    let mut msg = format!("unknown instruction: {keyword}");
    if let Some(best) = closest(keyword, KEYWORDS) {
        msg.push_str(&format!(" (did you mean {best}?)"));
    }
    msg
}

fn parse_run(node: &Node, flags: &Flags) -> std::result::Result<Run, String> {
    let mount_specs = flags.strings("mount");
    let mut mounts = Vec::with_capacity(mount_specs.len());
    for spec in &mount_specs {
        let parse_now =
            !Mount::check_unexpanded(spec).map_err(|e| format!("--mount={spec}: {e}"))?;
        if parse_now {
            mounts.push(
                Mount::parse(spec, &|v| Ok(v.to_string()))
                    .map_err(|e| format!("--mount={spec}: {e}"))?,
            );
        }
    }
    let network = match flags.string("network").as_deref() {
        None => None,
        Some("default") => Some(Network::Default),
        Some("none") => Some(Network::None),
        Some("host") => Some(Network::Host),
        Some(other) => {
            return Err(format!(
                "unsupported network mode {other:?}: use default, none or host"
            ))
        }
    };
    let security = match flags.string("security").as_deref() {
        None => None,
        Some("sandbox") => Some(Security::Sandbox),
        Some("insecure") => Some(Security::Insecure),
        Some(other) => {
            return Err(format!(
                "unsupported security mode {other:?}: use sandbox or insecure"
            ))
        }
    };
    Ok(Run {
        command: maybe_json(&node.rest)?,
        heredocs: node.heredocs.clone(),
        mounts,
        mount_specs,
        network,
        security,
    })
}

fn file_op(
    node: &Node,
    flags: &Flags,
    keyword: &str,
    escape: char,
) -> std::result::Result<Instruction, String> {
    let from = flags.string("from");
    if let Some(from) = &from {
        literal_from(from, escape)?;
    }
    let (mut words, json) = maybe_json_list(&node.rest)?;
    if words.len() < 2 {
        return Err(format!(
            "{keyword} requires at least two arguments (source and destination), but {} given",
            if words.is_empty() {
                "none was".into()
            } else {
                "only one was".to_string()
            }
        ));
    }
    let dest = words.pop().unwrap_or_default();
    if parser::parse_heredoc_marker(&dest)?.is_some() {
        return Err(format!(
            "{keyword} cannot take a heredoc as the destination"
        ));
    }
    let mut op = FileOp {
        dest,
        json,
        from,
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link"),
        parents: flags.bool("parents"),
        exclude: flags.strings("exclude"),
        checksum: flags.string("checksum"),
        keep_git_dir: flags.bool("keep-git-dir"),
        unpack: flags.string("unpack").map(|v| v == "true"),
        ..FileOp::default()
    };
    for word in words {
        match parser::parse_heredoc_marker(&word)? {
            Some(marker) if !json => {
                let doc = node.heredocs.iter().find(|d| d.name == marker.name);
                op.inline.push(InlineSource {
                    content: doc.map(|d| d.body()).unwrap_or_default(),
                    expand: marker.expand,
                    name: marker.name,
                });
            }
            _ => op.sources.push(word),
        }
    }
    if let Some(chmod) = &op.chmod {
        check_chmod(chmod)?;
    }
    Ok(if keyword == "ADD" {
        Instruction::Add(op)
    } else {
        Instruction::Copy(op)
    })
}

/// `--chmod` takes octal (`0755`) or symbolic (`u+x,go-w`) modes; a value
/// with a variable is checked once it is expanded.
/// BuildKit names the stages a COPY reads before any variable is known,
/// so `--from` must be a literal: expanding it with no variables at all
/// has to leave it unchanged.
fn literal_from(from: &str, escape: char) -> std::result::Result<(), String> {
    let no_vars = std::collections::BTreeMap::<String, String>::new();
    match Lexer::new(escape).process_word(from, &no_vars) {
        Ok(word) if word == from => Ok(()),
        _ => Err(format!("--from={from}: variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround")),
    }
}

fn check_chmod(mode: &str) -> std::result::Result<(), String> {
    if mode.contains('$') {
        return Ok(());
    }
    crate::chmod::Chmod::parse(mode)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn parse_arg(rest: &str, escape: char) -> std::result::Result<Vec<ArgDecl>, String> {
    let words = quoted_words(rest, escape);
    if words.is_empty() {
        return Err("ARG requires at least one argument".into());
    }
    words
        .into_iter()
        .map(|w| {
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(d.to_string())),
                None => (w, None),
            };
            if name.is_empty() {
                return Err("ARG names can not be blank".to_string());
            }
            Ok(ArgDecl { name, default })
        })
        .collect()
}

fn parse_onbuild(node: &Node, escape: char) -> std::result::Result<Onbuild, String> {
    if node.rest.is_empty() {
        return Err("ONBUILD requires at least one argument".into());
    }
    let mut inner = parser::node_from_line(&node.rest, node.span).map_err(|e| e.message)?;
    inner.heredocs = node.heredocs.clone();
    let upper = inner.keyword.to_ascii_uppercase();
    match upper.as_str() {
        "ONBUILD" => return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
        "FROM" | "MAINTAINER" => {
            return Err(format!("{upper} isn't allowed as an ONBUILD trigger"))
        }
        _ => {}
    }
    let trigger = parse_node(&inner, escape).map_err(|e| e.message)?;
    // The stored trigger carries its heredoc bodies (as BuildKit stores
    // it): the child build parses it again as Dockerfile text.
    let mut expression = node.rest.clone();
    for doc in &node.heredocs {
        expression.push('\n');
        expression.push_str(&doc.content);
        expression.push_str(&doc.name);
    }
    Ok(Onbuild {
        expression,
        trigger: Box::new(trigger),
    })
}

fn parse_healthcheck(rest: &str, flags: &Flags) -> std::result::Result<Healthcheck, String> {
    let (kind, args) = match rest.split_once(char::is_whitespace) {
        Some((k, a)) => (k, a.trim_start()),
        None => (rest, ""),
    };
    match kind.to_ascii_uppercase().as_str() {
        "NONE" if args.is_empty() => Ok(Healthcheck::None),
        "NONE" => Err("HEALTHCHECK NONE takes no arguments".into()),
        "CMD" => {
            let test = maybe_json(args)?;
            if matches!(&test, CommandLine::Exec(v) if v.is_empty()) || args.is_empty() {
                return Err("Missing command after HEALTHCHECK CMD".into());
            }
            let retries = match flags.string("retries") {
                None => None,
                Some(r) => Some(
                    r.parse::<i64>()
                        .map_err(|_| format!("invalid --retries value {r:?}"))
                        .and_then(|n| {
                            u32::try_from(n)
                                .map_err(|_| format!("--retries cannot be negative ({n})"))
                        })?,
                ),
            };
            Ok(Healthcheck::Cmd(HealthCmd {
                test,
                interval: duration_flag(flags, "interval")?,
                timeout: duration_flag(flags, "timeout")?,
                start_period: duration_flag(flags, "start-period")?,
                start_interval: duration_flag(flags, "start-interval")?,
                retries,
            }))
        }
        "" => Err("HEALTHCHECK requires CMD or NONE".into()),
        other => Err(format!(
            "Unknown type {other:?} in HEALTHCHECK (try CMD or NONE)"
        )),
    }
}

/// As BuildKit's `parseOptInterval`: zero means "use the default" (the
/// image config omits it), anything else under a millisecond is refused.
fn duration_flag(flags: &Flags, name: &str) -> std::result::Result<Option<i64>, String> {
    let Some(value) = flags.string(name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let ns = crate::duration::parse(&value).map_err(|e| format!("--{name}: {e}"))?;
    if ns == 0 {
        return Ok(None);
    }
    if ns < 1_000_000 {
        return Err(format!(
            "--{name}={value}: the interval cannot be less than 1ms"
        ));
    }
    i64::try_from(ns)
        .map(Some)
        .map_err(|_| format!("--{name}={value}: too large"))
}
