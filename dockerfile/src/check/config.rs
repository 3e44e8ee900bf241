//! Which checks run: the `# check=` directive or, replacing it, the
//! `BUILDKIT_DOCKERFILE_CHECK` build-arg, both `skip=…;experimental=…;error=…`.

use std::collections::BTreeMap;

use crate::error::{Error, Result, Span};
use crate::instructions::Dockerfile;
use crate::parser::Warning;

/// The build-arg that overrides the `# check=` directive.
pub const CHECK_BUILD_ARG: &str = "BUILDKIT_DOCKERFILE_CHECK";

/// Rules that run only when named in `experimental=` (or `all`); `skip=`
/// does not apply to them.
const EXPERIMENTAL: [&str; 1] = ["InvalidDefinitionDescription"];

/// What `# check=` asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// Rule names to drop; `all` drops every rule.
    pub skip: Vec<String>,
    /// Experimental rules to run; `all` runs every one.
    pub experimental: Vec<String>,
    /// Turn warnings into a failed check.
    pub error: bool,
    /// `# check=` comments above instructions, by the instruction's line:
    /// their skip and experimental lists add to these for its warnings.
    pub instructions: BTreeMap<usize, CheckConfig>,
}

impl CheckConfig {
    /// The configuration of a build: the build-arg, when given, replaces
    /// the directive as a whole (BuildKit's order).
    pub fn for_build(file: &Dockerfile, build_args: &BTreeMap<String, String>) -> Result<Self> {
        let mut config = Self::for_file(file, build_args)?;
        // As BuildKit: a comment that does not parse changes nothing.
        config.instructions = file
            .checks
            .iter()
            .filter_map(|(line, value)| Some((*line, Self::parse(value).ok()?)))
            .collect();
        Ok(config)
    }

    fn for_file(file: &Dockerfile, build_args: &BTreeMap<String, String>) -> Result<Self> {
        if let Some(value) = build_args.get(CHECK_BUILD_ARG) {
            return Self::parse(value).map_err(|m| {
                Error::new(
                    Span::default(),
                    format!("failed to parse {CHECK_BUILD_ARG}: {m}"),
                )
            });
        }
        match &file.directives.check {
            Some(d) => Self::parse(&d.value).map_err(|m| {
                Error::new(
                    Span::line(d.line),
                    format!("failed to parse check options: {m}"),
                )
            }),
            None => Ok(Self::default()),
        }
    }

    /// `skip=A,B;experimental=C;error=true`; an unknown key or a value
    /// that is not a boolean is an error, as in BuildKit.
    pub fn parse(value: &str) -> std::result::Result<Self, String> {
        let mut cfg = CheckConfig::default();
        let value = value.trim();
        if value.is_empty() {
            return Ok(cfg);
        }
        for part in value.split(';') {
            let Some((key, v)) = part.split_once('=') else {
                return Err(format!("invalid check option {part:?}"));
            };
            let list = || v.split(',').map(|r| r.trim().to_string());
            match key.trim() {
                "skip" => cfg.skip.extend(list()),
                "experimental" => cfg.experimental.extend(list()),
                "error" => {
                    cfg.error = parse_bool(v.trim()).ok_or_else(|| {
                        format!("failed to parse check option {part:?}: invalid syntax")
                    })?
                }
                other => return Err(format!("invalid check option {other:?}")),
            }
        }
        Ok(cfg)
    }

    pub fn keeps(&self, w: &Warning) -> bool {
        let named = |list: &[String]| {
            list.iter()
                .any(|s| s == "all" || s.eq_ignore_ascii_case(w.rule))
        };
        let local = self.instructions.get(&w.span.start);
        let named_here = |pick: fn(&CheckConfig) -> &[String]| {
            named(pick(self)) || local.is_some_and(|c| named(pick(c)))
        };
        if EXPERIMENTAL.contains(&w.rule) {
            return named_here(|c| &c.experimental);
        }
        !named_here(|c| &c.skip)
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}
