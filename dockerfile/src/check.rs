//! Lint rules in the spirit of BuildKit's build checks (`docker build
//! --check`): things that build but are probably not what the author
//! meant. The `# check=skip=…;error=true` directive is honoured.

use crate::error::Span;
use crate::instructions::{quoted_words, Dockerfile, Instruction};
use crate::parser::Warning;

/// What `# check=` asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// Rule names to drop; `all` drops every rule.
    pub skip: Vec<String>,
    /// Turn warnings into a failed check.
    pub error: bool,
}

impl CheckConfig {
    pub fn from_directive(value: Option<&str>) -> Self {
        let mut cfg = CheckConfig::default();
        for part in value.unwrap_or("").split(';') {
            match part.trim().split_once('=') {
                Some(("skip", rules)) => cfg
                    .skip
                    .extend(rules.split(',').map(|r| r.trim().to_string())),
                Some(("error", v)) => cfg.error = v.trim().eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        cfg
    }

    pub fn keeps(&self, w: &Warning) -> bool {
        !self
            .skip
            .iter()
            .any(|s| s == "all" || s.eq_ignore_ascii_case(w.rule))
    }
}

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
            let from_upper = from.keyword == from.keyword.to_ascii_uppercase();
            let as_upper = as_word == &as_word.to_ascii_uppercase();
            if from_upper != as_upper {
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
            if matches!(name.to_ascii_lowercase().as_str(), "scratch" | "context") {
                warn(
                    &mut out,
                    "ReservedStageName",
                    format!("'{name}' is reserved and should not be used as a stage name"),
                    from.span,
                );
            }
        }
        let mut seen: Vec<(&str, Span)> = Vec::new();
        for c in &stage.commands {
            casing(&mut out, &c.keyword, c.span);
            let kw = c.instruction.keyword();
            match &c.instruction {
                Instruction::Maintainer(_) => warn(&mut out, "MaintainerDeprecated", "MAINTAINER instruction is deprecated in favor of using label".into(), c.span),
                Instruction::Env(_) | Instruction::Label(_) if is_legacy_key_value(&c.original) => warn(
                    &mut out,
                    "LegacyKeyValueFormat",
                    format!("\"{kw} key=value\" should be used instead of legacy \"{kw} key value\" format"),
                    c.span,
                ),
                _ => {}
            }
            if matches!(kw, "CMD" | "ENTRYPOINT" | "HEALTHCHECK") {
                if let Some((_, first)) = seen.iter().find(|(k, _)| *k == kw) {
                    warn(&mut out, "MultipleInstructionsDisallowed", format!("Multiple {kw} instructions should not be used in the same stage because only the last one will be used (first on line {})", first.start), c.span);
                }
                seen.push((kw, c.span));
            }
        }
    }
    out
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
