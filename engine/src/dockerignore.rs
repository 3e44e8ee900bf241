//! `.dockerignore`, with Docker's rules: one pattern per line, `#`
//! comments, a leading `/` means the context root, `**` matches any number
//! of directories, `!` re-includes, and the last matching pattern wins. A
//! pattern that matches a directory excludes everything below it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kiln_dockerfile::parser::Warning;
use kiln_dockerfile::resolve::ContextSource;

use super::glob::{matches, validate};

#[derive(Debug)]
struct Pattern {
    parts: Vec<String>,
    exception: bool,
}

#[derive(Debug, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// Reads `<dockerfile>.dockerignore` if present, else (as podman)
    /// `<context>/.containerignore`, else `<context>/.dockerignore`; none
    /// at all ignores nothing.
    pub fn load(context: &Path, dockerfile: Option<&Path>) -> Result<Ignore> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(df) = dockerfile {
            let mut name = df.as_os_str().to_owned();
            name.push(".dockerignore");
            candidates.push(PathBuf::from(name));
        }
        candidates.push(context.join(".containerignore"));
        candidates.push(context.join(".dockerignore"));
        for c in candidates {
            match std::fs::read_to_string(&c) {
                Ok(text) => {
                    return Ignore::parse(&text).with_context(|| format!("{}", c.display()))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", c.display())),
            }
        }
        Ok(Ignore::default())
    }

    pub fn parse(text: &str) -> Result<Ignore> {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, pat) = match line.strip_prefix('!') {
                // As moby/patternmatcher: an exception of nothing is a
                // mistake, not a line to skip.
                Some("") => anyhow::bail!("illegal exclusion pattern: \"!\""),
                Some(p) => (true, p.trim()),
                None => (false, line),
            };
            let parts: Vec<String> = clean(pat)
                .split('/')
                .filter(|p| !p.is_empty() && *p != ".")
                .map(String::from)
                .collect();
            if parts.is_empty() {
                continue;
            }
            // Validate once, so a bad pattern is an error, not a silent miss.
            for p in &parts {
                if p != "**" {
                    validate(p).with_context(|| format!("bad .dockerignore pattern {line:?}"))?;
                }
            }
            patterns.push(Pattern { parts, exception });
        }
        Ok(Ignore { patterns })
    }

    /// True when there is no pattern: nothing is excluded.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `rel` (relative to the context) is excluded: the last
    /// pattern matching it or one of its parents decides.
    pub fn excluded(&self, rel: &Path) -> bool {
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let mut excluded = false;
        for p in &self.patterns {
            let hit = (1..=parts.len()).any(|n| match_parts(&p.parts, &parts[..n]));
            if hit {
                excluded = !p.exception;
            }
        }
        excluded
    }

    /// Whether some exception pattern may re-include something below the
    /// excluded directory `rel`, so the walk must still look inside it.
    pub fn may_reinclude_below(&self, rel: &Path) -> bool {
        let depth = rel.components().count();
        self.patterns
            .iter()
            .any(|p| p.exception && (p.parts.len() > depth || p.parts.iter().any(|x| x == "**")))
    }

    /// BuildKit's CopyIgnoredFile: the COPY/ADD context sources the
    /// patterns exclude. Skipped when any `!` pattern exists (a file below
    /// an excluded directory may be re-included: too hard to tell
    /// statically); the context root only when `*`, `**` or `**/*` drops
    /// everything in it.
    pub fn copied_but_ignored(&self, sources: &[ContextSource]) -> Vec<Warning> {
        if self.patterns.is_empty() || self.patterns.iter().any(|p| p.exception) {
            return Vec::new();
        }
        let root_ignored = self
            .patterns
            .iter()
            .any(|p| matches!(p.parts.join("/").as_str(), "*" | "**" | "**/*"));
        let mut out = Vec::new();
        for s in sources {
            if s.add && super::remote::classify(&s.source).is_some() {
                continue;
            }
            let src = clean_path(&s.source);
            let hit = if src == "." || src == "/" {
                root_ignored
            } else {
                self.excluded(Path::new(src.trim_start_matches('/')))
            };
            if hit {
                let cmd = if s.add { "Add" } else { "Copy" };
                out.push(Warning {
                    rule: "CopyIgnoredFile",
                    message: format!(
                        "Attempting to {cmd} file {src:?} that is excluded by .dockerignore"
                    ),
                    span: s.span,
                });
            }
        }
        out
    }
}

/// Go's `filepath.Clean` for a source as written: `./a//b/` is `a/b`.
fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            ".." if p.starts_with('/') => {}
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (p.starts_with('/'), joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// `filepath.Clean`-like: collapses `//`, drops a leading `/` and `./`.
fn clean(p: &str) -> String {
    p.trim_start_matches('/')
        .trim_start_matches("./")
        .to_string()
}

fn match_parts(pat: &[String], path: &[String]) -> bool {
    match (pat.first(), path.first()) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some(p), _) if p == "**" => {
            // `**` takes zero or more components.
            (0..=path.len()).any(|skip| match_parts(&pat[1..], &path[skip..]))
        }
        (Some(_), None) => false,
        (Some(p), Some(name)) => {
            matches(p, name).unwrap_or(false) && match_parts(&pat[1..], &path[1..])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(text: &str) -> Ignore {
        Ignore::parse(text).unwrap()
    }

    #[test]
    fn docker_rules() {
        let i = ig("# comment\n*.md\n!README.md\n/build\n**/*.tmp\nnode_modules\n");
        assert!(i.excluded(Path::new("CHANGES.md")));
        assert!(!i.excluded(Path::new("README.md")));
        assert!(
            !i.excluded(Path::new("docs/x.md")),
            "*.md is for the root only"
        );
        assert!(
            i.excluded(Path::new("build/out.o")),
            "below an excluded dir"
        );
        assert!(i.excluded(Path::new("a/b/c.tmp")));
        assert!(i.excluded(Path::new("x.tmp")));
        assert!(i.excluded(Path::new("node_modules/pkg/index.js")));
        assert!(!i.excluded(Path::new("src/main.rs")));
    }

    #[test]
    fn last_match_wins_and_exceptions_reach_inside() {
        let i = ig("dir\n!dir/keep\n");
        assert!(i.excluded(Path::new("dir/other")));
        assert!(!i.excluded(Path::new("dir/keep")));
        assert!(i.may_reinclude_below(Path::new("dir")));
        let i = ig("!a\na\n");
        assert!(i.excluded(Path::new("a")));
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(Ignore::parse("[a-\n").is_err());
        assert!(Ignore::parse("a\n!\n").is_err());
    }
}
