//! Lint rules in the spirit of BuildKit's build checks (`docker build
//! --check`): things that build but are probably not what the author
//! meant. The `# check=skip=…;error=true` directive is honoured.

mod before_error;
mod config;

pub use before_error::warnings_before;
pub use config::{CheckConfig, CHECK_BUILD_ARG};

use crate::error::Span;
use crate::instructions::{quoted_words, Dockerfile, Instruction};
use crate::parser::Warning;

/// Rules that need only the parsed file.
pub fn lint(file: &Dockerfile) -> Vec<Warning> {
    let mut out = Vec::new();
    let warn = |out: &mut Vec<Warning>, rule, message: String, span| {
        out.push(Warning {
            rule,
            message,
            span,
        })
    };
    if let Some(d) = &file.directives.syntax {
        warn(
            &mut out,
            "SyntaxIgnored",
            format!(
                "syntax={} ignored: kiln has one built-in Dockerfile frontend",
                d.value
            ),
            Span::line(d.line),
        );
    }
    let keywords = file.stages.iter().flat_map(|s| {
        std::iter::once(s.from.keyword.as_str())
            .chain(s.commands.iter().map(|c| c.keyword.as_str()))
    });
    let (upper, lower) = keywords.fold((0, 0), |(u, l), k| {
        (
            u + usize::from(k == k.to_ascii_uppercase()),
            l + usize::from(k == k.to_ascii_lowercase()),
        )
    });
    let majority_upper = upper >= lower;
    let casing = |out: &mut Vec<Warning>, keyword: &str, span| {
        let expected = if majority_upper {
            keyword.to_ascii_uppercase()
        } else {
            keyword.to_ascii_lowercase()
        };
        if keyword != expected {
            let case = if majority_upper {
                "uppercase"
            } else {
                "lowercase"
            };
            warn(
                out,
                "ConsistentInstructionCasing",
                format!(
                    "Command '{keyword}' should match the case of the command majority ({case})"
                ),
                span,
            );
        }
    };
    for stage in &file.stages {
        let from = &stage.from;
        casing(&mut out, &from.keyword, from.span);
        if let Some(as_word) = &from.as_word {
            // A FROM in mixed case is ConsistentInstructionCasing's; the
            // AS word must be all in the FROM keyword's case.
            let kw = &from.keyword;
            let mismatch = if *kw == kw.to_ascii_lowercase() {
                *as_word != as_word.to_ascii_lowercase()
            } else {
                *kw == kw.to_ascii_uppercase() && *as_word != as_word.to_ascii_uppercase()
            };
            if mismatch {
                warn(
                    &mut out,
                    "FromAsCasing",
                    format!(
                        "'{as_word}' and '{}' keywords' casing do not match",
                        from.keyword
                    ),
                    from.span,
                );
            }
        }
        if let Some(name) = &from.name_as_written {
            if name != &name.to_ascii_lowercase() {
                warn(
                    &mut out,
                    "StageNameCasing",
                    format!("Stage name '{name}' should be lowercase"),
                    from.span,
                );
            }
            let lower = name.to_ascii_lowercase();
            if matches!(lower.as_str(), "scratch" | "context") {
                warn(
                    &mut out,
                    "ReservedStageName",
                    format!("Stage name should not use the same name as reserved stage {lower:?}"),
                    from.span,
                );
            }
        }
        let mut seen: Vec<(&str, Span)> = Vec::new();
        for c in &stage.commands {
            casing(&mut out, &c.keyword, c.span);
            let kw = c.instruction.keyword();
            match &c.instruction {
                Instruction::Maintainer(_) => warn(&mut out, "MaintainerDeprecated", "Maintainer instruction is deprecated in favor of using label".into(), c.span),
                Instruction::Env(_) | Instruction::Label(_) if is_legacy_key_value(&c.original) => warn(
                    &mut out,
                    "LegacyKeyValueFormat",
                    format!("\"{kw} key=value\" should be used instead of legacy \"{kw} key value\" format"),
                    c.span,
                ),
                _ => {}
            }
            // As BuildKit, the warning points at the earlier instruction:
            // that is the one without effect.
            if matches!(kw, "CMD" | "ENTRYPOINT" | "HEALTHCHECK") {
                if let Some(i) = seen.iter().position(|(k, _)| *k == kw) {
                    let (_, earlier) = seen.remove(i);
                    warn(&mut out, "MultipleInstructionsDisallowed", format!("Multiple {kw} instructions should not be used in the same stage because only the last one will be used"), earlier);
                }
                seen.push((kw, c.span));
            }
        }
    }
    definition_descriptions(file, &mut out);
    out
}

/// InvalidDefinitionDescription (experimental): the comment right above a
/// named FROM or an ARG is its description in BuildKit's outline, so it
/// must start with the name.
fn definition_descriptions(file: &Dockerfile, out: &mut Vec<Warning>) {
    let mut check = |instruction: &str, keys: &[&str], span: Span| {
        let Some(comment) = file.comments.get(&span.start) else {
            return;
        };
        let first = comment.split(' ').next().unwrap_or("");
        if keys.is_empty() || keys.contains(&first) {
            return;
        }
        let example = if keys.len() > 1 { "<arg_key>" } else { keys[0] };
        out.push(Warning {
            rule: "InvalidDefinitionDescription",
            message: format!(
                "Comment for {instruction} should follow the format: `# {example} <description>`"
            ),
            span,
        });
    };
    let mut meta = file.meta_args.iter().peekable();
    while let Some((decl, span)) = meta.next() {
        let mut keys = vec![decl.name.as_str()];
        while let Some((d, _)) = meta.next_if(|(_, s)| s == span) {
            keys.push(d.name.as_str());
        }
        check("ARG", &keys, *span);
    }
    for stage in &file.stages {
        if let Some(name) = &stage.from.name {
            check("FROM", &[name.as_str()], stage.from.span);
        }
        for c in &stage.commands {
            if let Instruction::Arg(decls) = &c.instruction {
                let keys: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
                check("ARG", &keys, c.span);
            }
        }
    }
}

/// `ENV KEY value` rather than `ENV KEY=value`.
fn is_legacy_key_value(original: &str) -> bool {
    let rest = original
        .trim_start()
        .split_once(char::is_whitespace)
        .map_or("", |(_, r)| r);
    quoted_words(rest, '\\')
        .first()
        .is_some_and(|w| !w.contains('='))
}
