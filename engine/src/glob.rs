//! COPY source patterns: Go's `filepath.Match` per path component (`*`,
//! `?`, `[a-z]`, `[^x]`, `\` escapes; `*` never crosses a `/`), matched
//! against the entries of a root, as BuildKit does.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use rustix::fs::OFlags;

use super::fsops::{self, Root};

pub fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

/// Whether `s` holds an unescaped `*`, `?` or `[`: a pattern that may
/// match nothing (a `\\` escape alone names one literal path).
pub fn has_wildcard(s: &str) -> bool {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' | '[' => return true,
            '\\' => {
                chars.next();
            }
            _ => {}
        }
    }
    false
}

/// The paths (relative to the root, sorted) that `pattern` names. A path
/// without wildcards is returned if it exists.
pub fn expand(root: &Root, pattern: &str) -> Result<Vec<PathBuf>> {
    expand_below(root, Path::new(""), pattern, false)
}

/// The paths (relative to the root, sorted) that `pattern` names below
/// `base`, a path taken as it is. With `globstar` (BuildKit's include
/// patterns, used by `COPY --parents`), a `**` component matches any
/// number of directories, none included; a match below another match is
/// left out, as copying the latter copies it.
pub fn expand_below(
    root: &Root,
    base: &Path,
    pattern: &str,
    globstar: bool,
) -> Result<Vec<PathBuf>> {
    let rel = fsops::relative(Path::new(pattern));
    if !has_meta(pattern) {
        let path = base.join(rel);
        return Ok(match root.stat(&path, true) {
            Ok(_) => vec![path],
            Err(_) => Vec::new(),
        });
    }
    let mut found = vec![base.to_path_buf()];
    for comp in rel.components() {
        let comp = comp.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        if globstar && comp == "**" {
            for base in &found {
                directories(root, base, &mut next)?;
            }
            found = next;
            continue;
        }
        for base in &found {
            if !has_meta(&comp) {
                let p = base.join(comp.as_ref());
                if root.stat(&p, true).is_ok() {
                    next.push(p);
                }
                continue;
            }
            let Ok(dir) = root.resolve(base, OFlags::PATH | OFlags::DIRECTORY, true) else {
                continue;
            };
            for name in fsops::list(dir.as_fd())? {
                let name_str = String::from_utf8_lossy(&name);
                if matches(&comp, &name_str)? {
                    next.push(base.join(std::ffi::OsStr::from_bytes(&name)));
                }
            }
        }
        found = next;
    }
    // Sorted by components, a path's descendants follow it.
    found.sort();
    let mut kept: Vec<PathBuf> = Vec::with_capacity(found.len());
    for p in found {
        if !kept.last().is_some_and(|k| p.starts_with(k)) {
            kept.push(p);
        }
    }
    Ok(kept)
}

/// `dir` (when it is a directory) and every directory below it, symlinks
/// not followed: what a `**` component can stand for.
fn directories(root: &Root, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    fsops::check_depth(&root.name, dir)?;
    let Ok(fd) = root.resolve(dir, OFlags::PATH | OFlags::DIRECTORY, true) else {
        return Ok(());
    };
    out.push(dir.to_path_buf());
    for name in fsops::list(fd.as_fd())? {
        let path = dir.join(std::ffi::OsStr::from_bytes(&name));
        if root
            .stat(&path, false)
            .is_ok_and(|m| m.kind == rustix::fs::FileType::Directory)
        {
            directories(root, &path, out)?;
        }
    }
    Ok(())
}

use std::os::fd::AsFd;

/// Checks a pattern's syntax up front (matching only finds errors on the
/// paths it happens to reach).
pub fn validate(pattern: &str) -> Result<()> {
    let p: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' if i + 1 >= p.len() => bail!("bad pattern {pattern:?}: trailing backslash"),
            '\\' => i += 2,
            '[' => {
                let (_, len) = class(&p[i..], '\0')?;
                i += len;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// One path component against one pattern component.
pub fn matches(pattern: &str, name: &str) -> Result<bool> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> Result<bool> {
    let (mut pi, mut ni) = (0, 0);
    // Where to resume after the last `*`: (pattern index, name index).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi + 1, ni));
                    pi += 1;
                    continue;
                }
                '?' if ni < n.len() => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' if ni < n.len() => {
                    let (ok, len) = class(&p[pi..], n[ni])?;
                    if ok {
                        pi += len;
                        ni += 1;
                        continue;
                    }
                }
                '\\' => {
                    let Some(&c) = p.get(pi + 1) else {
                        bail!(
                            "bad pattern {:?}: trailing backslash",
                            p.iter().collect::<String>()
                        )
                    };
                    if ni < n.len() && n[ni] == c {
                        pi += 2;
                        ni += 1;
                        continue;
                    }
                }
                c if ni < n.len() && n[ni] == c && c != '?' && c != '[' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return Ok(true);
        }
        match star {
            Some((sp, sn)) if sn < n.len() => {
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            _ => return Ok(false),
        }
    }
}

/// A `[...]` class at the start of `p`: whether `c` is in it, and its length.
fn class(p: &[char], c: char) -> Result<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(1), Some('^' | '!'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let Some(&lo) = p.get(i) else {
            bail!("bad pattern: unterminated [");
        };
        if lo == ']' && !first {
            return Ok((hit != negate, i + 1));
        }
        first = false;
        let lo = if lo == '\\' {
            i += 1;
            *p.get(i)
                .ok_or_else(|| anyhow::anyhow!("bad pattern: unterminated ["))?
        } else {
            lo
        };
        i += 1;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&h| h != ']') {
            hi = p[i + 1];
            i += 2;
        }
        if lo <= c && c <= hi {
            hit = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn go_filepath_match_rules() {
        for (p, n, want) in [
            ("*.sh", "hello.sh", true),
            ("*.sh", "hello.txt", false),
            ("*", ".hidden", true),
            ("h?llo", "hello", true),
            ("[a-c]at", "bat", true),
            ("[^a-c]at", "bat", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("\\*", "*", true),
            ("\\*", "x", false),
        ] {
            assert_eq!(matches(p, n).unwrap(), want, "{p} vs {n}");
        }
        assert!(matches("[a-", "a").is_err());
    }
}
